"""Flows kept in a file across a forwarder restart (native/hp_flow_state.c): a second
engine mapping the file takes over the first one's flows — the same mappings, SNAT ports
and counters, its replies translated — with service ids remapped; a file of another
layout, capacity or service generation starts afresh and says why (no root)."""
from __future__ import annotations

from scapy.layers.inet import TCP

from conftest import (EP_IP, EP_PORT, NLB_PORT, S, TARGETS, from_client, from_target, make_engine,
                      open_connection)
from dataplane.forwarder.engine import Engine


def with_service(eng: Engine, decoy: bool = False) -> int:
    if decoy:                  # shifts the real service's id: the remap must follow it
        eng.add_service(EP_PORT, NLB_PORT, EP_IP, 81, "tcp")
    svc = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80, "tcp", rst_on_miss=True)
    eng.set_backends(svc, TARGETS)
    return svc


def open_flows(eng: Engine, n: int) -> None:
    for i in range(n):
        out = eng.simulate(from_client(TCP(sport=40000 + i, dport=80, flags="S", seq=7)), EP_PORT, S)
        assert out.verdict == "forward"


def test_a_new_engine_takes_over_the_flows_in_the_file(tmp_path) -> None:
    path = str(tmp_path / "flows")
    first = make_engine()
    old_sid = with_service(first)
    open_flows(first, 3)
    report = first.keep_flows_in(path, {}, None)
    assert report["fresh"] and report["reason"] == "no earlier flow state"
    assert report["generation"] == 1 and first.flow_count == 3     # copied into the file
    before = sorted(first.flows(), key=lambda f: f.client)
    generation = first.service_generation
    first.close()                                     # as a killed process: the file stays

    second = make_engine()
    new_sid = with_service(second, decoy=True)
    assert new_sid != old_sid
    report = second.keep_flows_in(path, {old_sid: new_sid}, generation)
    assert (report["fresh"], report["resumed"], report["dropped"]) == (False, 3, 0)
    assert report["generation"] == 2
    after = sorted(second.flows(), key=lambda f: f.client)
    assert [(f.client, f.vip, f.snat, f.backend, f.packets) for f in after] == \
        [(f.client, f.vip, f.snat, f.backend, f.packets) for f in before]
    assert all(f.service == new_sid for f in after)
    # The flow answers: a SYN-ACK from its target goes back to the client.
    f = after[0]
    out = second.simulate(from_target(TCP(sport=f.backend[1], dport=f.snat[1], flags="SA",
                                          seq=9, ack=8), f.backend[0]), NLB_PORT, 2 * S)
    assert (out.verdict, out.out_port) == ("forward", EP_PORT)
    # New flows still get free SNAT ports: none of the three taken over is reused.
    open_flows(second, 3 + 50)
    ports = [(g.backend, g.snat[1]) for g in second.flows()]
    assert len(ports) == len(set(ports)) == 53
    second.close()


def left_by_a_forwarder(path: str, n: int) -> tuple[int, int]:
    """A file holding `n` flows of an engine that is gone: (its service id, generation)."""
    first = make_engine()
    sid = with_service(first)
    open_flows(first, n)
    first.keep_flows_in(path, {}, None)
    generation = first.service_generation
    first.close()
    return sid, generation


def test_a_flow_whose_service_is_gone_is_dropped(tmp_path) -> None:
    path = str(tmp_path / "flows")
    sid, generation = left_by_a_forwarder(path, 2)
    second = make_engine()
    with_service(second)
    report = second.keep_flows_in(path, {sid: -1}, generation)
    assert (report["resumed"], report["dropped"], second.flow_count) == (0, 2, 0)
    second.close()


def test_a_mismatch_starts_afresh_and_says_why(tmp_path) -> None:
    path = str(tmp_path / "flows")
    sid, generation = left_by_a_forwarder(path, 2)

    stale = make_engine()
    with_service(stale)
    report = stale.keep_flows_in(path, {sid: sid}, generation + 1)
    assert report["fresh"] and "services changed" in report["reason"]
    assert stale.flow_count == 0
    stale.close()

    other = make_engine(capacity=8192)
    with_service(other)
    report = other.keep_flows_in(path, {sid: sid}, 0)
    assert report["fresh"] and report["reason"] == "the file is not a flow state of this size"
    other.close()

    (tmp_path / "junk").write_bytes(b"x" * 100)
    junk = make_engine()
    with_service(junk)
    report = junk.keep_flows_in(str(tmp_path / "junk"), {}, 0)
    assert report["fresh"] and junk.flow_count == 0
    open_flows(junk, 1)                # the file works as a flow table from then on
    assert junk.flow_count == 1
    junk.close()


def test_half_open_flows_taken_over_are_evicted_first_again(tmp_path) -> None:
    """The half-open queue is not in the file: it is rebuilt from the flows' flags, so a
    flood's flows that survive a restart still give way, and established ones still don't."""
    path = str(tmp_path / "flows")
    first = make_engine(capacity=4)
    sid = with_service(first)
    open_flows(first, 3)                               # half-open
    open_connection(first, 41000)                      # established: the table is full
    first.keep_flows_in(path, {}, None)
    generation = first.service_generation
    first.close()

    second = make_engine(capacity=4)
    second.keep_flows_in(path, {sid: with_service(second)}, generation)
    assert second.flow_count == 4 and second.half_open_count == 3
    out = second.simulate(from_client(TCP(sport=42000, dport=80, flags="S")), EP_PORT, 2 * S)
    assert out.verdict == "forward"
    assert second.counters(EP_PORT)["evicted_table_full"] == 1
    assert 41000 in {f.client[1] for f in second.flows()} and second.half_open_count == 3
    second.close()
