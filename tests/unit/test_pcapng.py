"""The pcapng writer (dataplane/forwarder/pcapng.py), read back by two readers that owe it
nothing: tshark (Wireshark's dissectors) and scapy's pcapng reader; and the text line and
comment `vpclab capture --hyperplane` prints for each record.
"""
from __future__ import annotations

import io
import subprocess

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import PcapNgReader

from dataplane.cli.capture_hyperplane import comment, describe
from dataplane.forwarder.pcapng import PcapngWriter

SYN = bytes(Ether(src="02:00:00:00:00:a0", dst="02:00:00:00:00:e0") /
            IP(src="10.0.1.10", dst="10.0.1.50") / TCP(sport=40000, dport=80, flags="S", seq=7))
TRANSLATED = bytes(Ether(src="02:00:00:00:00:e1", dst="02:00:00:00:00:a1") /
                   IP(src="10.0.1.100", dst="10.0.1.20") / TCP(sport=1024, dport=8080, flags="S", seq=7))
TS = 1_764_800_000_123_456_789


def write(path) -> None:
    with open(path, "wb") as f:
        w = PcapngWriter(f)
        ep = w.interface("eni-0aaa", "vpce ENI of consumer/ep, 10.0.1.50 in app-a", 2048)
        nlb = w.interface("eni-0bbb", "nlb ENI of provider/nlb, 10.0.1.100 in svc-a", 2048)
        assert w.interface("eni-0aaa") == ep == 0 and nlb == 1
        w.packet(ep, TS, SYN, comment="eni=eni-0aaa stage=in verdict=forward drop=none", direction="in")
        w.packet(nlb, TS + 1, TRANSLATED, comment="eni=eni-0bbb stage=out verdict=forward drop=none",
                 direction="out")
        w.packet(ep, TS + 2, SYN[:20], orig_len=len(SYN),
                 comment="eni=eni-0aaa stage=in verdict=drop drop=no_service", direction="in")


def test_tshark_reads_interfaces_comments_directions_and_times(tmp_path) -> None:
    path = tmp_path / "t.pcapng"
    write(path)
    fields = ["frame.interface_name", "frame.interface_description", "frame.comment",
              "frame.packet_flags_direction", "frame.time_epoch", "frame.len", "frame.cap_len",
              "ip.src", "tcp.dstport"]
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|",
                          *sum((["-e", f] for f in fields), [])],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines()]
    assert [r[:4] for r in rows] == [
        ["eni-0aaa", "vpce ENI of consumer/ep, 10.0.1.50 in app-a",
         "eni=eni-0aaa stage=in verdict=forward drop=none", "0x00000001"],
        ["eni-0bbb", "nlb ENI of provider/nlb, 10.0.1.100 in svc-a",
         "eni=eni-0bbb stage=out verdict=forward drop=none", "0x00000002"],
        ["eni-0aaa", "vpce ENI of consumer/ep, 10.0.1.50 in app-a",
         "eni=eni-0aaa stage=in verdict=drop drop=no_service", "0x00000001"]]
    assert [r[4] for r in rows] == ["1764800000.123456789", "1764800000.123456790",
                                    "1764800000.123456791"]
    assert [(r[5], r[6]) for r in rows] == [("54", "54"), ("54", "54"), ("54", "20")]
    assert [(r[7], r[8]) for r in rows[:2]] == [("10.0.1.10", "80"), ("10.0.1.100", "8080")]
    # a display filter on the comment finds the drop
    drops = subprocess.run(["tshark", "-r", str(path), "-Y", 'frame.comment contains "drop=no_service"'],
                           capture_output=True, text=True, check=True).stdout
    assert len(drops.splitlines()) == 1


def test_scapy_reads_the_same_packets(tmp_path) -> None:
    path = tmp_path / "t.pcapng"
    write(path)
    pkts = list(PcapNgReader(str(path)))
    assert [bytes(p) for p in pkts] == [SYN, TRANSLATED, SYN[:20]]
    assert [p.sniffed_on for p in pkts] == ["eni-0aaa", "eni-0bbb", "eni-0aaa"]
    assert [p.direction for p in pkts] == [1, 2, 1]
    assert pkts[2].wirelen == len(SYN) and pkts[2].comment.endswith(b"drop=no_service")


def test_bad_calls_are_refused() -> None:
    w = PcapngWriter(io.BytesIO())
    with pytest.raises(ValueError, match="never described"):
        w.packet(3, TS, SYN)
    i = w.interface("eni-1")
    with pytest.raises(ValueError, match="direction"):
        w.packet(i, TS, SYN, direction="up")


def test_text_lines_read_like_tcpdump() -> None:
    assert describe(SYN) == "IP 10.0.1.10.40000 > 10.0.1.50.80: Flags [S], seq 7, length 0"
    synack = bytes(Ether() / IP(src="10.0.1.20", dst="10.0.1.100") /
                   TCP(sport=8080, dport=1024, flags="SA", seq=1, ack=8) / b"hi")
    assert describe(synack) == "IP 10.0.1.20.8080 > 10.0.1.100.1024: Flags [S.], seq 1, ack 8, length 2"
    arp = bytes(Ether() / ARP(op=1, psrc="10.0.1.1", pdst="10.0.1.50"))
    assert describe(arp).startswith("ARP, Request who-has 10.0.1.50 tell 10.0.1.1")
    assert describe(b"\x01\x02") == "truncated frame, length 2"
    record = {"eni": "eni-0aaa", "stage": "in", "verdict": "drop", "drop_reason": "no_service"}
    assert comment(record) == "eni=eni-0aaa stage=in verdict=drop drop=no_service"
