"""Bounded resources: a flow table or a SNAT pool full of established flows refuses *new*
flows with a counted drop, and never disturbs the flows that exist. (Full of half-open
flows, they make room instead: test_flood.py.)"""
from __future__ import annotations

import pytest
from scapy.layers.inet import TCP, UDP

from conftest import EP_IP, EP_PORT, NLB_PORT, S, from_client, make_engine, open_connection
from dataplane.forwarder.engine import Backend, Engine, EngineError


def syn(sport: int) -> bytes:
    return from_client(TCP(sport=sport, dport=80, flags="S"))


def ack(sport: int) -> bytes:
    return from_client(TCP(sport=sport, dport=80, flags="A"))


def test_full_flow_table_refuses_new_flows_only() -> None:
    eng = make_engine(capacity=4)
    sid = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80)
    eng.set_backends(sid, [Backend("10.0.2.1", 8080)])
    for sport in range(4):
        open_connection(eng, 1000 + sport)
    r = eng.simulate(syn(2000), EP_PORT, S)
    assert (r.verdict, r.drop_reason) == ("drop", "flow_table_full")
    assert eng.drops(EP_PORT)["flow_table_full"] == 1
    assert eng.counters(EP_PORT)["evicted_table_full"] == 0
    for sport in range(4):  # the four existing flows still pass
        assert eng.simulate(ack(1000 + sport), EP_PORT, S).verdict == "forward"
    # Established flows go after 350 s idle (their last packet was at 1 s).
    assert eng.expire(350 * S) == 0
    assert eng.expire(351 * S) == 4
    assert eng.simulate(syn(2000), EP_PORT, 351 * S).verdict == "forward"


def test_exhausted_snat_pool_is_a_port_allocation_drop() -> None:
    eng = make_engine()
    sid = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80, snat_ports=(5000, 5003))
    eng.set_backends(sid, [Backend("10.0.2.1", 8080)])
    for sport in range(4):
        open_connection(eng, 1000 + sport)
    assert sorted(f.snat[1] for f in eng.flows()) == [5000, 5001, 5002, 5003]
    r = eng.simulate(syn(2000), EP_PORT, S)
    assert (r.verdict, r.drop_reason) == ("drop", "port_allocation")
    assert eng.drops(EP_PORT)["port_allocation"] == 1
    assert eng.counters(EP_PORT)["evicted_port_pool"] == 0
    assert eng.flow_count == 4


def test_snat_ports_are_unique_per_destination_not_globally() -> None:
    """Like a NAT gateway: the same SNAT port may serve two flows to different targets."""
    eng = make_engine()
    sid = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80, snat_ports=(5000, 5001))
    eng.set_backends(sid, [Backend("10.0.2.1", 8080)])
    open_connection(eng, 1)
    open_connection(eng, 2)
    eng.set_backends(sid, [Backend("10.0.2.2", 8080)])
    open_connection(eng, 3)
    open_connection(eng, 4)
    assert eng.simulate(syn(5), EP_PORT, S).drop_reason == "port_allocation"
    by_target: dict[str, set[int]] = {}
    for f in eng.flows():
        by_target.setdefault(f.backend[0], set()).add(f.snat[1])
    assert by_target == {"10.0.2.1": {5000, 5001}, "10.0.2.2": {5000, 5001}}


def test_many_flows_to_one_target_get_distinct_ports() -> None:
    eng = make_engine(capacity=3000)
    sid = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80)
    eng.set_backends(sid, [Backend("10.0.2.1", 8080)])
    for sport in range(2000):
        assert eng.simulate(syn(10000 + sport), EP_PORT, S).verdict == "forward"
    ports = [f.snat[1] for f in eng.flows()]
    assert len(set(ports)) == 2000 and all(1024 <= p <= 65535 for p in ports)


def test_flow_memory_is_within_budget() -> None:
    eng = make_engine(capacity=1 << 16)
    assert eng.flow_bytes_per_flow <= 128
    assert eng.memory_bytes >= (1 << 16) * eng.flow_bytes_per_flow


def test_index_holds_a_full_table_and_survives_churn() -> None:
    """The 8-way, two-choice index must take every flow the table has room for, and
    lookups must stay exact while flows come and go (overflowed buckets, displaced keys)."""
    capacity = 3000  # not a power of two: the index is at its most loaded (~73 %)
    eng = make_engine(capacity=capacity)
    sid = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 53, "udp")
    eng.set_backends(sid, [Backend(f"10.0.2.{i}", 53) for i in range(1, 5)])
    from scapy.layers.inet import UDP
    frames = [from_client(UDP(sport=1024 + i % 60000, dport=53), src=f"10.0.{1 + i // 60000}.{10 + i % 7}")
              for i in range(capacity)]
    out = eng.process(EP_PORT, frames, S)
    assert [r.verdict for r in out] == ["forward"] * capacity
    assert eng.flow_count == capacity
    first = {bytes(r.frame) for r in out}
    # Every flow is found again (same translation, no new flow), twice over.
    again = eng.process(EP_PORT, frames, 2 * S)
    assert {bytes(r.frame) for r in again} == first and eng.flow_count == capacity
    # Expire half by letting only the other half talk, then refill with new flows.
    eng.process(EP_PORT, frames[::2], 100 * S)
    assert eng.expire(123 * S) == capacity // 2
    fresh = [from_client(UDP(sport=2000 + i, dport=53), src="10.9.9.9") for i in range(capacity // 2)]
    assert all(r.verdict == "forward" for r in eng.process(EP_PORT, fresh, 124 * S))
    kept = eng.process(EP_PORT, frames[::2], 125 * S)
    assert all(r.verdict == "forward" for r in kept) and eng.flow_count == capacity
    assert {bytes(r.frame) for r in kept} <= first


def test_an_engine_made_small_has_its_ports_and_ring_and_behaves_the_same() -> None:
    """max_ports and expired_ring (the fuzzer's small engine): port ids past max_ports are
    out of range like those past 256 in a default engine, an absent port in range counts
    its drops, and a short ring keeps the newest reports and counts the lost ones."""
    small = make_engine(capacity=8, max_ports=4, expired_ring=2, timeout_udp_s=5)
    default = make_engine(capacity=8, timeout_udp_s=5)
    assert small.memory_bytes < default.memory_bytes - 100_000
    with pytest.raises(EngineError, match=r"port 4 is out of range \(the engine has 4 ports\)"):
        small.set_port(4, "02:00:00:00:00:e4")
    frame = from_client(TCP(sport=1, dport=80, flags="S"))
    for eng in (small, default):
        assert eng.simulate(frame, 3, S).drop_reason == "unknown_port"
        assert eng.drops(3)["unknown_port"] == 1
        sid = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 53, "udp")
        eng.set_backends(sid, [Backend("10.0.2.1", 5353)])
        for sport in range(3):
            udp = from_client(UDP(sport=1000 + sport, dport=53) / b"q")
            assert eng.simulate(udp, EP_PORT, S).verdict == "forward"
        assert eng.expire(10 * S) == 3
    assert small.simulate(frame, 4, S).drop_reason == "unknown_port"
    assert small.drops(4)["unknown_port"] == 0  # out of range: counted nowhere
    assert [f.client[1] for f in small.expired()] == [1001, 1002] and small.expired_lost == 1
    assert len(default.expired()) == 3 and default.expired_lost == 0


@pytest.mark.parametrize("config, message", [
    ({"max_ports": 257}, "max_ports must be at most 256, not 257"),
    ({"expired_ring": 3}, "expired_ring must be a power of two up to 16777216, not 3"),
    ({"expired_ring": 1 << 25}, "expired_ring must be a power of two"),
])
def test_an_engine_config_beyond_its_limits_is_refused(config: dict, message: str) -> None:
    with pytest.raises(EngineError, match=message):
        Engine(flow_capacity=8, **config)
