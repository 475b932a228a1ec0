"""VPC-to-VPC NAT (a VPC link) through the engine, as golden tables.

The topology (API Gateway's side and two customer VPCs whose CIDRs overlap):

    port 5  link A's attachment   02:00:00:00:01:05   peer (API Gateway's VPC) 02:..:01:a5
    port 6  link A's ENI in AZ a  02:00:00:00:01:06   10.0.1.4    peer (VPC router) 02:..:01:a6
    port 7  link A's ENI in AZ b  02:00:00:00:01:07   10.0.2.4    peer 02:..:01:a7
    port 8  link B's attachment   02:00:00:00:01:08   peer 02:..:01:a8
    port 9  link B's ENI          02:00:00:00:01:09   10.0.1.5    peer 02:..:01:a9

    link A: 10.0.0.0/16 from port 5, routes 10.0.1.0/24 → ENI 0, 10.0.2.0/24 → ENI 1
    link B: 10.0.0.0/16 from port 8 (another VPC with the same CIDR), one ENI, no route

Each case is a frame in (scapy) and the frame out (scapy, checksums computed by scapy) or
the drop reason:

    (src, sport, dst, dport) on the attachment ⇒ (ENI ip, snat port, dst, dport) out of the ENI
    (dst, dport, ENI ip, snat port) on the ENI ⇒ (dst, dport, src, sport) out of the attachment
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from conftest import S, recomputed
from dataplane.forwarder.engine import Engine, EngineError, LinkEni, LinkRoute, SgRule
from dataplane.compile.spec import ForwarderSpec, SpecError
from dataplane.forwarder.spec import Applied, apply_spec
from test_icmp import recomputed_error

ATT_A, ENI_A0, ENI_A1, ATT_B, ENI_B0 = 5, 6, 7, 8, 9
MAC = {p: f"02:00:00:00:01:{p:02x}" for p in (ATT_A, ENI_A0, ENI_A1, ATT_B, ENI_B0)}
PEER = {p: f"02:00:00:00:01:a{p}" for p in MAC}
ENI_IP = {ENI_A0: "10.0.1.4", ENI_A1: "10.0.2.4", ENI_B0: "10.0.1.5"}
GATEWAY = "198.18.0.10"       # API Gateway's front end, on its side of the links
TARGET_A, TARGET_B = "10.0.1.20", "10.0.2.20"   # in AZ a and AZ b of the link VPC
UNROUTED = "10.0.3.30"        # in the link VPC, in a subnet no route names


def make_engine(capacity: int = 4096) -> Engine:
    eng = Engine(flow_capacity=capacity)
    eng.set_port(ATT_A, MAC[ATT_A], ["198.18.0.1"], peer_mac=PEER[ATT_A])
    eng.set_port(ATT_B, MAC[ATT_B], ["198.18.0.1"], peer_mac=PEER[ATT_B])
    for port, ip in ENI_IP.items():
        eng.set_port(port, MAC[port], [ip], peer_mac=PEER[port])
    return eng


def add_link_a(eng: Engine, **kw) -> int:
    return eng.add_vpc_link(ATT_A, ["10.0.0.0/16"],
                            [LinkEni(ENI_A0, ENI_IP[ENI_A0]), LinkEni(ENI_A1, ENI_IP[ENI_A1])],
                            [LinkRoute("10.0.1.0/24", 0), LinkRoute("10.0.2.0/24", 1)], **kw)


@pytest.fixture
def engine() -> Engine:
    eng = make_engine()
    add_link_a(eng, mtu=8500, mss_clamp=8460)
    return eng


def from_gateway(l4, dst: str, port: int = ATT_A, src: str = GATEWAY) -> bytes:
    return bytes(Ether(src=PEER[port], dst=MAC[port]) / IP(src=src, dst=dst) / l4)


def from_customer(l4, src: str, port: int, dst: str | None = None) -> bytes:
    return bytes(Ether(src=PEER[port], dst=MAC[port]) / IP(src=src, dst=dst or ENI_IP[port]) / l4)


def out_of_eni(l4, dst: str, port: int) -> bytes:
    return bytes(Ether(src=MAC[port], dst=PEER[port]) / IP(src=ENI_IP[port], dst=dst) / l4)


def to_gateway(l4, src: str, port: int = ATT_A, dst: str = GATEWAY) -> bytes:
    return bytes(Ether(src=MAC[port], dst=PEER[port]) / IP(src=src, dst=dst) / l4)


def test_tcp_connection_both_directions(engine: Engine) -> None:
    out = engine.simulate(from_gateway(TCP(sport=40000, dport=80, flags="S", seq=7), TARGET_B), ATT_A, S)
    assert (out.verdict, out.out_port, out.drop_reason) == ("forward", ENI_A1, "none")
    (flow,) = engine.flows()
    assert (flow.kind, flow.service, flow.in_port, flow.out_port) == ("vpc_nat", 0, ATT_A, ENI_A1)
    assert flow.client == (GATEWAY, 40000) and flow.vip == flow.backend == (TARGET_B, 80)
    snat = flow.snat[1]
    assert flow.snat[0] == ENI_IP[ENI_A1] and 1024 <= snat <= 65535
    assert out.frame == out_of_eni(TCP(sport=snat, dport=80, flags="S", seq=7), TARGET_B, ENI_A1)
    cases = [
        (ENI_A1, from_customer(TCP(sport=80, dport=snat, flags="SA", seq=90, ack=8), TARGET_B, ENI_A1),
         ATT_A, to_gateway(TCP(sport=80, dport=40000, flags="SA", seq=90, ack=8), TARGET_B)),
        (ATT_A, from_gateway(TCP(sport=40000, dport=80, flags="PA", seq=8, ack=91) / b"GET /", TARGET_B),
         ENI_A1, out_of_eni(TCP(sport=snat, dport=80, flags="PA", seq=8, ack=91) / b"GET /", TARGET_B, ENI_A1)),
        (ENI_A1, from_customer(TCP(sport=80, dport=snat, flags="PA", seq=91, ack=13) / (b"x" * 700), TARGET_B, ENI_A1),
         ATT_A, to_gateway(TCP(sport=80, dport=40000, flags="PA", seq=91, ack=13) / (b"x" * 700), TARGET_B)),
    ]
    for in_port, frame_in, out_port, frame_out in cases:
        out = engine.simulate(frame_in, in_port, 2 * S)
        assert (out.verdict, out.out_port) == ("forward", out_port), Ether(frame_in).summary()
        assert out.frame == frame_out, Ether(frame_in).summary()
    assert engine.flows()[0].tcp_state == "ESTABLISHED"
    assert engine.counters(ATT_A)["flows_created"] == 1


def test_udp_datagram_and_its_reply(engine: Engine) -> None:
    out = engine.simulate(from_gateway(UDP(sport=5000, dport=53) / b"query", TARGET_A), ATT_A, S)
    assert (out.verdict, out.out_port) == ("forward", ENI_A0)
    (flow,) = engine.flows()
    snat = flow.snat[1]
    assert (flow.protocol, flow.snat[0]) == ("udp", ENI_IP[ENI_A0])
    assert out.frame == out_of_eni(UDP(sport=snat, dport=53) / b"query", TARGET_A, ENI_A0)
    back = engine.simulate(from_customer(UDP(sport=53, dport=snat) / b"answer", TARGET_A, ENI_A0), ENI_A0, S)
    assert (back.verdict, back.out_port) == ("forward", ATT_A)
    assert back.frame == to_gateway(UDP(sport=53, dport=5000) / b"answer", TARGET_A)


@pytest.mark.parametrize("l4, reason", [
    pytest.param(TCP(sport=80, dport=2000, flags="S"), "link_one_way", id="syn"),
    pytest.param(UDP(sport=53, dport=2000) / b"hello", "link_one_way", id="udp"),
    pytest.param(TCP(sport=80, dport=2000, flags="A"), "no_flow", id="stray_ack"),
    pytest.param(TCP(sport=80, dport=2000, flags="R"), "no_flow", id="stray_rst"),
])
def test_customer_side_cannot_open_a_flow(engine: Engine, l4, reason: str) -> None:
    """One way: nothing arriving on a link ENI opens a flow; no RST is sent back either."""
    out = engine.simulate(from_customer(l4, TARGET_A, ENI_A0), ENI_A0, S)
    assert (out.verdict, out.drop_reason) == ("drop", reason)
    assert engine.drops(ENI_A0)[reason] == 1
    assert engine.counters(ENI_A0)["tx_packets"] == 0 and engine.flow_count == 0


@pytest.mark.parametrize("l4, dst, reason", [
    pytest.param(ICMP(type=8, id=3), TARGET_A, "no_service", id="icmp_echo"),
    pytest.param(TCP(sport=1, dport=80, flags="S"), "10.1.0.9", "no_service", id="outside_prefixes"),
    pytest.param(TCP(sport=1, dport=80, flags="A"), TARGET_A, "not_syn", id="no_flow_ack"),
])
def test_what_the_attachment_does_not_carry(engine: Engine, l4, dst: str, reason: str) -> None:
    out = engine.simulate(from_gateway(l4, dst), ATT_A, S)
    assert (out.verdict, out.drop_reason) == ("drop", reason)
    assert out.verdict == "drop" and engine.drops(ATT_A)[reason] == 1 and engine.flow_count == 0


def test_eni_security_group_egress_decides_new_flows_and_replies_pass(engine: Engine) -> None:
    engine.set_security_group(ENI_A1, "egress", [SgRule("tcp", "10.0.2.0/24", 80, 80)])
    denied = engine.simulate(from_gateway(TCP(sport=40000, dport=22, flags="S"), TARGET_B), ATT_A, S)
    assert (denied.verdict, denied.drop_reason) == ("drop", "sg_egress")
    udp = engine.simulate(from_gateway(UDP(sport=40000, dport=80), TARGET_B), ATT_A, S)
    assert (udp.verdict, udp.drop_reason) == ("drop", "sg_egress")
    allowed = engine.simulate(from_gateway(TCP(sport=40000, dport=80, flags="S"), TARGET_B), ATT_A, S)
    assert (allowed.verdict, allowed.out_port) == ("forward", ENI_A1)
    snat = engine.flows()[0].snat[1]
    # Stateful: the reply passes (no ingress rule on the ENI would allow it otherwise).
    engine.set_security_group(ENI_A1, "ingress", [])
    back = engine.simulate(from_customer(TCP(sport=80, dport=snat, flags="SA"), TARGET_B, ENI_A1), ENI_A1, S)
    assert back.verdict == "forward"
    # The other ENI has no rules: everything may leave there.
    other = engine.simulate(from_gateway(TCP(sport=40000, dport=22, flags="S"), TARGET_A), ATT_A, S)
    assert (other.verdict, other.out_port) == ("forward", ENI_A0)
    assert engine.drops(ATT_A)["sg_egress"] == 2


def test_eni_is_chosen_by_route_longest_prefix_first() -> None:
    eng = make_engine()
    eng.add_vpc_link(ATT_A, ["10.0.0.0/16"],
                     [LinkEni(ENI_A0, ENI_IP[ENI_A0]), LinkEni(ENI_A1, ENI_IP[ENI_A1])],
                     [LinkRoute("10.0.0.0/16", 1), LinkRoute("10.0.1.0/24", 0),
                      LinkRoute("10.0.1.16/28", 1)])
    for sport, dst, port in [(1, "10.0.1.9", ENI_A0), (2, "10.0.1.20", ENI_A1),
                             (3, "10.0.2.9", ENI_A1), (4, "10.0.200.1", ENI_A1)]:
        out = eng.simulate(from_gateway(TCP(sport=sport, dport=80, flags="S"), dst), ATT_A, S)
        assert (out.verdict, out.out_port) == ("forward", port), dst
        assert Ether(out.frame)[IP].src == ENI_IP[port]


def test_unrouted_destination_takes_an_eni_by_hash(engine: Engine) -> None:
    """A destination no route covers: flows spread over the link's ENIs (by their
    5-tuple), each leaving with its own ENI's address; a flow keeps its ENI."""
    used = {}
    for sport in range(1000, 1064):
        out = engine.simulate(from_gateway(TCP(sport=sport, dport=443, flags="S"), UNROUTED), ATT_A, S)
        assert out.verdict == "forward"
        assert Ether(out.frame)[IP].src == ENI_IP[out.out_port]
        used[sport] = out.out_port
    assert set(used.values()) == {ENI_A0, ENI_A1}
    again = engine.simulate(from_gateway(TCP(sport=1000, dport=443, flags="A"), UNROUTED), ATT_A, S)
    assert again.out_port == used[1000]


def test_links_with_overlapping_cidrs_are_kept_apart_by_attachment(engine: Engine) -> None:
    engine.add_vpc_link(ATT_B, ["10.0.0.0/16"], [LinkEni(ENI_B0, ENI_IP[ENI_B0])])
    syn = TCP(sport=40000, dport=80, flags="S")
    a = engine.simulate(from_gateway(syn, TARGET_A, ATT_A), ATT_A, S)
    b = engine.simulate(from_gateway(syn, TARGET_A, ATT_B), ATT_B, S)
    assert (a.out_port, b.out_port) == (ENI_A0, ENI_B0)
    flows = {f.in_port: f for f in engine.flows()}
    assert flows[ATT_A].service != flows[ATT_B].service
    assert flows[ATT_B].snat[0] == ENI_IP[ENI_B0]
    # Each VPC's reply goes back out of its own link's attachment.
    for att, eni in ((ATT_A, ENI_A0), (ATT_B, ENI_B0)):
        reply = from_customer(TCP(sport=80, dport=flows[att].snat[1], flags="SA"), TARGET_A, eni)
        out = engine.simulate(reply, eni, S)
        assert (out.verdict, out.out_port) == ("forward", att)
        assert out.frame == to_gateway(TCP(sport=80, dport=40000, flags="SA"), TARGET_A, att)


def test_port_pool_is_per_destination_and_exhaustion_is_counted() -> None:
    eng = make_engine()
    add_link_a(eng, snat_ports=(5000, 5001))
    for sport in (1, 2):
        out = eng.simulate(from_gateway(UDP(sport=sport, dport=53), TARGET_A), ATT_A, S)
        assert out.verdict == "forward"
    full = eng.simulate(from_gateway(UDP(sport=3, dport=53), TARGET_A), ATT_A, S)
    assert (full.verdict, full.drop_reason) == ("drop", "port_allocation")
    # Another destination (address or port) has the whole pool again.
    for dst, dport in (("10.0.1.21", 53), (TARGET_A, 54)):
        out = eng.simulate(from_gateway(UDP(sport=3, dport=dport), dst), ATT_A, S)
        assert out.verdict == "forward"
        assert Ether(out.frame)[UDP].sport in (5000, 5001)
    assert eng.drops(ATT_A)["port_allocation"] == 1


def test_a_link_pool_full_of_half_open_flows_gives_the_oldest_ones_port() -> None:
    """The SYN-flood rule (tests/unit/test_flood.py) holds for VPC links too: they open
    flows through the same allocator."""
    eng = make_engine()
    add_link_a(eng, snat_ports=(5000, 5001))
    ports = {}
    for sport in (1, 2):
        out = eng.simulate(from_gateway(TCP(sport=sport, dport=80, flags="S"), TARGET_A), ATT_A, S)
        ports[sport] = Ether(out.frame)[TCP].sport
    out = eng.simulate(from_gateway(TCP(sport=3, dport=80, flags="S"), TARGET_A), ATT_A, S)
    assert out.verdict == "forward" and Ether(out.frame)[TCP].sport == ports[1]
    assert {f.client[1] for f in eng.flows()} == {2, 3}
    assert eng.counters(ATT_A)["evicted_port_pool"] == 1


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_idle_flow_expires_after_350s(engine: Engine, proto: str) -> None:
    if proto == "tcp":
        engine.simulate(from_gateway(TCP(sport=40000, dport=80, flags="S"), TARGET_A), ATT_A, S)
        snat = engine.flows()[0].snat[1]
        engine.simulate(from_customer(TCP(sport=80, dport=snat, flags="SA"), TARGET_A, ENI_A0), ENI_A0, S)
        engine.simulate(from_gateway(TCP(sport=40000, dport=80, flags="A"), TARGET_A), ATT_A, S)
        reply = from_customer(TCP(sport=80, dport=snat, flags="A"), TARGET_A, ENI_A0)
        stale = "no_flow"
    else:
        engine.simulate(from_gateway(UDP(sport=40000, dport=53), TARGET_A), ATT_A, S)
        snat = engine.flows()[0].snat[1]
        reply = from_customer(UDP(sport=53, dport=snat), TARGET_A, ENI_A0)
        stale = "link_one_way"
    assert engine.simulate(reply, ENI_A0, 350 * S).verdict == "forward"  # 349 s idle
    out = engine.simulate(reply, ENI_A0, 700 * S)                       # 350 s idle
    assert (out.verdict, out.drop_reason) == ("drop", stale)
    (expired,) = engine.expired()
    assert expired.kind == "vpc_nat" and expired.snat == (ENI_IP[ENI_A0], snat)


def test_icmp_error_about_a_flow_is_translated_back(engine: Engine) -> None:
    sent = from_gateway(UDP(sport=5000, dport=53) / b"q", TARGET_A)
    out = engine.simulate(sent, ATT_A, S)
    snat = engine.flows()[0].snat[1]
    router = "10.0.1.1"
    err = bytes(Ether(src=PEER[ENI_A0], dst=MAC[ENI_A0]) / IP(src=router, dst=ENI_IP[ENI_A0]) /
                ICMP(type=3, code=3) / out.frame[14:])
    back = engine.simulate(err, ENI_A0, S)
    assert (back.verdict, back.out_port) == ("forward", ATT_A)
    assert back.frame == to_gateway(ICMP(type=3, code=3) / sent[14:], TARGET_A)
    assert back.frame == recomputed_error(back.frame)
    assert snat == IP(out.frame[14:])[UDP].sport


def test_mss_is_clamped_and_mtu_enforced(engine: Engine) -> None:
    syn = from_gateway(TCP(sport=40000, dport=80, flags="S", options=[("NOP", None), ("MSS", 9001)]), TARGET_A)
    out = engine.simulate(syn, ATT_A, S)
    assert dict(Ether(out.frame)[TCP].options)["MSS"] == 8460
    assert out.frame == recomputed(out.frame)
    assert engine.counters(ATT_A)["mss_clamped"] == 1
    big = from_gateway(TCP(sport=40000, dport=80, flags="A") / (b"x" * (8501 - 40)), TARGET_A)
    assert engine.simulate(big, ATT_A, S).drop_reason == "mtu"
    fits = from_gateway(TCP(sport=40000, dport=80, flags="A") / (b"x" * (8500 - 40)), TARGET_A)
    assert engine.simulate(fits, ATT_A, S).verdict == "forward"


def test_disabled_link_passes_nothing(engine: Engine) -> None:
    engine.simulate(from_gateway(TCP(sport=40000, dport=80, flags="S"), TARGET_A), ATT_A, S)
    engine.set_service_flags(0, disabled=True)
    for flags in ("A", "S"):
        out = engine.simulate(from_gateway(TCP(sport=40000 + (flags == "S"), dport=80, flags=flags), TARGET_A), ATT_A, S)
        assert (out.verdict, out.drop_reason) == ("drop", "service_disabled")


@pytest.mark.parametrize("call, message", [
    (lambda e: e.add_vpc_link(ATT_A, ["10.0.0.0/16"], [LinkEni(3, "10.0.1.4")]), "port 3 does not exist"),
    (lambda e: e.add_vpc_link(ATT_A, ["10.0.0.0/16"], [LinkEni(ATT_A, "10.0.1.4")]), "other than the attachment"),
    (lambda e: e.add_vpc_link(ATT_A, [], [LinkEni(ENI_A0, "10.0.1.4")]), "1 to 16 destination prefixes"),
    (lambda e: e.add_vpc_link(ATT_A, ["10.0.0.0/16"], []), "1 to 16 ENIs"),
    (lambda e: e.add_vpc_link(ATT_A, ["10.0.0/99"], [LinkEni(ENI_A0, "10.0.1.4")]), "VPC link prefix '10.0.0/99'"),
    (lambda e: e.add_vpc_link(ATT_A, ["10.0.0.0/16"], [LinkEni(ENI_A0, "10.0.1.4")], [("10.0.1.0/24", 1)]),
     "names ENI 1; the link has 1"),
    (lambda e: e.add_vpc_link(ATT_A, ["10.0.0.0/16"], [LinkEni(ENI_A0, "10.0.1.4")], protocols=["icmp"]),
     "carries 'tcp', 'udp' or both"),
    (lambda e: e.add_vpc_link(ATT_A, ["10.0.0.0/16"], [LinkEni(ENI_A0, "10.0.1.4")], snat_ports=(9, 8)),
     "SNAT port range 9-8"),
])
def test_bad_link_configuration_is_refused_with_a_reason(call, message: str) -> None:
    eng = make_engine()
    with pytest.raises(EngineError, match=message):
        call(eng)
    assert eng.flow_count == 0 and eng.add_vpc_link(ATT_A, ["10.0.0.0/16"], [LinkEni(ENI_A0, "10.0.1.4")]) == 0


def test_a_link_is_not_a_listener(engine: Engine) -> None:
    with pytest.raises(EngineError, match="port 5 already attaches VPC link service 0"):
        add_link_a(engine)
    with pytest.raises(EngineError, match="it has ENIs, not backends"):
        engine.set_backends(0, [("10.0.1.20", 80)])
    with pytest.raises(EngineError, match="port 7 is used by service 0"):
        engine.remove_port(ENI_A1)
    engine.remove_service(0)
    engine.remove_port(ENI_A1)
    out = engine.simulate(from_gateway(TCP(sport=1, dport=80, flags="S"), TARGET_A), ATT_A, S)
    assert out.drop_reason == "no_service"


# ---- the forwarder spec ----------------------------------------------------------------------

LINK_SPEC = {"name": "vpclink-0a1b2c3d4e5f6a7b8", "kind": "vpc_nat", "in_port": ATT_A,
             "prefixes": ["10.0.0.0/16"],
             "enis": [{"port": ENI_A0, "ip": ENI_IP[ENI_A0]}, {"port": ENI_A1, "ip": ENI_IP[ENI_A1]}],
             "routes": [{"cidr": "10.0.1.0/24", "eni": 0}, {"cidr": "10.0.2.0/24", "eni": 1}],
             "protocols": ["tcp", "udp"], "snat_ports": [1024, 65535], "idle_timeout_s": 350,
             "mtu": 8500, "mss_clamp": 8460, "disabled": False}
PORTS = [{"id": p, "name": f"p{p}", "mac": MAC[p], "peer_mac": PEER[p],
          "addrs": [ENI_IP.get(p, "198.18.0.1")]} for p in MAC]


def spec_of(*services: dict) -> ForwarderSpec:
    return ForwarderSpec.from_json({"ports": PORTS, "services": list(services)})


def test_spec_link_entry_is_applied_and_diffed() -> None:
    eng, applied = Engine(flow_capacity=1024), Applied()
    changes = apply_spec(eng, applied, spec_of(LINK_SPEC))
    assert changes["added"] == [LINK_SPEC["name"]]
    assert eng.simulate(from_gateway(TCP(sport=1, dport=80, flags="S"), TARGET_B), ATT_A, S).out_port == ENI_A1
    # Unchanged: nothing happens, the flow stays. Disabled: updated in place, flow kept.
    assert apply_spec(eng, applied, spec_of(LINK_SPEC))["updated"] == []
    changes = apply_spec(eng, applied, spec_of({**LINK_SPEC, "disabled": True}))
    assert (changes["updated"], changes["removed"], eng.flow_count) == ([LINK_SPEC["name"]], [], 1)
    assert eng.simulate(from_gateway(TCP(sport=2, dport=80, flags="S"), TARGET_B), ATT_A, S).drop_reason \
        == "service_disabled"
    # A changed route is a changed link: replaced, its flows gone.
    moved = {**LINK_SPEC, "routes": [{"cidr": "10.0.2.0/24", "eni": 0}]}
    changes = apply_spec(eng, applied, spec_of(moved))
    assert (changes["removed"], changes["added"], eng.flow_count) == ([LINK_SPEC["name"]], [LINK_SPEC["name"]], 0)
    assert eng.simulate(from_gateway(TCP(sport=3, dport=80, flags="S"), TARGET_B), ATT_A, S).out_port == ENI_A0


@pytest.mark.parametrize("entry, message", [
    ({**LINK_SPEC, "vip": "10.0.0.1"}, r"services\[0\]: unknown field 'vip'"),
    ({k: v for k, v in LINK_SPEC.items() if k != "enis"}, r"services\[0\]: 'enis' is missing"),
    ({**LINK_SPEC, "kind": "alb"}, r"services\[0\].kind: unknown kind 'alb'"),
    ({**LINK_SPEC, "enis": [{"port": ENI_A0}]}, r"services\[0\].enis\[0\]: 'ip' is missing"),
])
def test_bad_spec_link_entry_is_refused_naming_the_field(entry: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec_of(entry)
