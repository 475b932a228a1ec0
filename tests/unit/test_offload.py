"""Segmentation offload through the engine: GSO frames (several TCP/UDP segments in one
frame, as a veth hands them over with a virtio-net header) and partial checksums.

The checksum arithmetic of a kept-partial checksum is a property test in
test_checksum_property.py; here are the rules around it: what GSO needs, the MTU per
segment, packet counts per segment, and frames the engine builds itself."""
from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from dataplane.forwarder.engine import Backend, Engine
from conftest import EP_IP, EP_PORT, NLB_PORT, S, from_client, recomputed
from test_checksum_property import finish_partial, pseudo_sum

CLIENT = "10.0.1.10"
TARGET = Backend("10.0.1.20", 8080)
MSS = 1000


def service(engine: Engine, proto: str = "tcp", mtu: int = 1500) -> int:
    svc = engine.add_service(EP_PORT, NLB_PORT, EP_IP, 80, proto, mtu=mtu, rst_on_miss=True)
    engine.set_backends(svc, [TARGET])
    return svc


def partial(frame: bytes) -> bytes:
    """The frame as a kernel using checksum offload leaves it: the pseudo-header sum in
    the L4 checksum field."""
    pkt = Ether(frame)
    l4 = pkt[IP].payload
    l4.chksum = pseudo_sum(frame)
    return bytes(pkt)


def gso_segment(payload_len: int, flags: str = "PA") -> bytes:
    """One GSO frame of a connection the SYN in `open_tcp` opened: `payload_len` bytes."""
    return partial(from_client(TCP(sport=40000, dport=80, flags=flags, seq=1001, ack=1)
                               / (b"x" * payload_len)))


def open_tcp(engine: Engine) -> None:
    (out,) = engine.process_offload(EP_PORT, [partial(from_client(TCP(sport=40000, dport=80,
                                                                        flags="S", seq=1000)))],
                                    S, csum_partial=True, csum_offload=True)
    assert out.result.verdict == "forward"


def test_a_gso_frame_is_forwarded_whole_with_its_checksum_left_partial(engine: Engine) -> None:
    service(engine)
    open_tcp(engine)
    (out,) = engine.process_offload(EP_PORT, [gso_segment(3 * MSS)], S, csum_partial=True,
                                    csum_offload=True, gso_size=MSS)
    assert (out.result.verdict, out.result.drop_reason) == ("forward", "none")
    assert (out.csum_partial, out.gso_size) == (True, MSS)
    sent = finish_partial(out.result.frame)
    assert recomputed(sent) == sent
    sent = Ether(sent)
    assert (sent[IP].dst, sent[TCP].dport, len(sent[TCP].payload)) == (TARGET.ip, TARGET.port, 3 * MSS)
    counters = engine.counters(EP_PORT)
    assert counters["gso_frames"] == 1 and counters["csum_kept_partial"] == 2  # SYN too


def test_a_gso_frame_counts_as_the_packets_it_will_be_cut_into(engine: Engine) -> None:
    service(engine)
    open_tcp(engine)
    engine.process_offload(EP_PORT, [gso_segment(2 * MSS + 1)], S, csum_partial=True,
                           csum_offload=True, gso_size=MSS)
    (flow,) = engine.flows()
    assert flow.packets[0] == 1 + 3  # the SYN, then 1000 + 1000 + 1


def test_the_mtu_applies_to_each_segment_not_to_the_gso_frame(engine: Engine) -> None:
    service(engine, mtu=20 + 20 + MSS)
    open_tcp(engine)
    (fits,) = engine.process_offload(EP_PORT, [gso_segment(4 * MSS)], S, csum_partial=True,
                                     csum_offload=True, gso_size=MSS)
    assert fits.result.verdict == "forward"
    (too_big,) = engine.process_offload(EP_PORT, [gso_segment(4 * MSS)], S, csum_partial=True,
                                        csum_offload=True, gso_size=MSS + 1)
    assert (too_big.result.verdict, too_big.result.drop_reason) == ("drop", "mtu")


def test_a_gso_frame_needs_a_transmit_path_that_finishes_checksums(engine: Engine) -> None:
    """Completing one checksum over a whole GSO frame would be wrong for every segment."""
    service(engine)
    open_tcp(engine)
    (out,) = engine.process_offload(EP_PORT, [gso_segment(3 * MSS)], S, csum_partial=True,
                                    csum_offload=False, gso_size=MSS)
    assert (out.result.verdict, out.result.drop_reason) == ("drop", "gso_no_offload")
    assert engine.drops(EP_PORT)["gso_no_offload"] == 1


def test_udp_gso_frames_are_cut_per_datagram(engine: Engine) -> None:
    service(engine, proto="udp", mtu=20 + 8 + 500)
    frame = partial(from_client(UDP(sport=5000, dport=80) / (b"u" * 1500)))
    (out,) = engine.process_offload(EP_PORT, [frame], S, csum_partial=True, csum_offload=True,
                                    gso_size=500)
    assert (out.result.verdict, out.csum_partial, out.gso_size) == ("forward", True, 500)
    assert engine.flows()[0].packets[0] == 3


def test_a_rst_built_for_a_partial_gso_frame_leaves_complete(engine: Engine) -> None:
    """A data segment of no flow gets NLB's RST: a frame the engine built, one packet with
    a full checksum, whatever the frame it replaces carried."""
    service(engine)
    (out,) = engine.process_offload(EP_PORT, [gso_segment(3 * MSS)], S, csum_partial=True,
                                    csum_offload=True, gso_size=MSS)
    assert (out.result.verdict, out.result.drop_reason) == ("reply", "not_syn")
    assert (out.csum_partial, out.gso_size) == (False, 0)
    assert Ether(out.result.frame)[TCP].flags.R
    assert recomputed(out.result.frame) == out.result.frame


def test_without_offload_flags_nothing_changes_for_plain_frames(engine: Engine) -> None:
    service(engine)
    open_tcp(engine)
    frame = from_client(TCP(sport=40000, dport=80, flags="A", seq=1001, ack=1) / b"hello")
    (out,) = engine.process_offload(EP_PORT, [frame], S)
    assert (out.result.verdict, out.csum_partial, out.gso_size) == ("forward", False, 0)
