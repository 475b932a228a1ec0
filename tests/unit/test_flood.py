"""A flood of SYNs never starves new connections nor touches established ones (issue 13
part 4): when a new flow finds its SNAT pool or the flow table full, it takes the place
of the oldest half-open flow (TCP whose handshake never completed), as Linux conntrack's
early drop does, and the counters evicted_port_pool / evicted_table_full say so.

Half-open means: the client's SYN seen, and either no SYN-ACK from the target yet
(SYN_SENT) or no ACK from the client after it (SYN_RECV) — a spoofed source never sends
that ACK, even when the target answers its SYN. Frames are crafted with scapy and run
through the real engine with time passed in.
"""
from __future__ import annotations

from scapy.layers.inet import TCP, UDP

from conftest import (CLIENT, EP_IP, EP_PORT, NLB_PORT, S, from_client, from_target, make_engine,
                      open_connection)
from dataplane.forwarder.engine import Backend, Engine

TARGET = Backend("10.0.2.1", 8080)


def engine_with_service(capacity: int = 4096, snat_ports: tuple[int, int] = (0, 0)) -> Engine:
    eng = make_engine(capacity=capacity)
    sid = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80, snat_ports=snat_ports, rst_on_miss=True)
    eng.set_backends(sid, [TARGET])
    return eng


def syn(sport: int, src: str = CLIENT) -> bytes:
    return from_client(TCP(sport=sport, dport=80, flags="S", seq=100), src)


def data(sport: int, src: str = CLIENT) -> bytes:
    return from_client(TCP(sport=sport, dport=80, flags="PA", seq=101, ack=901) / b"more", src)


def clients(eng: Engine) -> set[int]:
    return {f.client[1] for f in eng.flows()}


def answer(eng: Engine, sport: int, t: int = S) -> None:
    """The target's SYN-ACK to the half-open flow of client port `sport`."""
    (flow,) = [f for f in eng.flows() if f.client[1] == sport]
    out = eng.simulate(from_target(TCP(sport=TARGET.port, dport=flow.snat[1], flags="SA", seq=900,
                                       ack=101), TARGET.ip), NLB_PORT, t)
    assert out.verdict == "forward"


def test_a_flow_is_half_open_until_the_client_acknowledges_the_syn_ack() -> None:
    eng = engine_with_service()
    eng.simulate(syn(40000), EP_PORT, S)
    assert [f.tcp_state for f in eng.flows()] == ["SYN_SENT"] and eng.half_open_count == 1
    answer(eng, 40000)
    assert [f.tcp_state for f in eng.flows()] == ["SYN_RECV"] and eng.half_open_count == 1
    eng.simulate(from_client(TCP(sport=40000, dport=80, flags="A", seq=101, ack=901)), EP_PORT, S)
    assert [f.tcp_state for f in eng.flows()] == ["ESTABLISHED"] and eng.half_open_count == 0


def test_a_full_table_evicts_its_half_open_flows_oldest_first() -> None:
    eng = engine_with_service(capacity=4)
    for sport in (1, 2, 3, 4):  # all in the same second: the order is by arrival, not clock
        assert eng.simulate(syn(sport), EP_PORT, S).verdict == "forward"
    answer(eng, 1)  # answered by the target but never acknowledged: still half-open
    for new, gone in ((5, 1), (6, 2), (7, 3), (8, 4), (9, 5)):
        assert eng.simulate(syn(new), EP_PORT, 2 * S).verdict == "forward"
        assert gone not in clients(eng) and new in clients(eng) and eng.flow_count == 4
    assert eng.counters(EP_PORT)["evicted_table_full"] == 5
    assert eng.drops(EP_PORT)["flow_table_full"] == 0
    assert eng.expired() == []  # evicted, not expired: not reported as idle


def test_established_flows_are_never_evicted_and_keep_passing() -> None:
    eng = engine_with_service(capacity=4)
    open_connection(eng, 1)
    eng.simulate(syn(2), EP_PORT, S)
    open_connection(eng, 3)
    eng.simulate(syn(4), EP_PORT, S)
    for sport in range(100, 150):  # a flood: each new SYN takes the oldest half-open slot
        assert eng.simulate(syn(sport), EP_PORT, 2 * S).verdict == "forward"
    assert clients(eng) == {1, 3, 148, 149}
    assert eng.counters(EP_PORT)["evicted_table_full"] == 50
    for sport in (1, 3):
        assert eng.simulate(data(sport), EP_PORT, 3 * S).verdict == "forward"
    # Only established flows left to evict: nothing is, the new flow is refused.
    open_connection(eng, 148 + 1000)  # (takes 148's place, then completes)
    open_connection(eng, 149 + 1000)
    r = eng.simulate(syn(7), EP_PORT, 4 * S)
    assert (r.verdict, r.drop_reason) == ("drop", "flow_table_full")
    assert clients(eng) == {1, 3, 1148, 1149}


def test_a_completed_handshake_leaves_the_queue() -> None:
    eng = engine_with_service(capacity=3)
    for sport in (1, 2, 3):
        eng.simulate(syn(sport), EP_PORT, S)
    answer(eng, 1)
    eng.simulate(from_client(TCP(sport=1, dport=80, flags="A", seq=101, ack=901)), EP_PORT, S)
    eng.simulate(syn(4), EP_PORT, S)
    assert clients(eng) == {1, 3, 4}  # 2 was the oldest half-open; 1 is established


def test_an_exhausted_pool_gives_the_oldest_half_open_holders_port() -> None:
    eng = engine_with_service(snat_ports=(5000, 5003))
    open_connection(eng, 1)  # the oldest flow of all, but established
    for sport in (2, 3, 4):
        eng.simulate(syn(sport), EP_PORT, S)
    port_of = {f.client[1]: f.snat[1] for f in eng.flows()}
    for new, gone in ((5, 2), (6, 3), (7, 4), (8, 5)):
        assert eng.simulate(syn(new), EP_PORT, S).verdict == "forward"
        now = {f.client[1]: f.snat[1] for f in eng.flows()}
        assert gone not in now and now[new] == port_of[gone] and now[1] == port_of[1]
        port_of = now
    assert eng.counters(EP_PORT)["evicted_port_pool"] == 4
    assert eng.drops(EP_PORT)["port_allocation"] == 0
    assert eng.simulate(data(1), EP_PORT, 2 * S).verdict == "forward"


def test_a_pool_of_established_flows_still_refuses() -> None:
    eng = engine_with_service(snat_ports=(5000, 5001))
    open_connection(eng, 1)
    open_connection(eng, 2)
    r = eng.simulate(syn(3), EP_PORT, S)
    assert (r.verdict, r.drop_reason) == ("drop", "port_allocation")
    assert eng.counters(EP_PORT)["evicted_port_pool"] == 0


def test_an_idle_holder_of_a_port_is_expired_on_sight() -> None:
    eng = engine_with_service(snat_ports=(5000, 5001))
    eng.simulate(syn(1), EP_PORT, S)
    eng.simulate(syn(2), EP_PORT, S)
    # 30 s later both are past the half-open timeout; no sweep has run yet.
    assert eng.simulate(syn(3), EP_PORT, 32 * S).verdict == "forward"
    assert eng.counters(EP_PORT)["flows_expired"] >= 1
    assert eng.counters(EP_PORT)["evicted_port_pool"] == 0


def test_udp_flows_are_never_evicted() -> None:
    eng = make_engine(capacity=2)
    sid = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 53, "udp")
    eng.set_backends(sid, [Backend("10.0.2.1", 53)])
    for sport in (1, 2):
        eng.simulate(from_client(UDP(sport=sport, dport=53) / b"q"), EP_PORT, S)
    r = eng.simulate(from_client(UDP(sport=3, dport=53) / b"q"), EP_PORT, S)
    assert (r.verdict, r.drop_reason) == ("drop", "flow_table_full")


def test_a_spoofed_flood_lets_every_legitimate_connection_open() -> None:
    """200,000 SYNs from 200,000 spoofed sources (the C benchmark driver sends them) into
    a table of 8,192 flows, with a legitimate handshake after every 10,000: all of those
    open, the connection established before the flood still passes, and the counters
    account for every flow the flood made beyond the table's size."""
    eng = engine_with_service(capacity=8192)
    open_connection(eng, 1)
    flood = from_client(TCP(sport=1, dport=80, flags="S"), src="10.9.0.1")
    created = 0
    for round_ in range(20):
        t = (2 + round_) * S
        created += eng.bench_new_flows(EP_PORT, flood, round_ * 10_000, 256, 10_000, t)
        flow = open_connection(eng, 2000 + round_, t)
        assert flow.tcp_state == "ESTABLISHED"
        assert eng.simulate(data(1), EP_PORT, t).verdict == "forward"
    assert created == 200_000
    counters = eng.counters(EP_PORT)
    legit = 1 + 20
    assert counters["flows_created"] == created + legit
    evicted = counters["evicted_table_full"] + counters["evicted_port_pool"]
    assert evicted == counters["flows_created"] - eng.flow_count - counters["flows_expired"]
    assert counters["evicted_table_full"] > 150_000
    assert eng.drops(EP_PORT)["flow_table_full"] == eng.drops(EP_PORT)["port_allocation"] == 0
