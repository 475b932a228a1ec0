"""The engine's dry run (native/hp_trace.c, Engine.trace): it says what hp_process would
do with a packet, and it changes nothing.

Two promises are tested. Nothing moves: the flow table dumped byte for byte, every
counter and drop of every port, the half-open FIFO, the expired ring and the SNAT pools
(checked by what an untraced twin engine does with the same later traffic) are the same
after thousands of traces as before. And trace agrees with reality: for every drop
reason the engine gives a packet of no flow, and for a long random mix of packets on
every kind of service, the verdict, the reason, the out port and the tuple a forwarded
packet leaves with are those hp_process then really gives the same packet.

The world (conftest.py's two ports, plus a VPC link):

    port 0 endpoint ENI 10.0.1.50 / port 1 NLB ENI 10.0.1.100
      :80/tcp   two targets, RST on miss, NLB hashing, MTU 8500 / MSS 8460, pool 2000-2015
      :53/udp   two targets, pool 2000-2015      :0/icmp  one target
      :443/tcp  PROXY v2 (vpce-0123)             :81/tcp  no targets     :82/tcp  disabled
      :8000/tcp one target, pool of two ports 3000-3001
    port 5 link attachment ⇒ ENIs on ports 6 (10.0.1.4) and 7 (10.0.2.4), 10.0.0.0/16
"""
from __future__ import annotations

import random

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror
from scapy.layers.l2 import Ether

from conftest import (CLIENT, CONSUMER_ROUTER_MAC, EP_IP, EP_MAC, EP_PORT, NLB_IP, NLB_PORT, S,
                      TARGETS, from_client, from_target, make_engine)
from dataplane._native import ffi, lib
from dataplane.forwarder.engine import (DROP_REASONS, Backend, Engine, EngineError, LinkEni,
                                        LinkRoute, SgRule)

ATT, ENI0, ENI1 = 5, 6, 7
ATT_MAC, ATT_PEER = "02:00:00:00:01:05", "02:00:00:00:01:a5"
ENI_IP = {ENI0: "10.0.1.4", ENI1: "10.0.2.4"}
GATEWAY = "198.18.0.10"
PORTS = (EP_PORT, NLB_PORT, ATT, ENI0, ENI1)


def build(capacity: int = 4096) -> Engine:
    eng = make_engine(capacity)
    eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80, "tcp", rst_on_miss=True, hash_tcp_seq=True,
                    mtu=8500, mss_clamp=8460, snat_ports=(2000, 2015))
    eng.add_service(EP_PORT, NLB_PORT, EP_IP, 53, "udp", snat_ports=(2000, 2015), idle_timeout_s=30)
    eng.add_service(EP_PORT, NLB_PORT, EP_IP, 0, "icmp")
    eng.add_service(EP_PORT, NLB_PORT, EP_IP, 443, "tcp", proxy_v2=True, vpce_id="vpce-0123")
    eng.add_service(EP_PORT, NLB_PORT, EP_IP, 81, "tcp")
    eng.add_service(EP_PORT, NLB_PORT, EP_IP, 82, "tcp", disabled=True)
    eng.add_service(EP_PORT, NLB_PORT, EP_IP, 8000, "tcp", snat_ports=(3000, 3001))
    for sid, backends in ((0, TARGETS), (1, [Backend("10.0.1.20", 53), Backend("10.0.2.21", 53)]),
                          (2, [Backend("10.0.1.20", 0)]), (3, TARGETS), (5, TARGETS),
                          (6, [Backend("10.0.1.20", 8080)])):
        eng.set_backends(sid, backends)
    eng.set_port(ATT, ATT_MAC, ["198.18.0.1"], peer_mac=ATT_PEER)
    for port, ip in ENI_IP.items():
        eng.set_port(port, f"02:00:00:00:01:0{port}", [ip], peer_mac=f"02:00:00:00:01:a{port}")
    eng.add_vpc_link(ATT, ["10.0.0.0/16"], [LinkEni(ENI0, ENI_IP[ENI0]), LinkEni(ENI1, ENI_IP[ENI1])],
                     [LinkRoute("10.0.1.0/24", 0)], mtu=8500, mss_clamp=8460)
    return eng


def from_gateway(l4, dst: str) -> bytes:
    return bytes(Ether(src=ATT_PEER, dst=ATT_MAC) / IP(src=GATEWAY, dst=dst) / l4)


def from_customer(port: int, l4, src: str) -> bytes:
    return bytes(Ether(src=f"02:00:00:00:01:a{port}", dst=f"02:00:00:00:01:0{port}") /
                 IP(src=src, dst=ENI_IP[port]) / l4)


def snapshot(eng: Engine) -> bytes:
    """Everything a trace could move, as bytes: the flow table (hp_flow_dump, raw), each
    port's counters and drops, the table's counts and the expired ring's."""
    out = ffi.new("struct hp_flow_info[]", 4096)
    cursor = ffi.new("uint32_t *", 0)
    n = lib.hp_flow_dump(eng._e, cursor, out, 4096)
    parts = [bytes(ffi.buffer(out, n * ffi.sizeof("struct hp_flow_info")))]
    for port in PORTS:
        parts.append(repr((eng.counters(port), eng.drops(port))).encode())
    parts.append(repr((eng.flow_count, eng.half_open_count, eng.expired_lost,
                       eng.memory_bytes, eng.service_generation)).encode())
    return b"".join(parts)


def agree(eng: Engine, port: int, frame: bytes, now: int):
    """Traces `frame`, then processes it for real at `now` (the clock moved first, as a
    batch does before its packets), and asserts that both say the same."""
    eng.expire(now, max_scan=0)
    t = eng.trace(port, frame)
    r = eng.simulate(frame, port, now)
    assert (t.verdict, t.drop_reason, t.out_port) == (r.verdict, r.drop_reason, r.out_port), (t, r)
    if r.verdict == "forward":
        ip = Ether(r.frame)[IP]
        assert (ip.src, ip.dst) == (t.out_src[0], t.out_dst[0]), (t, ip.summary())
        if TCP in ip or UDP in ip:
            l4 = ip[TCP] if TCP in ip else ip[UDP]
            assert (l4.sport, l4.dport) == (t.out_src[1], t.out_dst[1]), (t, ip.summary())
        if TCP in ip and ip[TCP].flags.S and t.mss_out:
            assert dict(ip[TCP].options)["MSS"] == t.mss_out
    assert t.rst == (r.verdict == "reply")
    return t, r


def mss(flags: str) -> list:
    return [("MSS", 9000)] if "S" in flags else []


def random_packet(rng: random.Random, eng: Engine) -> tuple[int, bytes]:
    """A packet from anywhere: clients to every listener with any flags, targets answering
    their flows (or not), the gateway through the link, the customer VPC at the link ENIs."""
    flows = eng.flows()
    roll = rng.random()
    flags = rng.choice(["S", "S", "A", "SA", "PA", "FA", "R"])
    if roll < 0.45:
        dport = rng.choice([80, 80, 53, 0, 443, 81, 82, 8000, 99])
        sport = rng.randrange(40000, 40024)
        src = rng.choice([CLIENT, "10.0.1.11"])
        if dport == 53:
            l4 = UDP(sport=sport, dport=53) / (b"x" * rng.choice([10, 10, 9000]))
        elif dport == 0:
            l4 = ICMP(type=8, id=sport)
        else:
            l4 = TCP(sport=sport, dport=dport, flags=flags, seq=rng.randrange(1 << 32),
                     options=mss(flags)) / (b"d" * rng.choice([0, 0, 20, 9000]))
        return EP_PORT, from_client(l4, src=src)
    if roll < 0.75 and flows:
        f = rng.choice(flows)
        if f.kind == "vpc_nat":
            l4 = TCP(sport=f.backend[1], dport=f.snat[1], flags=flags, options=mss(flags)) \
                if f.protocol == "tcp" else UDP(sport=f.backend[1], dport=f.snat[1])
            return f.out_port, from_customer(f.out_port, l4, f.backend[0])
        if f.protocol == "icmp":
            return NLB_PORT, from_target(ICMP(type=0, id=f.snat[1]), f.backend[0])
        cls = TCP if f.protocol == "tcp" else UDP
        kw = {"flags": flags, "options": mss(flags)} if cls is TCP else {}
        return NLB_PORT, from_target(cls(sport=f.backend[1], dport=f.snat[1], **kw), f.backend[0])
    if roll < 0.9:
        dst = rng.choice(["10.0.1.20", "10.0.2.20", "10.0.3.30", "10.1.0.1"])
        l4 = TCP(sport=rng.randrange(50000, 50008), dport=8080, flags=flags, options=mss(flags)) \
            if rng.random() < 0.7 else UDP(sport=50000, dport=5353)
        return ATT, from_gateway(l4, dst)
    port = rng.choice([ENI0, ENI1])
    return port, from_customer(port, TCP(sport=8080, dport=rng.randrange(1024, 65535), flags=flags),
                               "10.0.1.20")


def test_trace_agrees_with_process_on_a_random_mix() -> None:
    rng = random.Random(14)
    eng = build()
    now, seen = S, set()
    for _ in range(3000):
        now += rng.choice([0, 0, 0, S // 10, 20 * S, 400 * S]) if rng.random() < 0.05 else S // 1000
        port, frame = random_packet(rng, eng)
        t, _ = agree(eng, port, frame, now)
        seen.add((t.drop_reason, t.flow, t.snat_how, t.backend_how))
    reasons = {s[0] for s in seen}
    # the mix reached every outcome it should, or the test proves less than it says
    assert {"none", "not_syn", "no_service", "service_disabled", "no_backend", "no_flow",
            "link_one_way", "mtu", "proxy_syn_data"} <= reasons, reasons
    assert {s[1] for s in seen} >= {"none", "hit", "expired", "reopen"}
    assert {s[2] for s in seen} >= {"free", "flow", "evict_half_open"}
    assert {s[3] for s in seen} >= {"maglev", "link_route", "link_hash", "flow"}


def test_trace_changes_nothing() -> None:
    """Thousands of traces leave the engine byte for byte as it was, and an untraced twin
    given the same traffic afterwards does exactly what the traced one does (hidden state
    such as the SNAT pools' pressure hint and the half-open FIFO's order included)."""
    rng = random.Random(20)
    traced, twin = build(), build()
    now = S
    for _ in range(600):
        now += S // 100
        port, frame = random_packet(rng, traced)
        traced.simulate(frame, port, now)
        twin.simulate(frame, port, now)
    now += 100 * S  # some flows idle now: traces see expiries the real packets would do
    traced.expire(now, max_scan=0)
    twin.expire(now, max_scan=0)
    before = snapshot(traced)
    assert before == snapshot(twin)
    kinds = set()
    for _ in range(3000):
        port, frame = random_packet(rng, traced)
        t = traced.trace(port, frame)
        kinds.add((t.drop_reason, t.snat_how, t.flow))
        traced.trace(EP_PORT, proto="tcp", src=CLIENT, sport=rng.randrange(1, 65536), dst=EP_IP,
                     dport=rng.choice([80, 8000]), flags="S", size=rng.choice([0, 9000]))
    assert snapshot(traced) == before
    assert {k[1] for k in kinds} >= {"free", "expire_idle"}, kinds
    for _ in range(600):
        now += S // 100
        port, frame = random_packet(rng, traced)
        a, b = traced.simulate(frame, port, now), twin.simulate(frame, port, now)
        assert a == b
    assert snapshot(traced) == snapshot(twin)


def established(eng: Engine, sport: int, dport: int = 80, t: int = S):
    eng.simulate(from_client(TCP(sport=sport, dport=dport, flags="S", seq=100)), EP_PORT, t)
    f = next(f for f in eng.flows() if f.client == (CLIENT, sport) and f.vip[1] == dport)
    eng.simulate(from_target(TCP(sport=f.backend[1], dport=f.snat[1], flags="SA", ack=101),
                             f.backend[0]), NLB_PORT, t)
    eng.simulate(from_client(TCP(sport=sport, dport=dport, flags="A", seq=101)), EP_PORT, t)
    return f


def syn(dport: int = 80, sport: int = 40000, **kw) -> bytes:
    return from_client(TCP(sport=sport, dport=dport, flags="S", options=[("MSS", 9000)], **kw))


def case_no_service(eng):
    return EP_PORT, syn(99)


def case_service_disabled(eng):
    return EP_PORT, syn(82)


def case_not_syn(eng):
    return EP_PORT, from_client(TCP(sport=40000, dport=80, flags="A"))


def case_no_flow(eng):
    return NLB_PORT, from_target(UDP(sport=53, dport=2001), "10.0.1.20")


def case_link_one_way(eng):
    return ENI0, from_customer(ENI0, TCP(sport=8080, dport=3333, flags="S"), "10.0.1.20")


def case_sg_ingress(eng):
    eng.set_security_group(EP_PORT, "ingress", [SgRule("tcp", "10.0.0.0/16", 443, 443)])
    return EP_PORT, syn(80)


def case_sg_egress(eng):
    eng.set_security_group(NLB_PORT, "egress", [SgRule("tcp", "10.0.0.0/8", 9999, 9999)])
    return EP_PORT, syn(80)


def case_sg_egress_link(eng):
    eng.set_security_group(ENI0, "egress", [SgRule("udp", "0.0.0.0/0", 53, 53)])
    return ATT, from_gateway(TCP(sport=50000, dport=8080, flags="S"), "10.0.1.20")


def case_no_backend(eng):
    return EP_PORT, syn(81)


def case_mtu(eng):
    return EP_PORT, from_client(TCP(sport=40000, dport=80, flags="S") / (b"x" * 8600))


def case_port_allocation(eng):
    established(eng, 40001, 8000)
    established(eng, 40002, 8000)
    return EP_PORT, syn(8000, 40003)


def case_flow_table_full(eng):
    for sport in range(40100, 40100 + eng.capacity):
        established(eng, sport)
    return EP_PORT, syn(80, 40000)


def case_target_reset(eng):
    f = established(eng, 40000)
    eng.reset_backend(0, Backend(*f.backend))
    return EP_PORT, from_client(TCP(sport=40000, dport=80, flags="PA") / b"data")


def case_proxy_syn_data(eng):
    return EP_PORT, from_client(TCP(sport=40000, dport=443, flags="S") / b"early")


def case_icmp_no_flow(eng):
    err = ICMP(type=3, code=4) / IPerror(src=EP_IP, dst=CLIENT) / TCPerror(sport=80, dport=40000)
    return EP_PORT, from_client(err)


def case_not_for_us(eng):
    return EP_PORT, bytes(Ether(src=CONSUMER_ROUTER_MAC, dst="02:00:00:00:00:99") /
                          IP(src=CLIENT, dst=EP_IP) / TCP(dport=80, flags="S"))


def case_ip_checksum(eng):
    return EP_PORT, bytes(Ether(src=CONSUMER_ROUTER_MAC, dst=EP_MAC) /
                          IP(src=CLIENT, dst=EP_IP, chksum=0x1234) / TCP(dport=80, flags="S"))


DROPS = {name[len("case_"):]: fn for name, fn in globals().items() if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(DROPS))
def test_trace_names_each_drop_and_the_engine_really_drops(case: str) -> None:
    eng = build(capacity=16 if case == "flow_table_full" else 4096)
    port, frame = DROPS[case](eng)
    before = snapshot(eng)
    t, r = agree(eng, port, frame, 2 * S)
    reason = case.removesuffix("_link")
    assert t.drop_reason == reason and r.drop_reason == reason
    assert reason in DROP_REASONS
    assert eng.drops(port)[reason] == 1
    assert before != snapshot(eng)  # the real packet was counted; the trace before it was not


def test_trace_reports_the_rules_backend_and_port_it_used() -> None:
    eng = build()
    eng.set_security_group(EP_PORT, "ingress", [SgRule("tcp", "0.0.0.0/0", 443, 443),
                                                SgRule("tcp", "10.0.1.0/24", 80, 80)])
    eng.set_security_group(NLB_PORT, "egress", [SgRule("tcp", "10.0.0.0/8", 8080, 8080)])
    t = eng.trace(EP_PORT, proto="tcp", src=CLIENT, sport=40000, dst=EP_IP, dport=80)
    assert (t.verdict, t.sg_ingress, t.sg_egress, t.sg_egress_port) == ("forward", 1, 0, NLB_PORT)
    assert t.backend_how == "maglev" and 0 <= t.backend_index < 65537
    assert t.snat_how == "free" and t.out_src[0] == NLB_IP and 2000 <= t.out_src[1] <= 2015
    assert (t.mtu, t.mss_clamp, t.mss_out, t.proxy_len) == (8500, 8460, 1460, 0)
    r = eng.simulate(syn(80, 40000, seq=1), EP_PORT, S)
    (f,) = eng.flows()
    assert (f.snat, f.backend) == (t.out_src, t.out_dst) and r.verdict == "forward"
    hit = eng.trace(EP_PORT, proto="tcp", src=CLIENT, sport=40000, dst=EP_IP, dport=80, flags="A")
    assert (hit.flow, hit.flow_id, hit.flow_dir, hit.tcp_state) == ("hit", f.id, 0, "SYN_SENT")
    proxy = eng.trace(EP_PORT, proto="tcp", src=CLIENT, sport=40000, dst=EP_IP, dport=443)
    assert proxy.proxy_len == 100
    link = eng.trace(ATT, proto="tcp", src=GATEWAY, sport=50000, dst="10.0.1.20", dport=8080)
    assert (link.kind, link.backend_how, link.backend_index, link.out_port) == \
        ("vpc_nat", "link_route", 0, ENI0)
    assert (link.out_src[0], link.out_dst, link.mss_out) == (ENI_IP[ENI0], ("10.0.1.20", 8080), 1460)


def test_trace_refuses_what_it_cannot_trace() -> None:
    eng = build()
    with pytest.raises(EngineError, match="TCP .6., UDP .17. or ICMP .1., not protocol 47"):
        eng.trace(EP_PORT, proto=47, src=CLIENT, dst=EP_IP)
    with pytest.raises(EngineError, match="at most 9216 bytes"):
        eng.trace(EP_PORT, proto="udp", src=CLIENT, dst=EP_IP, dport=53, size=10000)
    with pytest.raises(EngineError, match="beyond the engine's ports"):
        eng.trace(300, proto="udp", src=CLIENT, dst=EP_IP, dport=53)
    with pytest.raises(EngineError, match="TCP flags 'SX'"):
        eng.trace(EP_PORT, proto="tcp", src=CLIENT, dst=EP_IP, dport=80, flags="SX")
    assert eng.trace(3, proto="udp", src=CLIENT, dst=EP_IP, dport=53).drop_reason == "unknown_port"
