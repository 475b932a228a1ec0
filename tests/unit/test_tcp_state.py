"""TCP state, idle expiry and NLB's RSTs, with time passed in (never slept).

AWS: a flow idle for the listener's timeout (350 s by default) is forgotten without a
packet; the next segment of it from either side gets a RST, and a segment that is not
a SYN and matches no flow gets a RST. A RST is never answered with a RST.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from conftest import (CLIENT, EP_IP, EP_PORT, NLB_IP, NLB_PORT, S, TARGETS, from_client, from_target,
                      make_engine, open_connection)
from dataplane.forwarder.engine import Backend, Engine


def state(engine: Engine) -> str:
    (flow,) = engine.flows()
    return flow.tcp_state


def test_states_through_a_connection(engine: Engine, tcp_service: int) -> None:
    engine.simulate(from_client(TCP(sport=40000, dport=80, flags="S")), EP_PORT, S)
    assert state(engine) == "SYN_SENT"
    flow = open_connection(engine)
    assert flow.tcp_state == "ESTABLISHED"
    engine.simulate(from_client(TCP(sport=40000, dport=80, flags="FA")), EP_PORT, S)
    assert state(engine) == "FIN_WAIT"
    engine.simulate(from_target(TCP(sport=8080, dport=flow.snat[1], flags="FA"), flow.backend[0]), NLB_PORT, S)
    assert state(engine) == "CLOSING"


def test_established_flow_expires_after_350s_and_next_segment_gets_rst(engine: Engine, tcp_service: int) -> None:
    flow = open_connection(engine, t=10 * S)
    # 349 s idle: alive, and the packet refreshes it.
    seg = from_client(TCP(sport=40000, dport=80, flags="PA", seq=101, ack=901) / b"hi")
    assert engine.simulate(seg, EP_PORT, (10 + 349) * S).verdict == "forward"
    assert engine.flow_count == 1
    # 350 s after that packet: gone, the same segment is answered with a RST.
    out = engine.simulate(seg, EP_PORT, (359 + 350) * S)
    assert (out.verdict, out.out_port, out.drop_reason) == ("reply", EP_PORT, "not_syn")
    rst = Ether(out.frame)
    assert rst[IP].src == EP_IP and rst[IP].dst == CLIENT
    assert (rst[TCP].sport, rst[TCP].dport) == (80, 40000)
    assert rst[TCP].flags == "R" and rst[TCP].seq == 901  # seq = the segment's ACK
    assert engine.flow_count == 0
    (expired,) = engine.expired()
    assert expired.client == (CLIENT, 40000) and expired.backend == flow.backend
    assert engine.counters(EP_PORT)["flows_expired"] == 1
    assert engine.counters(EP_PORT)["tcp_rst_sent"] == 1


def test_target_side_segment_after_expiry_gets_rst_too(engine: Engine, tcp_service: int) -> None:
    flow = open_connection(engine, t=S)
    seg = from_target(TCP(sport=8080, dport=flow.snat[1], flags="PA", seq=901, ack=101) / b"late",
                      flow.backend[0])
    out = engine.simulate(seg, NLB_PORT, 400 * S)
    assert (out.verdict, out.out_port, out.drop_reason) == ("reply", NLB_PORT, "no_flow")
    rst = Ether(out.frame)
    assert (rst[IP].src, rst[IP].dst) == (NLB_IP, flow.backend[0])
    assert rst[TCP].flags == "R" and rst[TCP].seq == 101


def test_listener_idle_timeout_is_configurable() -> None:
    eng = make_engine()
    svc = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80, rst_on_miss=True, idle_timeout_s=60)
    eng.set_backends(svc, TARGETS)
    open_connection(eng, t=S)
    assert eng.expire(60 * S) == 0
    assert eng.expire(61 * S) == 1


def test_sweep_expires_flows_nobody_sends_on(engine: Engine, tcp_service: int) -> None:
    for sport in range(40000, 40010):
        open_connection(engine, sport, t=S)
    engine.simulate(from_client(TCP(sport=50000, dport=80, flags="S")), EP_PORT, S)  # half-open
    assert engine.expire(30 * S) == 0
    assert engine.expire(31 * S) == 1  # the half-open one: 30 s
    assert engine.flow_count == 10
    assert engine.expire(351 * S) == 10
    assert len(engine.expired()) == 11


def test_hp_process_ages_a_bounded_number_of_slots() -> None:
    eng = make_engine(capacity=1024, expiry_scan_per_batch=16)
    svc = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 53, "udp")
    eng.set_backends(svc, [Backend("10.0.1.20", 53)])
    for sport in range(1000, 1100):
        eng.simulate(from_client(UDP(sport=sport, dport=53)), EP_PORT, S)
    assert eng.flow_count == 100
    # One batch at t = 200 s (UDP timeout 120 s) ages 16 slots, not the whole table.
    eng.simulate(b"\0" * 10, EP_PORT, 200 * S)
    assert 100 - eng.flow_count <= 16


def test_rst_on_miss_answers_non_syn_but_never_a_rst(engine: Engine, tcp_service: int) -> None:
    ack = engine.simulate(from_client(TCP(sport=1234, dport=80, flags="PA", seq=7, ack=99) / b"abc"), EP_PORT, S)
    assert ack.verdict == "reply" and Ether(ack.frame)[TCP].flags == "R"
    fin = engine.simulate(from_client(TCP(sport=1234, dport=80, flags="F", seq=7)), EP_PORT, S)
    rst = Ether(fin.frame)[TCP]
    assert rst.flags == "RA" and rst.seq == 0 and rst.ack == 8  # FIN occupies one
    rst_in = engine.simulate(from_client(TCP(sport=1234, dport=80, flags="R", seq=7)), EP_PORT, S)
    assert (rst_in.verdict, rst_in.drop_reason) == ("drop", "not_syn")
    assert engine.counters(EP_PORT)["tcp_rst_sent"] == 2
    assert engine.drops(EP_PORT)["not_syn"] == 3
    assert Ether(ack.frame) == Ether(bytes(Ether(ack.frame)))  # a well-formed frame


def test_without_rst_flag_non_syn_is_dropped_silently() -> None:
    eng = make_engine()
    svc = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80)
    eng.set_backends(svc, TARGETS)
    out = eng.simulate(from_client(TCP(sport=1, dport=80, flags="A")), EP_PORT, S)
    assert (out.verdict, out.drop_reason) == ("drop", "not_syn")


def test_new_syn_on_a_closed_tuple_opens_a_new_flow(engine: Engine, tcp_service: int) -> None:
    first = open_connection(engine, t=S)
    engine.simulate(from_client(TCP(sport=40000, dport=80, flags="R", seq=101)), EP_PORT, S)
    assert state(engine) == "CLOSED"
    out = engine.simulate(from_client(TCP(sport=40000, dport=80, flags="S", seq=5555)), EP_PORT, 2 * S)
    assert out.verdict == "forward"
    (second,) = engine.flows()
    assert second.tcp_state == "SYN_SENT" and second.id == first.id  # the slot is reused
    assert engine.counters(EP_PORT)["flows_created"] == 2


def test_retransmitted_syn_stays_on_the_same_flow(engine: Engine, tcp_service: int) -> None:
    syn = from_client(TCP(sport=40000, dport=80, flags="S", seq=100))
    a = engine.simulate(syn, EP_PORT, S)
    b = engine.simulate(syn, EP_PORT, 2 * S)
    assert a.frame == b.frame and engine.flow_count == 1


@pytest.mark.parametrize("proto, timeout", [("udp", 120), ("icmp", 60)])
def test_udp_and_icmp_timeouts(proto: str, timeout: int) -> None:
    eng = make_engine()
    svc = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 53 if proto == "udp" else 0, proto)
    eng.set_backends(svc, [Backend("10.0.1.20", 53 if proto == "udp" else 0)])
    from scapy.layers.inet import ICMP
    l4 = UDP(sport=9, dport=53) if proto == "udp" else ICMP(type=8, id=77)
    assert eng.simulate(from_client(l4), EP_PORT, S).verdict == "forward"
    assert eng.expire((1 + timeout - 1) * S) == 0
    assert eng.expire((1 + timeout) * S) == 1


def test_flows_of_an_unhealthy_target_are_reset_from_either_side(engine: Engine, tcp_service: int) -> None:
    flows = [open_connection(engine, sport) for sport in range(41000, 41040)]
    victim = flows[0].backend
    on_victim = [f for f in flows if f.backend == victim]
    others = [f for f in flows if f.backend != victim]
    assert on_victim and others
    assert engine.reset_backend(tcp_service, victim) == len(on_victim)
    # The client side speaks first on one flow, the target side on another.
    first, *rest = on_victim
    out = engine.simulate(from_client(TCP(sport=first.client[1], dport=80, flags="PA", seq=101, ack=901) / b"x"),
                          EP_PORT, 2 * S)
    assert (out.verdict, out.out_port, out.drop_reason) == ("reply", EP_PORT, "target_reset")
    assert Ether(out.frame)[TCP].flags == "R"
    if rest:
        f = rest[0]
        out = engine.simulate(from_target(TCP(sport=8080, dport=f.snat[1], flags="PA", seq=901, ack=101) / b"y",
                                          f.backend[0]), NLB_PORT, 2 * S)
        assert (out.verdict, out.out_port, out.drop_reason) == ("reply", NLB_PORT, "target_reset")
        assert (Ether(out.frame)[IP].dst, Ether(out.frame)[TCP].flags) == (f.backend[0], "R")
    assert engine.flow_count == len(flows) - (2 if rest else 1)
    # Flows on the other target carry on.
    f = others[0]
    out = engine.simulate(from_client(TCP(sport=f.client[1], dport=80, flags="PA", seq=101, ack=901) / b"z"),
                          EP_PORT, 2 * S)
    assert out.verdict == "forward"
