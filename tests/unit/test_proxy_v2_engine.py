"""PROXY protocol v2 in the engine (native/hp_proxy.c), as golden tables: the header's
bytes against AWS's captured layout (AWS-FACTS §2), built independently of the engine
(tests/integration/proxy_v2.py, CRC32C included), and every segment of a flow before and
after it, both ways — the header in front of the first data segment and of its retransmission, later segments shifted,
acknowledgements and SACK blocks shifted back, a segment that arrives before the first
one, a FIN with no data, the SYN-ACK's MSS lowered, a first segment trimmed to fit, a SYN
with data refused. Expected frames are built by scapy with its own checksums, so a match
proves the checksums too.
"""
from __future__ import annotations

import importlib.util
import pathlib

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from conftest import (CLIENT, CONSUMER_ROUTER_MAC, EP_IP, EP_MAC, EP_PORT, NLB_IP, NLB_MAC,
                      NLB_PORT, PROVIDER_ROUTER_MAC, S, from_client, from_target, make_engine,
                      recomputed)
from dataplane.compile.spec import PrivateLinkService, SpecError
from dataplane.forwarder.engine import Backend, Engine, EngineError

# The header builder and CRC32C the root test's target uses too (stdlib only, loaded by
# its path: the unit tests do not import the integration package).
_SPEC = importlib.util.spec_from_file_location(
    "proxy_v2", pathlib.Path(__file__).resolve().parents[1] / "integration" / "proxy_v2.py")
_PROXY_V2 = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_PROXY_V2)
crc32c = _PROXY_V2.crc32c

VPCE = "vpce-08d2bf15fac5001c9"          # as long as the capture's ID: a 100-byte header
TARGET = Backend("10.0.1.20", 8080)
ISN, TARGET_ISN = 7000, 90000
SPORT = 40000


def test_crc32c_of_the_standard_check_string() -> None:
    assert crc32c(b"123456789") == 0xE3069283


def proxy_header(client: str, cport: int, dst: str, dport: int, vpce: str | None = VPCE) -> bytes:
    """The header as AWS's capture lays it out (AWS-FACTS §2), padded to 100 bytes."""
    return _PROXY_V2.proxy_header(client, cport, dst, dport, vpce)


def test_the_header_has_the_captured_layout() -> None:
    h = proxy_header("172.31.7.113", 41234, "172.31.10.31", 80)
    assert len(h) == 100
    assert h[:16] == bytes.fromhex("0D0A0D0A000D0A515549540A 21 11 0054".replace(" ", ""))
    assert h[28:31] == bytes.fromhex("030004") and h[35:39] == bytes.fromhex("EA001701")
    assert h[39:61] == VPCE.encode() and h[61:64] == bytes.fromhex("040024")
    assert h[64:] == bytes(36)


@pytest.fixture
def engine() -> Engine:
    return make_engine()


def add_proxy_service(engine: Engine, vpce: str | None = VPCE, **kw) -> int:
    svc = engine.add_service(EP_PORT, NLB_PORT, EP_IP, 80, "tcp", rst_on_miss=True,
                             proxy_v2=True, vpce_id=vpce, **kw)
    engine.set_backends(svc, [TARGET])
    return svc


def to_target(l4) -> bytes:
    return bytes(Ether(src=NLB_MAC, dst=PROVIDER_ROUTER_MAC) / IP(src=NLB_IP, dst=TARGET.ip) / l4)


def to_client(l4) -> bytes:
    return bytes(Ether(src=EP_MAC, dst=CONSUMER_ROUTER_MAC) / IP(src=EP_IP, dst=CLIENT) / l4)


class Conn:
    """A client connection through a PROXY v2 service, handshake done."""

    def __init__(self, engine: Engine, mss: int = 1460) -> None:
        self.engine = engine
        out = engine.simulate(from_client(TCP(sport=SPORT, dport=80, flags="S", seq=ISN,
                                              options=[("MSS", 1460)])), EP_PORT, S)
        assert out.verdict == "forward", out.drop_reason
        (flow,) = engine.flows()
        self.snat = flow.snat[1]
        self.synack = self.from_target("SA", TARGET_ISN, ISN + 1, options=[("MSS", mss)])
        self.from_client("A", ISN + 1, TARGET_ISN + 1)
        self.header = proxy_header(CLIENT, SPORT, EP_IP, 80)

    def client_tcp(self, flags, seq, ack, **kw) -> TCP:
        return TCP(sport=SPORT, dport=80, flags=flags, seq=seq, ack=ack, **kw)

    def out_tcp(self, flags, seq, ack, **kw) -> TCP:
        """A segment as it leaves toward the target."""
        return TCP(sport=self.snat, dport=TARGET.port, flags=flags, seq=seq, ack=ack, **kw)

    def target_tcp(self, flags, seq, ack, **kw) -> TCP:
        return TCP(sport=TARGET.port, dport=self.snat, flags=flags, seq=seq, ack=ack, **kw)

    def from_client(self, flags, seq, ack, payload=b"", **kw):
        out = self.engine.simulate(from_client(self.client_tcp(flags, seq, ack, **kw) / payload),
                                   EP_PORT, S)
        return out

    def from_target(self, flags, seq, ack, payload=b"", **kw):
        return self.engine.simulate(
            from_target(self.target_tcp(flags, seq, ack, **kw) / payload, TARGET.ip), NLB_PORT, S)


def test_first_segment_gets_the_header_and_later_ones_are_shifted(engine: Engine) -> None:
    add_proxy_service(engine)
    c = Conn(engine)
    h = len(c.header)
    first = c.from_client("PA", ISN + 1, TARGET_ISN + 1, b"GET / HTTP/1.1\r\n")
    assert first.verdict == "forward"
    assert first.frame == to_target(c.out_tcp("PA", ISN + 1, TARGET_ISN + 1)
                                    / (c.header + b"GET / HTTP/1.1\r\n"))
    second = c.from_client("PA", ISN + 17, TARGET_ISN + 1, b"Host: x\r\n\r\n")
    assert second.frame == to_target(c.out_tcp("PA", ISN + 17 + h, TARGET_ISN + 1)
                                     / b"Host: x\r\n\r\n")
    # the target acknowledges in its (shifted) space; the client sees its own
    reply = c.from_target("PA", TARGET_ISN + 1, ISN + 28 + h, b"HTTP/1.1 200 OK\r\n")
    assert reply.frame == to_client(TCP(sport=80, dport=SPORT, flags="PA", seq=TARGET_ISN + 1,
                                        ack=ISN + 28) / b"HTTP/1.1 200 OK\r\n")
    (flow,) = engine.flows()
    assert flow.proxy_offset == h == 100
    assert engine.counters(EP_PORT)["proxy_headers"] == 1


def test_the_handshake_passes_unshifted_and_the_synack_mss_is_lowered(engine: Engine) -> None:
    add_proxy_service(engine)
    syn = from_client(TCP(sport=SPORT, dport=80, flags="S", seq=ISN, options=[("MSS", 1460)]))
    out = engine.simulate(syn, EP_PORT, S)
    snat = engine.flows()[0].snat[1]
    assert out.frame == to_target(TCP(sport=snat, dport=8080, flags="S", seq=ISN,
                                      options=[("MSS", 1460)]))
    synack = engine.simulate(from_target(TCP(sport=8080, dport=snat, flags="SA", seq=TARGET_ISN,
                                             ack=ISN + 1, options=[("MSS", 1460)]), TARGET.ip),
                             NLB_PORT, S)
    assert synack.frame == to_client(TCP(sport=80, dport=SPORT, flags="SA", seq=TARGET_ISN,
                                         ack=ISN + 1, options=[("MSS", 1360)]))
    assert engine.counters(NLB_PORT)["mss_clamped"] == 1


def test_a_retransmitted_first_segment_gets_the_same_header_again(engine: Engine) -> None:
    add_proxy_service(engine)
    c = Conn(engine)
    a = c.from_client("PA", ISN + 1, TARGET_ISN + 1, b"hello")
    b = c.from_client("PA", ISN + 1, TARGET_ISN + 1, b"hello")
    assert a.frame == b.frame == to_target(c.out_tcp("PA", ISN + 1, TARGET_ISN + 1)
                                           / (c.header + b"hello"))
    assert engine.counters(EP_PORT)["proxy_headers"] == 2


def test_a_later_segment_arriving_first_is_shifted_and_the_gap_filled_after(engine: Engine) -> None:
    add_proxy_service(engine)
    c = Conn(engine)
    h = len(c.header)
    early = c.from_client("PA", ISN + 6, TARGET_ISN + 1, b"world")
    assert early.frame == to_target(c.out_tcp("PA", ISN + 6 + h, TARGET_ISN + 1) / b"world")
    # the target holds it out of order: acks nothing of the client's, SACKs it
    dup = c.from_target("A", TARGET_ISN + 1, ISN + 1, options=[("NOP", None), ("NOP", None),
                                                                ("SAck", (ISN + 6 + h, ISN + 11 + h))])
    assert dup.frame == to_client(TCP(sport=80, dport=SPORT, flags="A", seq=TARGET_ISN + 1,
                                      ack=ISN + 1, options=[("NOP", None), ("NOP", None),
                                                            ("SAck", (ISN + 6, ISN + 11))]))
    late = c.from_client("PA", ISN + 1, TARGET_ISN + 1, b"hello")
    assert late.frame == to_target(c.out_tcp("PA", ISN + 1, TARGET_ISN + 1) / (c.header + b"hello"))


@pytest.mark.parametrize("nops", [0, 1, 2, 3])
def test_sack_blocks_at_any_alignment_are_shifted_with_exact_checksums(engine: Engine,
                                                                        nops: int) -> None:
    add_proxy_service(engine)
    c = Conn(engine)
    h = len(c.header)
    c.from_client("PA", ISN + 1, TARGET_ISN + 1, b"a" * 100)
    blocks = (ISN + 1 + h + 200, ISN + 1 + h + 300, ISN + 1 + h + 400, ISN + 1 + h + 500)
    opts = [("NOP", None)] * nops + [("SAck", blocks)]
    out = c.from_target("A", TARGET_ISN + 1, ISN + 1 + h + 100, options=opts)
    expected_opts = [("NOP", None)] * nops + [("SAck", tuple(b - h for b in blocks))]
    assert out.frame == to_client(TCP(sport=80, dport=SPORT, flags="A", seq=TARGET_ISN + 1,
                                      ack=ISN + 101, options=expected_opts))
    assert out.frame == recomputed(out.frame)


def test_an_ack_of_part_of_the_header_is_no_ack_of_client_data(engine: Engine) -> None:
    add_proxy_service(engine)
    c = Conn(engine)
    c.from_client("PA", ISN + 1, TARGET_ISN + 1, b"hello")
    out = c.from_target("A", TARGET_ISN + 1, ISN + 1 + 40)
    assert TCP(bytes(Ether(out.frame)[TCP])).ack == ISN + 1


def test_the_target_may_speak_first(engine: Engine) -> None:
    add_proxy_service(engine)
    c = Conn(engine)
    banner = c.from_target("PA", TARGET_ISN + 1, ISN + 1, b"220 ready\r\n")
    assert banner.frame == to_client(TCP(sport=80, dport=SPORT, flags="PA", seq=TARGET_ISN + 1,
                                         ack=ISN + 1) / b"220 ready\r\n")
    ack = c.from_client("A", ISN + 1, TARGET_ISN + 12)
    assert ack.frame == to_target(c.out_tcp("A", ISN + 1, TARGET_ISN + 12))


def test_a_fin_with_no_data_still_carries_the_header(engine: Engine) -> None:
    add_proxy_service(engine)
    c = Conn(engine)
    h = len(c.header)
    fin = c.from_client("FA", ISN + 1, TARGET_ISN + 1)
    assert fin.frame == to_target(c.out_tcp("FA", ISN + 1, TARGET_ISN + 1) / c.header)
    finack = c.from_target("FA", TARGET_ISN + 1, ISN + 2 + h)
    assert TCP(bytes(Ether(finack.frame)[TCP])).ack == ISN + 2


def test_a_first_segment_too_big_for_the_mtu_is_trimmed(engine: Engine) -> None:
    add_proxy_service(engine, mtu=1500)
    c = Conn(engine)
    data = bytes(range(256)) * 6
    out = c.from_client("FPA", ISN + 1, TARGET_ISN + 1, data[:1460])
    keep = 1500 - 40 - len(c.header)
    assert out.frame == to_target(c.out_tcp("PA", ISN + 1, TARGET_ISN + 1)
                                  / (c.header + data[:keep]))
    assert engine.counters(EP_PORT)["proxy_trimmed"] == 1
    # the client resends the rest as a later segment: shifted, no header
    rest = c.from_client("FPA", ISN + 1 + keep, TARGET_ISN + 1, data[keep:1460])
    assert rest.frame == to_target(c.out_tcp("FPA", ISN + 1 + keep + len(c.header),
                                                TARGET_ISN + 1) / data[keep:1460])


def test_a_frame_with_no_room_in_its_buffer_is_trimmed_or_refused(engine: Engine) -> None:
    add_proxy_service(engine)
    c = Conn(engine)
    frame = from_client(c.client_tcp("PA", ISN + 1, TARGET_ISN + 1) / (b"z" * 300))
    out = engine.simulate(frame, EP_PORT, S, room=50)
    assert out.verdict == "forward"
    assert len(out.frame) == len(frame) + 50
    assert out.frame == to_target(c.out_tcp("PA", ISN + 1, TARGET_ISN + 1)
                                  / (c.header + b"z" * 250))
    tiny = from_client(c.client_tcp("PA", ISN + 1, TARGET_ISN + 1) / b"z")
    refused = engine.simulate(tiny, EP_PORT, S, room=0)
    assert (refused.verdict, refused.drop_reason) == ("drop", "proxy_no_room")


def test_a_syn_with_data_is_refused(engine: Engine) -> None:
    add_proxy_service(engine)
    out = engine.simulate(from_client(TCP(sport=SPORT, dport=80, flags="S", seq=ISN) / b"early"),
                          EP_PORT, S)
    assert (out.verdict, out.drop_reason) == ("drop", "proxy_syn_data")
    assert engine.flows() == []


def test_existing_headers_in_the_payload_stay_behind_ours(engine: Engine) -> None:
    add_proxy_service(engine)
    c = Conn(engine)
    theirs = proxy_header("192.0.2.1", 1234, "192.0.2.2", 443, vpce=None)
    out = c.from_client("PA", ISN + 1, TARGET_ISN + 1, theirs + b"GET /")
    assert out.frame == to_target(c.out_tcp("PA", ISN + 1, TARGET_ISN + 1)
                                  / (c.header + theirs + b"GET /"))


def test_without_an_endpoint_id_the_header_has_no_aws_tlv(engine: Engine) -> None:
    add_proxy_service(engine, vpce=None)
    c = Conn(engine)
    out = c.from_client("PA", ISN + 1, TARGET_ISN + 1, b"x")
    header = proxy_header(CLIENT, SPORT, EP_IP, 80, vpce=None)
    assert out.frame == to_target(c.out_tcp("PA", ISN + 1, TARGET_ISN + 1) / (header + b"x"))
    assert len(header) == 100 and b"\xea" not in header[28:40]


def test_a_service_without_proxy_protocol_is_untouched(engine: Engine) -> None:
    svc = engine.add_service(EP_PORT, NLB_PORT, EP_IP, 80, "tcp")
    engine.set_backends(svc, [TARGET])
    c = Conn(engine)
    out = c.from_client("PA", ISN + 1, TARGET_ISN + 1, b"x")
    assert out.frame == to_target(c.out_tcp("PA", ISN + 1, TARGET_ISN + 1) / b"x")
    assert engine.flows()[0].proxy_offset == 0


def test_partial_checksums_stay_exact_through_the_header(engine: Engine) -> None:
    add_proxy_service(engine)
    c = Conn(engine)
    frame = from_client(c.client_tcp("PA", ISN + 1, TARGET_ISN + 1) / b"partial")
    out = engine.simulate(frame, EP_PORT, S, csum_partial=True)
    assert out.frame == to_target(c.out_tcp("PA", ISN + 1, TARGET_ISN + 1) / (c.header + b"partial"))


@pytest.mark.parametrize("problem", ["udp", "long id", "bad id"])
def test_bad_proxy_configurations_are_refused(engine: Engine, problem: str) -> None:
    kw = {"udp": dict(proto="udp"), "long id": dict(vpce_id="vpce-" + "a" * 60),
          "bad id": dict(vpce_id="vpce 1")}[problem]
    args = dict(proto="tcp", vpce_id=VPCE) | kw
    with pytest.raises(EngineError, match="PROXY"):
        engine.add_service(EP_PORT, NLB_PORT, EP_IP, 80, args["proto"], proxy_v2=True,
                           vpce_id=args["vpce_id"])


def test_the_spec_carries_proxy_protocol_and_refuses_what_the_engine_would() -> None:
    doc = {"name": "s", "in_port": 0, "out_port": 1, "vip": EP_IP, "vport": 80,
           "proxy_protocol_v2": True, "vpce_id": VPCE}
    svc = PrivateLinkService.from_json(doc)
    assert svc.proxy_protocol_v2 and svc.vpce_id == VPCE and svc.to_json() == doc
    with pytest.raises(SpecError, match=r"^vpce_id: 'vpce 1' is not an endpoint ID"):
        PrivateLinkService.from_json(doc | {"vpce_id": "vpce 1"})
    with pytest.raises(SpecError, match=r"^proxy_protocol_v2: PROXY protocol v2 needs proto 'tcp'"):
        PrivateLinkService.from_json(doc | {"proto": "udp"})
    with pytest.raises(SpecError, match=r"^proxy_protocol_v2: 1 is not true or false"):
        PrivateLinkService.from_json(doc | {"proxy_protocol_v2": 1})
