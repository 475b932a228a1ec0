"""Backend choice: Maglev consistency, stickiness, weights, and NLB's sequence-number hash.

Flows are pinned for life; a change of the backend set moves about 1/N of *new* flows.
The comparisons run the same SYNs through two engines that differ only in their backend
sets, so "moved" means "a new flow with this 5-tuple would now go elsewhere".
"""
from __future__ import annotations

from collections import Counter

from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether
from scapy.layers.inet import IP

from conftest import EP_IP, EP_PORT, NLB_PORT, S, from_client, make_engine
from dataplane.forwarder.engine import Backend, Engine

BACKENDS = [Backend(f"10.0.2.{10 + i}", 8080) for i in range(10)]
SYNS = [from_client(TCP(sport=1024 + i % 50000, dport=80, flags="S", seq=i), src=f"10.0.1.{10 + i // 50000}")
        for i in range(5000)]


def chosen(backends: list[Backend], syns=SYNS, **svc) -> list[str]:
    eng = make_engine(capacity=len(syns) + 16)
    sid = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80, **svc)
    eng.set_backends(sid, backends)
    out = []
    for frame in syns:
        r = eng.simulate(frame, EP_PORT, S)
        assert r.verdict == "forward"
        out.append(Ether(r.frame)[IP].dst)
    return out


def test_new_flows_spread_evenly() -> None:
    counts = Counter(chosen(BACKENDS))
    assert set(counts) == {b.ip for b in BACKENDS}
    for ip, n in counts.items():
        assert 0.07 < n / len(SYNS) < 0.13, (ip, n)


def test_removing_one_of_n_moves_about_one_nth() -> None:
    before = chosen(BACKENDS)
    gone = BACKENDS[3].ip
    after = chosen([b for b in BACKENDS if b.ip != gone])
    moved = sum(a != b for a, b in zip(before, after))
    were_on_gone = before.count(gone)
    assert gone not in after
    # Every flow of the removed backend moves; of the others, almost none (Maglev is
    # "minimally disruptive", not perfectly so).
    moved_needlessly = moved - were_on_gone
    assert moved_needlessly / len(SYNS) < 0.03, moved_needlessly
    assert 0.07 < moved / len(SYNS) < 0.16


def test_adding_a_backend_takes_a_fair_share_from_each() -> None:
    before = chosen(BACKENDS[:9])
    after = chosen(BACKENDS)
    moved = [(a, b) for a, b in zip(before, after) if a != b]
    to_new = sum(b == BACKENDS[9].ip for _, b in moved)
    assert to_new == after.count(BACKENDS[9].ip)
    assert (len(moved) - to_new) / len(SYNS) < 0.03  # shuffled among the old ones
    assert 0.07 < len(moved) / len(SYNS) < 0.14


def test_weights_share_new_flows_in_proportion() -> None:
    counts = Counter(chosen([Backend("10.0.2.1", 80, weight=3), Backend("10.0.2.2", 80, weight=1)]))
    assert 2.5 < counts["10.0.2.1"] / counts["10.0.2.2"] < 3.5
    counts = Counter(chosen([Backend("10.0.2.1", 80, weight=1), Backend("10.0.2.2", 80, weight=0)]))
    assert counts == Counter({"10.0.2.1": len(SYNS)})


def test_existing_flows_stay_pinned_when_backends_change(engine: Engine) -> None:
    sid = engine.add_service(EP_PORT, NLB_PORT, EP_IP, 80)
    engine.set_backends(sid, BACKENDS)
    for frame in SYNS[:200]:
        engine.simulate(frame, EP_PORT, S)
    pinned = {f.client: f.backend for f in engine.flows()}
    engine.set_backends(sid, BACKENDS[:1])  # nine of ten targets gone
    for frame in SYNS[:200]:
        pkt = Ether(frame)
        pkt[TCP].flags = "A"
        del pkt[TCP].chksum
        r = engine.simulate(bytes(pkt), EP_PORT, 2 * S)
        key = (pkt[IP].src, pkt[TCP].sport)
        assert (Ether(r.frame)[IP].dst, Ether(r.frame)[TCP].dport) == pinned[key]


def test_nlb_hash_includes_the_syn_sequence_number() -> None:
    """NLB hashes the TCP sequence number too: the same 5-tuple reopened may land on
    another target. Without that flag the 5-tuple alone decides."""
    same_tuple = [from_client(TCP(sport=40000, dport=80, flags="S", seq=s)) for s in range(64)]
    two = BACKENDS[:2]
    with_seq = set()
    without_seq = set()
    for syn in same_tuple:  # one engine per SYN: each is a fresh connection
        with_seq.update(chosen(two, [syn], hash_tcp_seq=True))
        without_seq.update(chosen(two, [syn]))
    assert with_seq == {b.ip for b in two}
    assert len(without_seq) == 1


def test_no_backend_is_a_counted_drop(engine: Engine) -> None:
    sid = engine.add_service(EP_PORT, NLB_PORT, EP_IP, 80)
    r = engine.simulate(SYNS[0], EP_PORT, S)
    assert (r.verdict, r.drop_reason) == ("drop", "no_backend")
    engine.set_backends(sid, [Backend("10.0.2.1", 80, weight=0)])
    assert engine.simulate(SYNS[0], EP_PORT, S).drop_reason == "no_backend"
    assert engine.drops(EP_PORT)["no_backend"] == 2
