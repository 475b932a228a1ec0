"""PrivateLink DNAT+SNAT through the engine, both directions, as golden tables.

Each case is (input frame, input port) ⇒ (verdict, output port, expected output frame);
the expected frame is built with scapy and its checksums computed by scapy, so a match
proves the translation and the incremental checksum updates at once.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether

from conftest import (CLIENT, CONSUMER_ROUTER_MAC, EP_IP, EP_MAC, EP_PORT, NLB_IP, NLB_MAC,
                      NLB_PORT, PROVIDER_ROUTER_MAC, S, TARGETS, from_client, from_target,
                      make_engine, recomputed)
from dataplane.forwarder.engine import Backend, Engine


def to_target(l4, target: str) -> bytes:
    """What the NLB ENI must send toward the provider VPC router."""
    return bytes(Ether(src=NLB_MAC, dst=PROVIDER_ROUTER_MAC) / IP(src=NLB_IP, dst=target) / l4)


def to_client(l4, dst: str = CLIENT) -> bytes:
    return bytes(Ether(src=EP_MAC, dst=CONSUMER_ROUTER_MAC) / IP(src=EP_IP, dst=dst) / l4)


def test_syn_is_translated_to_nlb_address_and_a_target(engine: Engine, tcp_service: int) -> None:
    syn = TCP(sport=40000, dport=80, flags="S", seq=1000, window=8192)
    out = engine.simulate(from_client(syn), EP_PORT, now_ns=S)
    assert (out.verdict, out.out_port, out.drop_reason) == ("forward", NLB_PORT, "none")
    (flow,) = engine.flows()
    assert flow.client == (CLIENT, 40000) and flow.vip == (EP_IP, 80)
    assert flow.snat[0] == NLB_IP and 1024 <= flow.snat[1] <= 65535
    assert flow.backend in [(t.ip, t.port) for t in TARGETS]
    expected = to_target(TCP(sport=flow.snat[1], dport=8080, flags="S", seq=1000, window=8192),
                         flow.backend[0])
    # IP id and TTL pass through unchanged: compare against the same header fields.
    assert out.frame == expected


def test_whole_connection_both_directions(engine: Engine, tcp_service: int) -> None:
    engine.simulate(from_client(TCP(sport=40000, dport=80, flags="S", seq=1000)), EP_PORT, S)
    (flow,) = engine.flows()
    target, snat_port = flow.backend[0], flow.snat[1]
    cases = [
        # (in port, frame in, out port, frame out)
        (NLB_PORT, from_target(TCP(sport=8080, dport=snat_port, flags="SA", seq=5000, ack=1001), target),
         EP_PORT, to_client(TCP(sport=80, dport=40000, flags="SA", seq=5000, ack=1001))),
        (EP_PORT, from_client(TCP(sport=40000, dport=80, flags="A", seq=1001, ack=5001)),
         NLB_PORT, to_target(TCP(sport=snat_port, dport=8080, flags="A", seq=1001, ack=5001), target)),
        (EP_PORT, from_client(TCP(sport=40000, dport=80, flags="PA", seq=1001, ack=5001) / b"GET / HTTP/1.0\r\n\r\n"),
         NLB_PORT, to_target(TCP(sport=snat_port, dport=8080, flags="PA", seq=1001, ack=5001) / b"GET / HTTP/1.0\r\n\r\n", target)),
        (NLB_PORT, from_target(TCP(sport=8080, dport=snat_port, flags="PA", seq=5001, ack=1019) / (b"x" * 999), target),
         EP_PORT, to_client(TCP(sport=80, dport=40000, flags="PA", seq=5001, ack=1019) / (b"x" * 999))),
    ]
    for in_port, frame_in, out_port, frame_out in cases:
        out = engine.simulate(frame_in, in_port, 2 * S)
        assert (out.verdict, out.out_port) == ("forward", out_port), Ether(frame_in).summary()
        assert out.frame == frame_out, Ether(frame_in).summary()
    (flow,) = engine.flows()
    assert flow.tcp_state == "ESTABLISHED"
    assert flow.packets == (3, 2)
    assert engine.counters(EP_PORT)["flows_created"] == 1


def test_udp_zero_checksum_stays_zero_and_nonzero_is_updated(engine: Engine) -> None:
    svc = engine.add_service(EP_PORT, NLB_PORT, EP_IP, 53, "udp")
    engine.set_backends(svc, [Backend("10.0.1.20", 5353)])
    zero = Ether(from_client(UDP(sport=5000, dport=53) / b"query"))
    zero[UDP].chksum = 0
    out = engine.simulate(bytes(zero), EP_PORT, S)
    assert out.verdict == "forward"
    assert Ether(out.frame)[UDP].chksum == 0
    assert Ether(out.frame)[IP].dst == "10.0.1.20" and Ether(out.frame)[UDP].dport == 5353

    out = engine.simulate(from_client(UDP(sport=5001, dport=53) / b"query"), EP_PORT, S)
    assert Ether(out.frame)[UDP].chksum != 0
    assert out.frame == recomputed(out.frame)


def test_partial_checksum_is_completed(engine: Engine, tcp_service: int) -> None:
    """veth hands locally made packets over with CHECKSUM_PARTIAL: the L4 checksum field
    holds only the pseudo-header sum. The engine must send a full checksum."""
    pkt = Ether(from_client(TCP(sport=40000, dport=80, flags="S", seq=1)))
    pkt[TCP].chksum = 0x1234  # not a valid checksum of anything
    out = engine.simulate(bytes(pkt), EP_PORT, S, csum_partial=True)
    assert out.verdict == "forward"
    assert out.frame == recomputed(out.frame)
    assert engine.counters(EP_PORT)["csum_completed"] == 1


def test_overlapping_addresses_are_told_apart_by_port(engine: Engine, tcp_service: int) -> None:
    """The client 10.0.1.10 on the consumer side and a provider host with the same
    address are different machines: only the port says which side a packet is on."""
    out = engine.simulate(from_target(TCP(sport=40000, dport=80, flags="S"), src=CLIENT, dst=EP_IP),
                          NLB_PORT, S)
    assert (out.verdict, out.drop_reason) == ("drop", "no_service")


def test_provider_cannot_open_a_connection_toward_the_consumer(engine: Engine, tcp_service: int) -> None:
    out = engine.simulate(from_target(TCP(sport=8080, dport=40000, flags="S"), src="10.0.1.20"),
                          NLB_PORT, S)
    assert (out.verdict, out.drop_reason) == ("drop", "no_flow")
    assert engine.flow_count == 0


def test_unlistened_port_and_protocol_are_dropped_silently(engine: Engine, tcp_service: int) -> None:
    for l4 in (TCP(sport=1, dport=81, flags="S"), UDP(sport=1, dport=80), TCP(sport=1, dport=81, flags="A")):
        out = engine.simulate(from_client(l4), EP_PORT, S)
        assert (out.verdict, out.drop_reason) == ("drop", "no_service"), repr(l4)
    assert engine.drops(EP_PORT)["no_service"] == 3


def test_vlan_tag_is_kept(engine: Engine, tcp_service: int) -> None:
    frame = bytes(Ether(src=CONSUMER_ROUTER_MAC, dst=EP_MAC) / Dot1Q(vlan=7) /
                  IP(src=CLIENT, dst=EP_IP) / TCP(sport=1, dport=80, flags="S"))
    out = engine.simulate(frame, EP_PORT, S)
    assert out.verdict == "forward"
    assert Ether(out.frame)[Dot1Q].vlan == 7 and Ether(out.frame)[TCP].dport == 8080
    assert out.frame == recomputed(out.frame)


def test_peer_mac_is_learnt_when_not_configured() -> None:
    eng = Engine(flow_capacity=16)
    eng.set_port(0, EP_MAC, [EP_IP])
    eng.set_port(1, NLB_MAC, [NLB_IP])
    svc = eng.add_service(0, 1, EP_IP, 80)
    eng.set_backends(svc, [Backend("10.0.1.20", 8080)])
    out = eng.simulate(from_client(TCP(sport=1, dport=80, flags="S")), 0, S)
    assert Ether(out.frame).dst == "00:00:00:00:00:00"  # port 1 has heard nothing yet
    (flow,) = eng.flows()
    back = eng.simulate(from_target(TCP(sport=8080, dport=flow.snat[1], flags="SA", ack=1),
                                    src="10.0.1.20"), 1, S)
    assert Ether(back.frame).dst == CONSUMER_ROUTER_MAC


@pytest.mark.parametrize("target_mac", [EP_MAC, "ff:ff:ff:ff:ff:ff"])
def test_arp_request_for_port_address_is_answered(engine: Engine, target_mac: str) -> None:
    req = Ether(src=CONSUMER_ROUTER_MAC, dst=target_mac) / ARP(
        op="who-has", hwsrc=CONSUMER_ROUTER_MAC, psrc="10.0.1.1", pdst=EP_IP)
    out = engine.simulate(bytes(req), EP_PORT)
    assert (out.verdict, out.out_port) == ("reply", EP_PORT)
    expected = Ether(src=EP_MAC, dst=CONSUMER_ROUTER_MAC) / ARP(
        op="is-at", hwsrc=EP_MAC, psrc=EP_IP, hwdst=CONSUMER_ROUTER_MAC, pdst="10.0.1.1")
    assert out.frame == bytes(expected)
    assert engine.counters(EP_PORT)["arp_replies"] == 1


@pytest.mark.parametrize("arp, reason", [
    (ARP(op="who-has", psrc="10.0.1.1", pdst=NLB_IP), "arp_not_ours"),   # the other port's address
    (ARP(op="is-at", psrc="10.0.1.1", pdst=EP_IP), "arp_not_ours"),      # a reply, not a request
])
def test_other_arp_is_not_answered(engine: Engine, arp, reason: str) -> None:
    out = engine.simulate(bytes(Ether(src=CONSUMER_ROUTER_MAC, dst="ff:ff:ff:ff:ff:ff") / arp), EP_PORT)
    assert (out.verdict, out.drop_reason) == ("drop", reason)


def test_mtu_drops_without_icmp_and_mss_is_clamped() -> None:
    eng = make_engine()
    svc = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80, mtu=8500, mss_clamp=8460)
    eng.set_backends(svc, TARGETS)
    syn = from_client(TCP(sport=40000, dport=80, flags="S", options=[("MSS", 8961), ("SAckOK", b"")]))
    out = eng.simulate(syn, EP_PORT, S)
    assert out.verdict == "forward"
    assert dict(Ether(out.frame)[TCP].options)["MSS"] == 8460
    assert out.frame == recomputed(out.frame)
    assert eng.counters(EP_PORT)["mss_clamped"] == 1

    # An odd-aligned MSS option (after one NOP) is clamped with a correct checksum too.
    syn = from_client(TCP(sport=40001, dport=80, flags="S", options=[("NOP", None), ("MSS", 9000)]))
    out = eng.simulate(syn, EP_PORT, S)
    assert dict(Ether(out.frame)[TCP].options)["MSS"] == 8460
    assert out.frame == recomputed(out.frame)

    big = from_client(TCP(sport=40000, dport=80, flags="A") / (b"x" * (8501 - 40)))
    out = eng.simulate(big, EP_PORT, S)
    assert (out.verdict, out.drop_reason) == ("drop", "mtu")
    fits = from_client(TCP(sport=40000, dport=80, flags="A") / (b"x" * (8500 - 40)))
    assert eng.simulate(fits, EP_PORT, S).verdict == "forward"


def test_disabled_service_passes_nothing_and_cuts_existing_flows(engine: Engine, tcp_service: int) -> None:
    """An endpoint pending acceptance passes no packet; a rejected one stops at once."""
    engine.simulate(from_client(TCP(sport=40000, dport=80, flags="S")), EP_PORT, S)
    engine.set_service_flags(tcp_service, disabled=True, rst_on_miss=True, hash_tcp_seq=True)
    for sport, flags in ((40000, "A"), (40001, "S")):
        out = engine.simulate(from_client(TCP(sport=sport, dport=80, flags=flags)), EP_PORT, S)
        assert (out.verdict, out.drop_reason) == ("drop", "service_disabled")
    engine.set_service_flags(tcp_service, rst_on_miss=True, hash_tcp_seq=True)
    out = engine.simulate(from_client(TCP(sport=40000, dport=80, flags="A")), EP_PORT, S)
    assert out.verdict == "forward"
