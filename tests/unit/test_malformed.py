"""Malformed and unsupported frames: every drop reason bad input can cause, as a golden table.

Each row of the table is one crafted frame (built with scapy, or scapy's bytes patched
where scapy would repair the field) handed to one port, and the drop reason the engine
must give it. For every row the test checks the verdict, the reason, that the frame was
left as it was, and that exactly one drop was counted on the port: one more for that
reason, none for any other, one more `dropped`, nothing sent.

The reasons covered are the ones hp_counters.h lists for bad framing or unsupported
protocols: eth_truncated, vlan_stacked, not_for_us, ethertype, arp_malformed,
arp_not_ours, ip_truncated, ip_version, ip_ihl, ip_length, ip_checksum, ip_fragment,
l4_truncated, tcp_doff, udp_length, proto, icmp_type, icmp_inner, icmp_no_flow and
unknown_port (a port that does not exist: it has a test of its own).

The table runs through both kinds of service: the PrivateLink listeners below, and a VPC
link attached on the endpoint port whose ENI is the NLB port (the same frames, the same
reasons: bad input is refused before any kind sees it).

Below the table: the controls (the unpatched frames the rows start from are accepted,
so a row's drop is caused by its patch), what is tolerated (one 802.1Q or 802.1ad tag,
kept on the way out; DF; Ethernet padding), and a hypothesis fuzz test, for both kinds:
random bytes and truncated or bit-flipped valid frames never crash the engine, always get a verdict, a
known reason and consistent counters, and never grow the buffer they were given.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.layers.sctp import SCTP
from scapy.layers.l2 import GRE
from scapy.packet import Raw

from conftest import (CLIENT, CONSUMER_ROUTER_MAC, EP_IP, EP_MAC, EP_PORT, NLB_IP, NLB_MAC,
                      NLB_PORT, PROVIDER_ROUTER_MAC, S, TARGETS, from_client, from_target,
                      make_engine, recomputed)
from dataplane.forwarder.engine import DROP_REASONS, Backend, Engine, LinkEni

BCAST = "ff:ff:ff:ff:ff:ff"
L3 = 14                      # IPv4 header offset in an untagged frame
L4 = L3 + 20                 # L4 header offset behind an option-less IPv4 header
TARGET = TARGETS[0].ip
PROVIDER_ROUTER_IP = "10.0.2.1"


# ---- builders -----------------------------------------------------------------------------

def eth(dst: str = EP_MAC, **kw) -> Ether:
    return Ether(src=CONSUMER_ROUTER_MAC, dst=dst, **kw)


def ipv4(**kw) -> IP:
    return IP(src=CLIENT, dst=EP_IP, **kw)


def syn(sport: int = 40000) -> TCP:
    return TCP(sport=sport, dport=80, flags="S", seq=1000)


def patch(frame: bytes, offset: int, new: bytes) -> bytes:
    """`frame` with the bytes at `offset` replaced by `new` (same length)."""
    assert offset + len(new) <= len(frame)
    return frame[:offset] + new + frame[offset + len(new):]


def ip_checksum(header: bytes) -> int:
    s = sum(int.from_bytes(header[i:i + 2], "big") for i in range(0, len(header), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def fix_ip_checksum(frame: bytes, l3: int = L3) -> bytes:
    """Recomputes the IPv4 header checksum after a patch, so only the patched field is wrong."""
    ihl = max((frame[l3] & 0x0F) * 4, 20)
    header = patch(frame[l3:l3 + ihl], 10, b"\0\0")
    return patch(frame, l3 + 10, ip_checksum(header).to_bytes(2, "big"))


def wrong_ip_checksum(frame: bytes) -> bytes:
    good = int.from_bytes(frame[L3 + 10:L3 + 12], "big")
    return patch(frame, L3 + 10, (good ^ 0x0101).to_bytes(2, "big"))


def arp_request(pdst: str = EP_IP, op: str = "who-has") -> bytes:
    return bytes(eth(BCAST) / ARP(op=op, hwsrc=CONSUMER_ROUTER_MAC, psrc="10.0.1.1", pdst=pdst))


def icmp_error(quoted: bytes, type_: int = 3, code: int = 3, side: str = "client") -> bytes:
    """An ICMP error quoting `quoted` (an IPv4 packet's bytes, or garbage)."""
    if side == "client":
        return from_client(ICMP(type=type_, code=code) / Raw(quoted))
    return from_target(ICMP(type=type_, code=code) / Raw(quoted), src=PROVIDER_ROUTER_IP)


def quoted_udp_to_target(sport: int = 33333) -> bytes:
    """What the NLB ENI would have sent toward a target, as a provider router quotes it."""
    return bytes(IP(src=NLB_IP, dst=TARGET) / UDP(sport=sport, dport=8080) / b"payload")


GOOD_SYN = from_client(syn())
GOOD_UDP = from_client(UDP(sport=5000, dport=53) / b"query")       # to a UDP service (fixture)
GOOD_ICMP = from_client(ICMP(type=8, id=7, seq=1) / b"ping")         # to an ICMP service
GOOD_ARP = arp_request()


# ---- the table ----------------------------------------------------------------------------
# (frame, port the frame arrives on, drop reason)

MALFORMED = [
    # Ethernet
    pytest.param(b"", EP_PORT, "eth_truncated", id="eth_truncated-empty"),
    pytest.param(GOOD_SYN[:13], EP_PORT, "eth_truncated", id="eth_truncated-13_bytes"),
    pytest.param(bytes(eth() / Dot1Q(vlan=7) / ipv4() / syn())[:17], EP_PORT, "eth_truncated",
                 id="eth_truncated-vlan_tag_cut"),
    pytest.param(bytes(eth() / Dot1Q(vlan=7) / Dot1Q(vlan=8) / ipv4() / syn()), EP_PORT,
                 "vlan_stacked", id="vlan_stacked-qinq_8100_8100"),
    pytest.param(bytes(eth() / Dot1AD(vlan=7) / Dot1Q(vlan=8) / ipv4() / syn()), EP_PORT,
                 "vlan_stacked", id="vlan_stacked-qinq_88a8_8100"),
    pytest.param(bytes(eth("02:00:00:00:00:99") / ipv4() / syn()), EP_PORT, "not_for_us",
                 id="not_for_us-other_unicast_mac"),
    pytest.param(bytes(eth(NLB_MAC) / ipv4() / syn()), EP_PORT, "not_for_us",
                 id="not_for_us-other_ports_mac"),
    pytest.param(bytes(eth("01:00:5e:00:00:01") / ipv4() / syn()), EP_PORT, "not_for_us",
                 id="not_for_us-ipv4_multicast_mac"),
    pytest.param(bytes(eth(BCAST) / ipv4() / syn()), EP_PORT, "not_for_us",
                 id="not_for_us-ipv4_to_broadcast_mac"),
    pytest.param(bytes(eth() / IPv6(src="fd00::10", dst="fd00::50") / syn()), EP_PORT, "ethertype",
                 id="ethertype-ipv6"),
    pytest.param(bytes(eth() / Dot1Q(vlan=7) / IPv6(src="fd00::10", dst="fd00::50") / syn()),
                 EP_PORT, "ethertype", id="ethertype-ipv6_tagged"),
    pytest.param(bytes(eth(type=0x88CC) / Raw(b"\x02\x07\x04" + b"\0" * 43)), EP_PORT, "ethertype", id="ethertype-lldp"),
    pytest.param(bytes(eth(BCAST, type=0x88CC) / Raw(b"\0" * 46)), EP_PORT, "ethertype",
                 id="ethertype-lldp_broadcast"),
    pytest.param(bytes(eth(type=0x0026) / Raw(b"\x42\x42\x03" + b"\0" * 35)), EP_PORT, "ethertype",
                 id="ethertype-802.3_llc_stp"),
    # ARP
    pytest.param(GOOD_ARP[:L3 + 27], EP_PORT, "arp_malformed", id="arp_malformed-27_bytes"),
    pytest.param(patch(GOOD_ARP, L3 + 0, b"\x00\x06"), EP_PORT, "arp_malformed",
                 id="arp_malformed-hwtype_ieee802"),
    pytest.param(patch(GOOD_ARP, L3 + 2, b"\x86\xdd"), EP_PORT, "arp_malformed",
                 id="arp_malformed-ptype_ipv6"),
    pytest.param(patch(GOOD_ARP, L3 + 4, b"\x08"), EP_PORT, "arp_malformed", id="arp_malformed-hwlen_8"),
    pytest.param(patch(GOOD_ARP, L3 + 5, b"\x10"), EP_PORT, "arp_malformed", id="arp_malformed-plen_16"),
    pytest.param(arp_request("10.0.1.99"), EP_PORT, "arp_not_ours", id="arp_not_ours-other_address"),
    pytest.param(arp_request(NLB_IP), EP_PORT, "arp_not_ours", id="arp_not_ours-other_ports_address"),
    pytest.param(arp_request(EP_IP, op="is-at"), EP_PORT, "arp_not_ours", id="arp_not_ours-reply"),
    pytest.param(patch(GOOD_ARP, L3 + 6, b"\x00\x03"), EP_PORT, "arp_not_ours",
                 id="arp_not_ours-rarp_opcode"),
    # IPv4 header
    pytest.param(GOOD_SYN[:L3 + 19], EP_PORT, "ip_truncated", id="ip_truncated-19_bytes"),
    pytest.param(GOOD_SYN[:L3], EP_PORT, "ip_truncated", id="ip_truncated-no_header"),
    pytest.param(bytes(eth() / Dot1Q(vlan=7) / ipv4() / syn())[:18 + 19], EP_PORT, "ip_truncated",
                 id="ip_truncated-tagged_19_bytes"),
    pytest.param(patch(bytes(eth() / ipv4() / Raw(b"\0" * 20)), L3, b"\x4f"), EP_PORT,
                 "ip_truncated", id="ip_truncated-ihl_60_in_40_bytes"),
    pytest.param(fix_ip_checksum(patch(GOOD_SYN, L3, b"\x65")), EP_PORT, "ip_version",
                 id="ip_version-6"),
    pytest.param(fix_ip_checksum(patch(GOOD_SYN, L3, b"\x05")), EP_PORT, "ip_version",
                 id="ip_version-0"),
    pytest.param(fix_ip_checksum(patch(GOOD_SYN, L3, b"\x44")), EP_PORT, "ip_ihl", id="ip_ihl-4"),
    pytest.param(fix_ip_checksum(patch(GOOD_SYN, L3, b"\x40")), EP_PORT, "ip_ihl", id="ip_ihl-0"),
    pytest.param(bytes(eth() / ipv4(len=19) / syn()), EP_PORT, "ip_length",
                 id="ip_length-below_header"),
    pytest.param(bytes(eth() / ipv4(len=0) / syn()), EP_PORT, "ip_length", id="ip_length-zero"),
    pytest.param(bytes(eth() / ipv4(options=[IPOption_NOP()] * 4, len=22) / syn()), EP_PORT,
                 "ip_length", id="ip_length-below_header_with_options"),
    pytest.param(bytes(eth() / ipv4(len=41) / syn()), EP_PORT, "ip_length",
                 id="ip_length-one_past_frame"),
    pytest.param(bytes(eth() / ipv4(len=1500) / syn()), EP_PORT, "ip_length",
                 id="ip_length-far_past_frame"),
    pytest.param(wrong_ip_checksum(GOOD_SYN), EP_PORT, "ip_checksum", id="ip_checksum-flipped_bits"),
    pytest.param(patch(GOOD_SYN, L3 + 10, b"\0\0"), EP_PORT, "ip_checksum", id="ip_checksum-zero"),
    pytest.param(bytes(eth() / ipv4(flags="MF") / syn()), EP_PORT, "ip_fragment",
                 id="ip_fragment-first_MF"),
    pytest.param(bytes(eth() / ipv4(frag=185) / Raw(b"x" * 20)), EP_PORT, "ip_fragment",
                 id="ip_fragment-last_offset"),
    pytest.param(bytes(eth() / ipv4(flags="MF", frag=1) / Raw(b"x" * 24)), EP_PORT, "ip_fragment",
                 id="ip_fragment-middle_MF_and_offset"),
    pytest.param(bytes(eth() / ipv4(flags="DF+MF") / syn()), EP_PORT, "ip_fragment",
                 id="ip_fragment-DF_and_MF"),
    # L4 headers
    pytest.param(bytes(eth() / ipv4(proto=6) / Raw(b"\0" * 19)), EP_PORT, "l4_truncated",
                 id="l4_truncated-tcp_19_bytes"),
    pytest.param(bytes(eth() / ipv4(proto=6)), EP_PORT, "l4_truncated", id="l4_truncated-tcp_none"),
    pytest.param(bytes(eth() / ipv4(proto=6, len=30) / syn()), EP_PORT, "l4_truncated",
                 id="l4_truncated-tcp_cut_by_ip_length"),
    pytest.param(bytes(eth() / ipv4(proto=17) / Raw(b"\0" * 7)), EP_PORT, "l4_truncated",
                 id="l4_truncated-udp_7_bytes"),
    pytest.param(bytes(eth() / ipv4(proto=1) / Raw(b"\x08\0\0\0\0\x07\0")), EP_PORT,
                 "l4_truncated", id="l4_truncated-icmp_7_bytes"),
    pytest.param(bytes(eth() / ipv4(proto=1) / Raw(b"\x03\x03\0\0")), EP_PORT, "l4_truncated",
                 id="l4_truncated-icmp_error_4_bytes"),
    pytest.param(bytes(eth() / ipv4() / TCP(sport=40000, dport=80, flags="S", dataofs=4)), EP_PORT,
                 "tcp_doff", id="tcp_doff-4"),
    pytest.param(bytes(eth() / ipv4() / TCP(sport=40000, dport=80, flags="S", dataofs=0)), EP_PORT,
                 "tcp_doff", id="tcp_doff-0"),
    pytest.param(bytes(eth() / ipv4() / TCP(sport=40000, dport=80, flags="S", dataofs=6)), EP_PORT,
                 "tcp_doff", id="tcp_doff-6_past_segment"),
    pytest.param(bytes(eth() / ipv4() / TCP(sport=40000, dport=80, flags="S", dataofs=15) / (b"x" * 20)),
                 EP_PORT, "tcp_doff", id="tcp_doff-15_past_segment_with_data"),
    pytest.param(bytes(eth() / ipv4() / UDP(sport=5000, dport=53, len=7) / b"query"), EP_PORT,
                 "udp_length", id="udp_length-below_header"),
    pytest.param(bytes(eth() / ipv4() / UDP(sport=5000, dport=53, len=0) / b"query"), EP_PORT,
                 "udp_length", id="udp_length-zero"),
    pytest.param(bytes(eth() / ipv4() / UDP(sport=5000, dport=53, len=8) / b"query"), EP_PORT,
                 "udp_length", id="udp_length-shorter_than_payload"),
    pytest.param(bytes(eth() / ipv4() / UDP(sport=5000, dport=53, len=100) / b"query"), EP_PORT,
                 "udp_length", id="udp_length-longer_than_payload"),
    # protocols and ICMP types the engine does not carry
    pytest.param(bytes(eth() / ipv4() / GRE() / IP(src="192.168.0.1", dst="192.168.0.2")), EP_PORT,
                 "proto", id="proto-gre"),
    pytest.param(bytes(eth() / ipv4() / SCTP(sport=5000, dport=80)), EP_PORT, "proto", id="proto-sctp"),
    pytest.param(bytes(eth() / ipv4(proto=50) / Raw(b"\0" * 16)), EP_PORT, "proto", id="proto-esp"),
    pytest.param(bytes(eth() / ipv4(proto=4) / IP(src="192.168.0.1", dst="192.168.0.2")), EP_PORT,
                 "proto", id="proto-ipip"),
    pytest.param(bytes(eth() / ipv4(proto=0) / Raw(b"\0" * 8)), EP_PORT, "proto", id="proto-0"),
    pytest.param(from_client(ICMP(type=13, id=7) / Raw(b"\0" * 12)), EP_PORT, "icmp_type",
                 id="icmp_type-timestamp"),
    pytest.param(from_client(ICMP(type=5, code=1) / Raw(quoted_udp_to_target()[:28])), EP_PORT,
                 "icmp_type", id="icmp_type-redirect"),
    pytest.param(from_client(ICMP(type=4) / Raw(quoted_udp_to_target()[:28])), EP_PORT,
                 "icmp_type", id="icmp_type-source_quench"),
    pytest.param(from_client(ICMP(type=10)), EP_PORT, "icmp_type", id="icmp_type-router_solicitation"),
    pytest.param(from_client(ICMP(type=15, id=7)), EP_PORT, "icmp_type", id="icmp_type-info_request"),
    # ICMP errors whose quoted packet is garbage
    pytest.param(icmp_error(b"garbage!"), EP_PORT, "icmp_inner", id="icmp_inner-8_bytes_garbage"),
    pytest.param(icmp_error(b"\x45" + b"\0" * 18), EP_PORT, "icmp_inner", id="icmp_inner-19_byte_header"),
    pytest.param(icmp_error(bytes(IPv6(src="fd00::50", dst="fd00::10") / UDP(sport=53, dport=5000))),
                 EP_PORT, "icmp_inner", id="icmp_inner-quotes_ipv6"),
    pytest.param(icmp_error(b"\x43" + quoted_udp_to_target()[1:]), EP_PORT, "icmp_inner",
                 id="icmp_inner-quoted_ihl_3"),
    pytest.param(icmp_error(quoted_udp_to_target()[:27], side="target"), NLB_PORT, "icmp_inner",
                 id="icmp_inner-quoted_l4_7_bytes"),
    pytest.param(icmp_error(bytes(IP(src=NLB_IP, dst=TARGET, options=[IPOption_NOP()] * 4) /
                                  UDP(sport=33333, dport=8080))[:28], side="target"),
                 NLB_PORT, "icmp_inner", id="icmp_inner-quoted_options_hide_ports"),
    pytest.param(icmp_error(bytes(IP(src=EP_IP, dst=CLIENT) / GRE() / (b"\0" * 8))), EP_PORT,
                 "icmp_inner", id="icmp_inner-quotes_gre"),
    pytest.param(icmp_error(bytes(IP(src=EP_IP, dst=CLIENT) / ICMP(type=13) / (b"\0" * 12))), EP_PORT,
                 "icmp_inner", id="icmp_inner-quotes_icmp_timestamp"),
    pytest.param(icmp_error(bytes(IP(src=EP_IP, dst=CLIENT) / ICMP(type=3, code=3) /
                                  quoted_udp_to_target()), type_=11, code=0),
                 EP_PORT, "icmp_inner", id="icmp_inner-time_exceeded_quotes_an_error"),
    pytest.param(icmp_error(b"\x45" + b"\0" * 30, type_=12, code=0), EP_PORT, "icmp_inner",
                 id="icmp_inner-parameter_problem_quotes_zeros"),
    # ICMP errors quoting a well-formed packet of no flow
    pytest.param(icmp_error(quoted_udp_to_target(), side="target"), NLB_PORT, "icmp_no_flow",
                 id="icmp_no_flow-port_unreachable_from_target_side"),
    pytest.param(icmp_error(bytes(IP(src=NLB_IP, dst=TARGET) / TCP(sport=33333, dport=8080, flags="A")),
                            code=4, side="target"), NLB_PORT, "icmp_no_flow",
                 id="icmp_no_flow-frag_needed_from_target_side"),
    pytest.param(icmp_error(bytes(IP(src=EP_IP, dst=CLIENT) / TCP(sport=80, dport=40000, flags="SA"))),
                 EP_PORT, "icmp_no_flow", id="icmp_no_flow-from_client_side"),
    pytest.param(icmp_error(bytes(IP(src=NLB_IP, dst=TARGET, ttl=1) / ICMP(type=8, id=7)), type_=11,
                            code=0, side="target"), NLB_PORT, "icmp_no_flow",
                 id="icmp_no_flow-time_exceeded_quoting_echo"),
    pytest.param(icmp_error(quoted_udp_to_target(), side="client"), EP_PORT, "icmp_no_flow",
                 id="icmp_no_flow-target_side_tuple_on_client_port"),
]


@pytest.fixture
def services(engine: Engine, tcp_service: int) -> Engine:
    """The conftest engine with listeners for TCP 80, UDP 53 and ICMP echo on the endpoint."""
    udp = engine.add_service(EP_PORT, NLB_PORT, EP_IP, 53, "udp")
    engine.set_backends(udp, [Backend(TARGET, 5353)])
    icmp = engine.add_service(EP_PORT, NLB_PORT, EP_IP, 0, "icmp")
    engine.set_backends(icmp, [Backend(TARGET, 0)])
    return engine


@pytest.fixture(params=["privatelink", "vpc_nat"])
def any_kind(request, services: Engine) -> Engine:
    """`services`, or a VPC link attached on the endpoint port reaching 10/8 through one ENI
    on the NLB port (with the NLB's address)."""
    if request.param == "privatelink":
        return services

    def link_engine() -> Engine:
        eng = make_engine()
        eng.add_vpc_link(EP_PORT, ["10.0.0.0/8"], [LinkEni(NLB_PORT, NLB_IP)])
        return eng
    control = link_engine()
    assert control.simulate(GOOD_SYN, EP_PORT, S).verdict == "forward"  # the rows' origin passes
    return link_engine()


def snapshot(engine: Engine, port: int) -> tuple[dict[str, int], dict[str, int]]:
    return engine.drops(port), engine.counters(port)


@pytest.mark.parametrize("frame, port, reason", MALFORMED)
def test_malformed_frame_is_dropped_and_counted(any_kind: Engine, frame: bytes, port: int,
                                                reason: str) -> None:
    engine = any_kind
    drops_before, counters_before = snapshot(engine, port)
    out = engine.simulate(frame, port, S)
    assert (out.verdict, out.drop_reason) == ("drop", reason)
    assert out.frame == frame, "a dropped frame must be left as it came"
    drops_after, counters_after = snapshot(engine, port)
    changed = {k: drops_after[k] - drops_before[k] for k in drops_after if drops_after[k] != drops_before[k]}
    assert changed == {reason: 1}
    assert counters_after["dropped"] - counters_before["dropped"] == 1
    assert counters_after["rx_packets"] - counters_before["rx_packets"] == 1
    assert counters_after["rx_bytes"] - counters_before["rx_bytes"] == len(frame)
    for other in (EP_PORT, NLB_PORT):
        assert engine.counters(other)["tx_packets"] == 0, "nothing may be sent for a drop"
    assert engine.flow_count == 0


def test_table_covers_every_malformed_frame_reason() -> None:
    """Guards the table itself: each reason listed in the brief has a row, and each row's
    reason is one the engine knows (a renamed reason would otherwise pass unnoticed)."""
    wanted = {"eth_truncated", "vlan_stacked", "not_for_us", "ethertype", "arp_malformed",
              "arp_not_ours", "ip_truncated", "ip_version", "ip_ihl", "ip_length", "ip_checksum",
              "ip_fragment", "l4_truncated", "tcp_doff", "udp_length", "proto", "icmp_type",
              "icmp_inner", "icmp_no_flow"}
    in_table = {p.values[2] for p in MALFORMED}
    assert in_table == wanted
    assert wanted | {"unknown_port"} <= set(DROP_REASONS)


@pytest.mark.parametrize("port", [7, 255, 256, 1000])
def test_frame_on_unknown_port_is_dropped(services: Engine, port: int) -> None:
    """A port the engine was never given: dropped as unknown_port, out_port = in_port. There
    is no port to count it on, so the existing ports' counters must not move either."""
    before = {p: snapshot(services, p) for p in (EP_PORT, NLB_PORT)}
    out = services.simulate(GOOD_SYN, port, S)
    assert (out.verdict, out.out_port, out.drop_reason) == ("drop", port, "unknown_port")
    assert out.frame == GOOD_SYN
    assert {p: snapshot(services, p) for p in (EP_PORT, NLB_PORT)} == before
    assert services.flow_count == 0


def test_removed_port_is_unknown(services: Engine) -> None:
    services.set_port(9, "02:00:00:00:00:09", ["10.0.9.1"])
    services.remove_port(9)
    out = services.simulate(bytes(Ether(src=CONSUMER_ROUTER_MAC, dst="02:00:00:00:00:09") /
                                  IP(src=CLIENT, dst="10.0.9.1") / syn()), 9, S)
    assert (out.verdict, out.drop_reason) == ("drop", "unknown_port")


# ---- controls: the frames the rows were patched from are accepted -------------------------

@pytest.mark.parametrize("frame, verdict", [
    pytest.param(GOOD_SYN, "forward", id="syn"),
    pytest.param(GOOD_UDP, "forward", id="udp"),
    pytest.param(GOOD_ICMP, "forward", id="icmp_echo"),
    pytest.param(GOOD_ARP, "reply", id="arp_request"),
])
def test_unpatched_frames_are_accepted(services: Engine, frame: bytes, verdict: str) -> None:
    out = services.simulate(frame, EP_PORT, S)
    assert (out.verdict, out.drop_reason) == (verdict, "none")
    assert services.counters(EP_PORT)["dropped"] == 0


# ---- tolerated --------------------------------------------------------------------------

def to_target_frame(l2_tag, l4, target: str, snat_port: int) -> bytes:
    l4 = l4.copy()
    l4.sport, l4.dport = snat_port, 8080
    l2 = Ether(src=NLB_MAC, dst=PROVIDER_ROUTER_MAC)
    return bytes((l2 / l2_tag if l2_tag is not None else l2) / IP(src=NLB_IP, dst=target) / l4)


@pytest.mark.parametrize("tag", [
    pytest.param(Dot1Q(vlan=100, prio=3), id="802.1Q"),
    pytest.param(Dot1AD(vlan=200), id="802.1ad"),
])
def test_single_vlan_tag_is_tolerated_and_kept(services: Engine, tag) -> None:
    frame = bytes(eth() / tag / ipv4() / syn())
    out = services.simulate(frame, EP_PORT, S)
    assert (out.verdict, out.out_port, out.drop_reason) == ("forward", NLB_PORT, "none")
    (flow,) = services.flows()
    expected = to_target_frame(tag, syn(), flow.backend[0], flow.snat[1])
    assert out.frame == expected
    assert out.frame == recomputed(out.frame)


def test_tagged_syn_ack_comes_back_tagged(services: Engine) -> None:
    """The tag the target side uses is the one kept on the way back (ports are single VLANs:
    the engine does not translate tags, it leaves each frame's own)."""
    services.simulate(bytes(eth() / Dot1Q(vlan=100) / ipv4() / syn()), EP_PORT, S)
    (flow,) = services.flows()
    back = bytes(Ether(src=PROVIDER_ROUTER_MAC, dst=NLB_MAC) / Dot1Q(vlan=300) /
                 IP(src=flow.backend[0], dst=NLB_IP) /
                 TCP(sport=8080, dport=flow.snat[1], flags="SA", seq=9, ack=1001))
    out = services.simulate(back, NLB_PORT, S)
    assert (out.verdict, out.out_port) == ("forward", EP_PORT)
    expected = bytes(Ether(src=EP_MAC, dst=CONSUMER_ROUTER_MAC) / Dot1Q(vlan=300) /
                     IP(src=EP_IP, dst=CLIENT) / TCP(sport=80, dport=40000, flags="SA", seq=9, ack=1001))
    assert out.frame == expected


def test_dont_fragment_is_not_a_fragment(services: Engine) -> None:
    out = services.simulate(bytes(eth() / ipv4(flags="DF") / syn()), EP_PORT, S)
    assert (out.verdict, out.drop_reason) == ("forward", "none")
    assert Ether(out.frame)[IP].flags == "DF"


def test_ethernet_padding_is_allowed_and_left_in_place(services: Engine) -> None:
    """A 54-byte SYN padded to the 60-byte minimum: the padding is not part of the segment
    (the checksum must not cover it) and leaves as it came."""
    frame = GOOD_SYN + b"\xaa" * 6
    out = services.simulate(frame, EP_PORT, S)
    assert out.verdict == "forward"
    assert len(out.frame) == 60 and out.frame.endswith(b"\xaa" * 6)
    assert out.frame[:-6] == recomputed(out.frame[:-6])


# ---- fuzz ---------------------------------------------------------------------------------

def _fuzz_engine() -> tuple[Engine, list[tuple[bytes, int]]]:
    """A small engine with TCP/UDP/ICMP listeners and live flows, and valid frames of both
    sides (so mutations reach the flow and ICMP-error paths, not only the parser)."""
    eng = make_engine(capacity=64)
    tcp = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80, "tcp", rst_on_miss=True, mss_clamp=1200)
    eng.set_backends(tcp, [Backend(TARGET, 8080)])
    udp = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 53, "udp")
    eng.set_backends(udp, [Backend(TARGET, 5353)])
    icmp = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 0, "icmp")
    eng.set_backends(icmp, [Backend(TARGET, 0)])
    mss_syn = from_client(TCP(sport=40000, dport=80, flags="S", options=[("NOP", None), ("MSS", 1460)]))
    for frame in (mss_syn, GOOD_UDP, GOOD_ICMP):
        assert eng.simulate(frame, EP_PORT, S).verdict == "forward"
    ports = {f.protocol: f.snat[1] for f in eng.flows()}
    to_nlb_tcp = bytes(IP(src=NLB_IP, dst=TARGET) / TCP(sport=ports["tcp"], dport=8080, flags="S"))
    valid = [
        (mss_syn, EP_PORT), (GOOD_UDP, EP_PORT), (GOOD_ICMP, EP_PORT), (GOOD_ARP, EP_PORT),
        (bytes(eth() / Dot1Q(vlan=5) / ipv4() / syn(40001)), EP_PORT),
        (from_target(TCP(sport=8080, dport=ports["tcp"], flags="SA", ack=1001), src=TARGET), NLB_PORT),
        (from_target(UDP(sport=5353, dport=ports["udp"]) / b"answer", src=TARGET), NLB_PORT),
        (from_target(ICMP(type=0, id=ports["icmp"], seq=1) / b"ping", src=TARGET), NLB_PORT),
        (from_target(ICMP(type=3, code=4, nexthopmtu=1400) / to_nlb_tcp, src=PROVIDER_ROUTER_IP), NLB_PORT),
        (from_client(ICMP(type=3, code=3) / bytes(IP(src=EP_IP, dst=CLIENT) / UDP(sport=53, dport=5000))),
         EP_PORT),
    ]
    return eng, valid


def _fuzz_link_engine() -> tuple[Engine, list[tuple[bytes, int]]]:
    """The same for a VPC link attached on the endpoint port (its ENI on the NLB port):
    live TCP and UDP flows toward the endpoint address (the destination is kept), their
    replies, an ICMP error about one, and a SYN the customer side may not open."""
    eng = make_engine(capacity=64)
    eng.add_vpc_link(EP_PORT, ["10.0.0.0/8"], [LinkEni(NLB_PORT, NLB_IP)], mss_clamp=1200)
    mss_syn = from_client(TCP(sport=40000, dport=80, flags="S", options=[("NOP", None), ("MSS", 1460)]))
    for frame in (mss_syn, GOOD_UDP):
        assert eng.simulate(frame, EP_PORT, S).verdict == "forward"
    flows = {f.protocol: f for f in eng.flows()}
    tcp, udp = flows["tcp"], flows["udp"]
    sent = bytes(IP(src=NLB_IP, dst=tcp.backend[0]) / TCP(sport=tcp.snat[1], dport=tcp.backend[1], flags="S"))
    valid = [
        (mss_syn, EP_PORT), (GOOD_UDP, EP_PORT), (GOOD_ICMP, EP_PORT), (GOOD_ARP, EP_PORT),
        (from_target(TCP(sport=tcp.backend[1], dport=tcp.snat[1], flags="SA", ack=1001), src=tcp.backend[0]),
         NLB_PORT),
        (from_target(UDP(sport=udp.backend[1], dport=udp.snat[1]) / b"answer", src=udp.backend[0]), NLB_PORT),
        (from_target(ICMP(type=3, code=4, nexthopmtu=1400) / sent, src=PROVIDER_ROUTER_IP), NLB_PORT),
        (from_target(TCP(sport=443, dport=2000, flags="S"), src=TARGET), NLB_PORT),
    ]
    return eng, valid


def _refix_ip_checksum(frame: bytearray) -> None:
    """Makes the IPv4 header checksum right again if the header is there to sum, so a
    mutation gets past the checksum check into the L4 and NAT code."""
    l3 = 18 if frame[12:14] in (b"\x81\x00", b"\x88\xa8") else 14
    if len(frame) < l3 + 20 or frame[12 + l3 - 14:14 + l3 - 14] == b"\x08\x06":
        return
    ihl = (frame[l3] & 0x0F) * 4
    if ihl >= 20 and len(frame) >= l3 + ihl:
        frame[:] = fix_ip_checksum(bytes(frame), l3)


KINDS = ["random", "truncate", "flip", "truncate+flip", "flip+fix", "shorten+fix"]


def _mutate(data: st.DataObject, valid: list[tuple[bytes, int]]) -> tuple[bytes, int]:
    """random bytes; a valid frame cut short and/or with 1-4 bits flipped anywhere; bits
    flipped behind the MACs with the IPv4 checksum fixed up; or the IPv4 total length
    lowered (the L4 header cut inside a consistent IPv4 packet) with the checksum fixed up."""
    kind = data.draw(st.sampled_from(KINDS), "kind")
    if kind == "random":
        return (data.draw(st.binary(max_size=200), "bytes"),
                data.draw(st.sampled_from([EP_PORT, NLB_PORT]), "port"))
    frame, port = data.draw(st.sampled_from(valid), "valid frame")
    frame = bytearray(frame)
    if "flip" in kind:
        first = 12 if kind == "flip+fix" else 0
        for _ in range(data.draw(st.integers(1, 4), "flips")):
            bit = data.draw(st.integers(first * 8, len(frame) * 8 - 1), "bit")
            frame[bit // 8] ^= 1 << (bit % 8)
    if kind.startswith("truncate"):
        frame = frame[:data.draw(st.integers(0, len(frame)), "cut")]
    if kind == "shorten+fix" and frame[12:14] == b"\x08\x00":
        total = int.from_bytes(frame[16:18], "big")
        frame[16:18] = data.draw(st.integers(0, total), "total length").to_bytes(2, "big")
    if kind.endswith("+fix"):
        _refix_ip_checksum(frame)
    return bytes(frame), port


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@pytest.mark.parametrize("make", [_fuzz_engine, _fuzz_link_engine], ids=["privatelink", "vpc_nat"])
def test_fuzzed_frames_never_crash_and_always_get_a_verdict(make, data: st.DataObject) -> None:
    eng, valid = make()
    frame, port = _mutate(data, valid)
    partial = data.draw(st.booleans(), "csum_partial")
    before = eng.counters(port)
    out = eng.simulate(frame, port, 2 * S, csum_partial=partial)
    assert out.verdict in {"drop", "forward", "reply"}
    assert out.drop_reason in DROP_REASONS
    assert out.out_port in (EP_PORT, NLB_PORT)
    assert len(out.frame) <= len(frame), "the engine rewrites in place: it cannot grow a frame"
    after = eng.counters(port)
    assert after["rx_packets"] == before["rx_packets"] + 1
    if out.verdict == "forward":
        assert out.drop_reason == "none"
        assert len(out.frame) == len(frame)
    if out.verdict == "drop":
        assert out.drop_reason != "none"
    # a drop, or a RST sent in place of a dropped segment, is counted once; nothing else is
    assert after["dropped"] == before["dropped"] + (out.drop_reason != "none")
    assert sum(eng.drops(port).values()) == after["dropped"]
