"""The engine's tap (native/hp_tap.c): what it records of each frame, when it records
nothing, and how it bounds itself.

A frame gives an `in` record (as it arrived, on its port) and, unless it was dropped, an
`out` record (as it left, after translation, on the port it left by), both with the
frame's verdict and drop reason; off, nothing is recorded and nothing is allocated.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from dataplane.forwarder.engine import EngineError

from conftest import (CLIENT, CONSUMER_ROUTER_MAC, EP_IP, EP_MAC, EP_PORT, NLB_IP, NLB_PORT, S,
                       TARGETS, from_client, from_target)


def syn(sport: int = 40000, dport: int = 80) -> bytes:
    return from_client(TCP(sport=sport, dport=dport, flags="S", seq=100))


def test_off_records_nothing_and_holds_no_memory(engine, tcp_service) -> None:
    before = engine.memory_bytes
    engine.process(EP_PORT, [syn()], S)
    assert engine.tap_stats() == {"enabled": False, "pending": 0, "ring": 0, "snaplen": 0,
                                  "kept": 0, "dropped": 0}
    assert engine.tap_read() == []
    engine.tap_enable(ring=16, snaplen=128)
    assert engine.memory_bytes > before + 16 * 128
    engine.tap_disable()
    assert engine.memory_bytes == before
    engine.process(EP_PORT, [syn(40001)], S)
    assert engine.tap_read() == [] and engine.counters(EP_PORT)["tap_dropped"] == 0


def test_in_and_out_records_show_both_sides_of_the_translation(engine, tcp_service) -> None:
    engine.tap_enable()
    frame = syn()
    [result] = engine.process(EP_PORT, [frame], 7 * S)
    records = engine.tap_read()
    assert [(r.stage, r.port, r.verdict, r.drop_reason) for r in records] == [
        ("in", EP_PORT, "forward", "none"), ("out", NLB_PORT, "forward", "none")]
    arrived, sent = records
    assert arrived.frame == frame and arrived.orig_len == len(frame)   # untouched by the rewrite
    assert sent.frame == result.frame and sent.ts_ns == arrived.ts_ns == 7 * S
    a, b = Ether(arrived.frame), Ether(sent.frame)
    assert (a[IP].src, a[IP].dst, a[TCP].dport) == (CLIENT, EP_IP, 80)
    assert b[IP].src == NLB_IP and (b[IP].dst, b[TCP].dport) in {(t.ip, t.port) for t in TARGETS}
    # the reply direction: the target's SYN-ACK in, and out toward the client
    flow = engine.flows()[0]
    engine.process(NLB_PORT, [from_target(TCP(sport=flow.backend[1], dport=flow.snat[1],
                                                 flags="SA", seq=9, ack=101), flow.backend[0])], 8 * S)
    back_in, back_out = engine.tap_read()
    assert (back_in.stage, back_in.port, back_out.stage, back_out.port) == ("in", NLB_PORT, "out", EP_PORT)
    assert (Ether(back_out.frame)[IP].src, Ether(back_out.frame)[TCP].sport) == (EP_IP, 80)
    assert engine.tap_stats()["kept"] == 4 and engine.tap_read() == []


def test_a_dropped_frame_has_its_in_record_with_the_reason(engine, tcp_service) -> None:
    engine.tap_enable()
    udp = from_client(UDP(sport=5000, dport=53))
    engine.process(EP_PORT, [syn(dport=81), udp, b"\x00" * 10], S)
    records = engine.tap_read()
    assert [(r.stage, r.verdict, r.drop_reason) for r in records] == [
        ("in", "drop", "no_service"), ("in", "drop", "no_service"), ("in", "drop", "eth_truncated")]
    assert records[2].frame == b"\x00" * 10


def test_replies_built_in_place_are_out_records(engine, tcp_service) -> None:
    """An ARP reply (built in stage 1) and a RST (stage 3) leave by the port they came in on."""
    engine.tap_enable()
    arp = bytes(Ether(src=CONSUMER_ROUTER_MAC, dst="ff:ff:ff:ff:ff:ff") /
                ARP(op=1, hwsrc=CONSUMER_ROUTER_MAC, psrc="10.0.1.1", pdst=EP_IP))
    ack_of_nothing = from_client(TCP(sport=41000, dport=80, flags="A", seq=5, ack=5))
    engine.process(EP_PORT, [arp, ack_of_nothing], S)
    records = engine.tap_read()
    assert [(r.stage, r.port, r.verdict, r.drop_reason) for r in records] == [
        ("in", EP_PORT, "reply", "none"), ("out", EP_PORT, "reply", "none"),
        ("in", EP_PORT, "reply", "not_syn"), ("out", EP_PORT, "reply", "not_syn")]
    assert records[0].frame == arp and Ether(records[0].frame)[ARP].op == 1
    assert Ether(records[1].frame)[ARP].op == 2 and Ether(records[1].frame)[ARP].hwsrc == EP_MAC
    assert Ether(records[3].frame)[TCP].flags == "R"


def test_the_ring_is_bounded_and_counts_what_it_could_not_keep(engine, tcp_service) -> None:
    engine.tap_enable(ring=8)
    engine.process(EP_PORT, [syn(40000 + i) for i in range(6)], S)   # 12 records, room for 8
    stats = engine.tap_stats()
    assert (stats["kept"], stats["dropped"], stats["pending"]) == (8, 4, 8)
    assert engine.counters(EP_PORT)["tap_dropped"] == 4
    records = engine.tap_read()
    # a frame's pair is kept whole or not at all: four whole pairs, in order
    assert [r.stage for r in records] == ["in", "out"] * 4
    assert [Ether(r.frame)[TCP].sport for r in records[::2]] == [40000, 40001, 40002, 40003]
    engine.process(EP_PORT, [syn(40010)], S)                       # read: room again
    assert [r.stage for r in engine.tap_read()] == ["in", "out"]


def test_a_batch_longer_than_the_pipeline_keeps_every_frame_with_its_own_copy(engine, tcp_service) -> None:
    engine.tap_enable(ring=256)
    frames = [syn(42000 + i) for i in range(100)]
    engine.process(EP_PORT, frames, S)
    records = engine.tap_read()
    assert [r.frame for r in records if r.stage == "in"] == frames
    assert engine.tap_stats()["dropped"] == 0


def test_stage_port_filter_and_snaplen(engine, tcp_service) -> None:
    engine.tap_enable(stage="out", snaplen=64)
    engine.process(EP_PORT, [syn(), syn(dport=81)], S)
    [out] = engine.tap_read()
    assert out.stage == "out" and len(out.frame) == 54 and out.orig_len == 54
    engine.tap_disable()
    big = from_client(TCP(sport=40100, dport=80, flags="S") / (b"x" * 200))
    engine.tap_enable(stage="in", snaplen=64)
    engine.process(EP_PORT, [big], S)
    [rec] = engine.tap_read()
    assert len(rec.frame) == 64 and rec.orig_len == len(big) and rec.frame == big[:64]
    engine.tap_disable()
    # a port keeps the frames that arrive on it or leave by it, both their records
    engine.tap_enable(port=NLB_PORT)
    engine.process(EP_PORT, [syn(40200), syn(dport=81)], S)
    assert [(r.stage, r.port) for r in engine.tap_read()] == [("in", EP_PORT), ("out", NLB_PORT)]
    engine.tap_disable()
    engine.tap_enable(port=5)
    engine.process(EP_PORT, [syn(40201)], S)
    assert engine.tap_read() == []


@pytest.mark.parametrize("kw,message", [
    ({"ring": 6}, "power of two"), ({"snaplen": 10}, "snaplen"),
    ({"ring": 1 << 20, "snaplen": 262144}, "MiB"), ({"port": 4000}, "out of range"),
    ({"stage": "sideways"}, "stage"),
])
def test_bad_configurations_are_refused_with_a_reason(engine, kw, message) -> None:
    with pytest.raises(EngineError, match=message):
        engine.tap_enable(**kw)
    assert not engine.tap_stats()["enabled"]


def test_one_tap_at_a_time_and_disable_needs_one(engine) -> None:
    with pytest.raises(EngineError, match="not on"):
        engine.tap_disable()
    engine.tap_enable()
    with pytest.raises(EngineError, match="already on"):
        engine.tap_enable()
