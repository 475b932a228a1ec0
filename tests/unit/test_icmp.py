"""ICMP through a translation: echo flows, and ICMP errors that quote a translated packet.

Echo (an ICMP service: listener on the endpoint address with port 0, backends with port 0)
translates the identifier the way TCP and UDP translate the source port:

    request:  (client, id, vip)          ⇒ (snat_ip, snat_id, backend)
    reply:    (backend, snat_id, snat_ip) ⇒ (vip, id, client)

ICMP errors are translated for the flow their quoted packet belongs to. The outer header
goes the way any packet of that direction goes, the quoted header back to what the
receiver itself sent, so its stack can match the error to its socket:

    target side → client: outer (router, snat_ip) ⇒ (vip, client);
                          quoted (snat_ip:snat_port → backend:bport) ⇒ (client:cport → vip:vport)
    client side → target: outer (client, vip)     ⇒ (snat_ip, backend);
                          quoted (vip:vport → client:cport) ⇒ (backend:bport → snat_ip:snat_port)

Because the engine undoes exactly its own translation, the expected quoted bytes are the
very bytes the receiver once sent (a prefix, if the error quotes less). Each case is a
golden row: scapy-built input ⇒ scapy-built expected output, compared byte for byte, and
also field by field against a full recomputation of every checksum (outer IPv4, ICMP,
quoted IPv4, and the quoted TCP/UDP/ICMP checksum when the whole packet is quoted), so a
mismatch names the checksum that is wrong.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from conftest import (CLIENT, CONSUMER_ROUTER_MAC, EP_IP, EP_MAC, EP_PORT, NLB_IP, NLB_MAC,
                      NLB_PORT, PROVIDER_ROUTER_MAC, S, from_client, from_target, make_engine,
                      recomputed)
from dataplane.forwarder.engine import Backend, Engine

TARGET = "10.0.2.21"
PROVIDER_ROUTER = "10.0.2.1"
CPORT, CLIENT_ID = 40000, 0x1234


# ---- frames -------------------------------------------------------------------------------

def to_target(l3_l4, dst: str = TARGET) -> bytes:
    """What the NLB ENI must send toward the provider VPC router."""
    return bytes(Ether(src=NLB_MAC, dst=PROVIDER_ROUTER_MAC) / IP(src=NLB_IP, dst=dst) / l3_l4)


def to_client(l4, **ip) -> bytes:
    return bytes(Ether(src=EP_MAC, dst=CONSUMER_ROUTER_MAC) / IP(src=EP_IP, dst=CLIENT, **ip) / l4)


def ip_of(frame: bytes) -> bytes:
    """The IPv4 packet inside an untagged frame: what an ICMP error quotes."""
    return frame[14:]


# ---- checksums, field by field -------------------------------------------------------------

def _split(frame: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """(Ethernet+outer IPv4 header, ICMP header, quoted IPv4 header, quoted L4 bytes,
    trailing padding) of an untagged ICMP error frame, cut by the length fields. Read from
    the bytes: scapy alone would misparse big quotes (past 128 bytes it takes the rest for
    RFC 4884 extensions) and fill a cut quoted header with defaults."""
    ihl = (frame[14] & 0x0F) * 4
    outer_end = 14 + int.from_bytes(frame[16:18], "big")
    icmp = 14 + ihl
    inner = icmp + 8
    inner_ihl = (frame[inner] & 0x0F) * 4
    return (frame[:icmp], frame[icmp:inner], frame[inner:inner + inner_ihl],
            frame[inner + inner_ihl:outer_end], frame[outer_end:])


def _complete(frame: bytes) -> bool:
    """Whether the error quotes the whole offending packet (so its L4 checksum can be summed)."""
    _, _, quoted_ip, quoted_l4, _ = _split(frame)
    return len(quoted_ip) + len(quoted_l4) >= int.from_bytes(quoted_ip[2:4], "big")


def recomputed_error(frame: bytes) -> bytes:
    """An ICMP error frame with every checksum recomputed from scratch by scapy: outer IPv4,
    ICMP, the quoted IPv4 header, and the quoted TCP/UDP/ICMP checksum when the whole quoted
    packet is present (a cut quote cannot be summed; its L4 bytes are kept as they are)."""
    head, icmp_header, quoted_ip, quoted_l4, pad = _split(frame)
    if _complete(frame):
        quoted = IP(quoted_ip + quoted_l4)
        del quoted.chksum
        l4 = quoted.getlayer({6: TCP, 17: UDP, 1: ICMP}[quoted.proto])
        zero_udp = quoted.proto == 17 and l4.chksum == 0
        del l4.chksum
        if zero_udp:
            l4.chksum = 0
        quoted_bytes = bytes(quoted)
    else:
        header = IP(quoted_ip)
        del header.chksum
        quoted_bytes = bytes(header)[:len(quoted_ip)] + quoted_l4
    pkt = Ether(head) / ICMP(icmp_header) / Raw(quoted_bytes)
    del pkt[IP].chksum, pkt[ICMP].chksum
    return bytes(pkt) + pad


def checksum_fields(frame: bytes) -> dict[str, str]:
    head, icmp_header, quoted_ip, quoted_l4, _ = _split(frame)
    fields = {"outer ip": head[24:26], "icmp": icmp_header[2:4], "quoted ip": quoted_ip[10:12]}
    if _complete(frame):
        proto = quoted_ip[9]
        fields[f"quoted {({6: 'tcp', 17: 'udp', 1: 'icmp'}[proto])}"] = \
            quoted_l4[{6: 16, 17: 6, 1: 2}[proto]:][:2]
    return {k: v.hex() for k, v in fields.items()}


def assert_error_checksums_exact(frame: bytes) -> None:
    got, want = checksum_fields(frame), checksum_fields(recomputed_error(frame))
    assert got == want
    assert frame == recomputed_error(frame)


@pytest.mark.parametrize("offset, name", [(14 + 10, "outer ip"), (34 + 2, "icmp"), (42 + 10, "quoted ip"),
                                          (62 + 16, "quoted tcp")])
def test_checksum_helper_sees_each_checksum(offset: int, name: str) -> None:
    """The helper the tables rely on: a correct error is its own recomputation, and a wrong
    checksum anywhere is named."""
    quoted = bytes(IP(src=NLB_IP, dst=TARGET) / TCP(sport=50000, dport=8080) / b"data")
    frame = from_target(ICMP(type=3, code=4, nexthopmtu=1400) / Raw(quoted), src=PROVIDER_ROUTER)
    assert recomputed_error(frame) == frame
    broken = bytearray(frame)
    broken[offset] ^= 0x40
    got, want = checksum_fields(bytes(broken)), checksum_fields(recomputed_error(bytes(broken)))
    assert got[name] != want[name]


# ---- fixtures -----------------------------------------------------------------------------

@pytest.fixture
def engine() -> Engine:
    """TCP 80, UDP 53 and ICMP echo listeners on the endpoint, one target each, SNAT pools
    starting at 50000 so a translated port or identifier never equals the client's."""
    eng = make_engine()
    for vport, proto, bport in ((80, "tcp", 8080), (53, "udp", 5353), (0, "icmp", 0)):
        svc = eng.add_service(EP_PORT, NLB_PORT, EP_IP, vport, proto, snat_ports=(50000, 59999))
        eng.set_backends(svc, [Backend(TARGET, bport)])
    return eng


def the_flow(engine: Engine, protocol: str):
    (flow,) = [f for f in engine.flows() if f.protocol == protocol]
    return flow


# ---- echo ---------------------------------------------------------------------------------

@pytest.mark.parametrize("payload", [b"", b"x", b"abcdefghijklmnopqrstuvwabcdefghi", bytes(range(256)) * 5 + b"odd"],
                         ids=["empty", "1_byte", "windows_32", "1283_bytes"])
def test_echo_request_and_reply_are_translated(engine: Engine, payload: bytes) -> None:
    request = from_client(ICMP(type=8, id=CLIENT_ID, seq=7) / payload)
    out = engine.simulate(request, EP_PORT, S)
    assert (out.verdict, out.out_port, out.drop_reason) == ("forward", NLB_PORT, "none")
    flow = the_flow(engine, "icmp")
    assert flow.client == (CLIENT, CLIENT_ID) and flow.vip == (EP_IP, 0)
    assert flow.backend == (TARGET, 0)
    snat_id = flow.snat[1]
    assert flow.snat[0] == NLB_IP and 50000 <= snat_id <= 59999 and snat_id != CLIENT_ID
    assert out.frame == to_target(ICMP(type=8, id=snat_id, seq=7) / payload)
    assert out.frame == recomputed(out.frame)

    reply = from_target(ICMP(type=0, id=snat_id, seq=7) / payload, src=TARGET)
    back = engine.simulate(reply, NLB_PORT, S)
    assert (back.verdict, back.out_port, back.drop_reason) == ("forward", EP_PORT, "none")
    assert back.frame == to_client(ICMP(type=0, id=CLIENT_ID, seq=7) / payload)
    assert back.frame == recomputed(back.frame)
    assert the_flow(engine, "icmp").packets == (1, 1)


def test_echo_flow_carries_a_whole_ping_session(engine: Engine) -> None:
    """Sequence numbers move on, the identifiers stay: one flow, both ways, every packet."""
    snat_id = None
    for seq in range(1, 6):
        out = engine.simulate(from_client(ICMP(type=8, id=CLIENT_ID, seq=seq) / b"ping"), EP_PORT, seq * S)
        snat_id = snat_id or the_flow(engine, "icmp").snat[1]
        assert out.frame == to_target(ICMP(type=8, id=snat_id, seq=seq) / b"ping")
        back = engine.simulate(from_target(ICMP(type=0, id=snat_id, seq=seq) / b"ping", src=TARGET),
                               NLB_PORT, seq * S)
        assert back.frame == to_client(ICMP(type=0, id=CLIENT_ID, seq=seq) / b"ping")
    assert engine.flow_count == 1
    assert the_flow(engine, "icmp").packets == (5, 5)


def test_default_pool_gives_a_new_identifier_too() -> None:
    eng = make_engine()
    svc = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 0, "icmp")
    eng.set_backends(svc, [Backend(TARGET, 0)])
    out = eng.simulate(from_client(ICMP(type=8, id=1, seq=1)), EP_PORT, S)
    (flow,) = eng.flows()
    assert 1024 <= flow.snat[1] <= 65535
    assert out.frame == to_target(ICMP(type=8, id=flow.snat[1], seq=1))


def test_two_clients_with_one_identifier_are_told_apart(engine: Engine) -> None:
    """Both send id 0x1234; the SNAT identifiers differ, and each reply finds its client."""
    other = "10.0.1.11"
    engine.simulate(from_client(ICMP(type=8, id=CLIENT_ID, seq=1)), EP_PORT, S)
    engine.simulate(from_client(ICMP(type=8, id=CLIENT_ID, seq=1), src=other), EP_PORT, S)
    ids = {f.client[0]: f.snat[1] for f in engine.flows()}
    assert len(set(ids.values())) == 2
    for client, snat_id in ids.items():
        back = engine.simulate(from_target(ICMP(type=0, id=snat_id, seq=1), src=TARGET), NLB_PORT, S)
        expected = bytes(Ether(src=EP_MAC, dst=CONSUMER_ROUTER_MAC) / IP(src=EP_IP, dst=client) /
                         ICMP(type=0, id=CLIENT_ID, seq=1))
        assert back.frame == expected


def test_echo_reply_translated_to_all_zeros_gets_checksum_ffff(engine: Engine) -> None:
    """The one message whose words all sum to zero: an echo reply with identifier 0,
    sequence 0 and no payload. Its checksum is ~0 = 0xFFFF; 0x0000 would fail the client's
    verification (the sum over the message would be 0, not -0), so the reply is lost.
    An incremental update (RFC 1624 eqn. 3) cannot tell this case apart and yields 0x0000."""
    out = engine.simulate(from_client(ICMP(type=8, id=0, seq=0)), EP_PORT, S)
    snat_id = the_flow(engine, "icmp").snat[1]
    assert out.frame == to_target(ICMP(type=8, id=snat_id, seq=0))
    back = engine.simulate(from_target(ICMP(type=0, id=snat_id, seq=0), src=TARGET), NLB_PORT, S)
    assert back.verdict == "forward"
    assert Ether(back.frame)[ICMP].chksum == 0xFFFF
    assert back.frame == to_client(ICMP(type=0, id=0, seq=0))


def test_echo_reply_of_no_flow_is_dropped(engine: Engine) -> None:
    out = engine.simulate(from_target(ICMP(type=0, id=50001, seq=1), src=TARGET), NLB_PORT, S)
    assert (out.verdict, out.drop_reason) == ("drop", "no_flow")


# ---- ICMP errors: the set-up ---------------------------------------------------------------

@dataclass
class Opened:
    """One flow through the engine, and the frames of its two directions as each side saw
    them (the ones an ICMP error may quote)."""
    client_sent: bytes    # client → vip, as the client sent it
    engine_sent: bytes    # snat → target, as the engine forwarded it
    target_sent: bytes    # target → snat, the reply as the target sent it
    client_got: bytes     # vip → client, the reply as the engine forwarded it


def open_flow(engine: Engine, proto: str) -> Opened:
    if proto == "udp":
        request = UDP(sport=CPORT, dport=53) / b"query: example.internal A"
    elif proto == "tcp":
        request = TCP(sport=CPORT, dport=80, flags="PA", seq=1001, ack=5001) / (b"GET / HTTP/1.1\r\n" * 4)
        syn = from_client(TCP(sport=CPORT, dport=80, flags="S", seq=1000))
        assert engine.simulate(syn, EP_PORT, S).verdict == "forward"
    else:
        request = ICMP(type=8, id=CLIENT_ID, seq=3) / b"ping payload"
    client_sent = from_client(request)
    out = engine.simulate(client_sent, EP_PORT, S)
    assert out.verdict == "forward"
    flow = the_flow(engine, proto)
    snat = flow.snat[1]
    if proto == "udp":
        reply = UDP(sport=5353, dport=snat) / b"answer: 10.0.2.99"
    elif proto == "tcp":
        reply = TCP(sport=8080, dport=snat, flags="PA", seq=5001, ack=1065) / (b"x" * 1200)
    else:
        reply = ICMP(type=0, id=snat, seq=3) / b"ping payload"
    target_sent = from_target(reply, src=TARGET)
    back = engine.simulate(target_sent, NLB_PORT, S)
    assert back.verdict == "forward"
    return Opened(client_sent, out.frame, target_sent, back.frame)


# (protocol, ICMP type, code, bytes of the offending packet quoted; None: all of it)
ERRORS = [
    pytest.param("udp", 3, 3, None, id="udp-port_unreachable-whole_packet"),
    pytest.param("udp", 3, 3, 28, id="udp-port_unreachable-8_bytes"),
    pytest.param("udp", 11, 0, 32, id="udp-ttl_exceeded-12_bytes"),
    pytest.param("tcp", 3, 4, None, id="tcp-frag_needed-whole_packet"),
    pytest.param("tcp", 3, 4, 28, id="tcp-frag_needed-8_bytes"),
    pytest.param("tcp", 3, 4, 40, id="tcp-frag_needed-header_only"),
    pytest.param("tcp", 3, 13, 36, id="tcp-admin_prohibited-cut_before_checksum"),
    pytest.param("tcp", 11, 0, None, id="tcp-ttl_exceeded-whole_packet"),
    pytest.param("tcp", 12, 0, 48, id="tcp-parameter_problem-header_and_data"),
    pytest.param("icmp", 3, 1, None, id="echo-host_unreachable-whole_packet"),
    pytest.param("icmp", 11, 0, 28, id="echo-ttl_exceeded-8_bytes"),
]


def icmp_header(type_: int, code: int) -> ICMP:
    if type_ == 3 and code == 4:
        return ICMP(type=3, code=4, nexthopmtu=1400)
    if type_ == 12:
        return ICMP(type=12, code=0, ptr=20)
    return ICMP(type=type_, code=code)


def cut(packet: bytes, n: int | None) -> bytes:
    return packet if n is None else packet[:n]


# ---- (a) errors from the target side, about a packet the engine sent toward the target ----

@pytest.mark.parametrize("proto, type_, code, quoted", ERRORS)
def test_error_from_target_side_reaches_client_translated(engine: Engine, proto: str, type_: int,
                                                          code: int, quoted: int | None) -> None:
    """A provider router (or the target) answers the engine's packet snat → target with an
    ICMP error. The client must get it from the vip, quoting its own packet client → vip."""
    f = open_flow(engine, proto)
    sender = TARGET if (type_, code) == (3, 3) else PROVIDER_ROUTER
    error = bytes(Ether(src=PROVIDER_ROUTER_MAC, dst=NLB_MAC) /
                  IP(src=sender, dst=NLB_IP, id=4242, ttl=61, tos=0xc0) /
                  icmp_header(type_, code) / Raw(cut(ip_of(f.engine_sent), quoted)))
    out = engine.simulate(error, NLB_PORT, 2 * S)
    assert (out.verdict, out.out_port, out.drop_reason) == ("forward", EP_PORT, "none")

    expected = to_client(icmp_header(type_, code) / Raw(cut(ip_of(f.client_sent), quoted)),
                         id=4242, ttl=61, tos=0xc0)
    got = Ether(out.frame)
    assert (got[IP].src, got[IP].dst) == (EP_IP, CLIENT)
    assert (got[IPerror].src, got[IPerror].dst) == (CLIENT, EP_IP)
    assert_error_checksums_exact(out.frame)
    assert out.frame == expected


# ---- (b) errors from the client side, about a reply the engine sent to the client ----------

@pytest.mark.parametrize("proto, type_, code, quoted", ERRORS)
def test_error_from_client_side_reaches_target_translated(engine: Engine, proto: str, type_: int,
                                                          code: int, quoted: int | None) -> None:
    """The client answers a reply vip → client with an ICMP error. The target must get it
    from the SNAT address, quoting its own reply target → snat."""
    f = open_flow(engine, proto)
    error = from_client(icmp_header(type_, code) / Raw(cut(ip_of(f.client_got), quoted)))
    out = engine.simulate(error, EP_PORT, 2 * S)
    assert (out.verdict, out.out_port, out.drop_reason) == ("forward", NLB_PORT, "none")

    expected = to_target(icmp_header(type_, code) / Raw(cut(ip_of(f.target_sent), quoted)))
    got = Ether(out.frame)
    assert (got[IP].src, got[IP].dst) == (NLB_IP, TARGET)
    assert (got[IPerror].src, got[IPerror].dst) == (TARGET, NLB_IP)
    assert_error_checksums_exact(out.frame)
    assert out.frame == expected


def test_error_counts_on_the_flow_and_the_ports(engine: Engine) -> None:
    f = open_flow(engine, "udp")
    before = the_flow(engine, "udp").packets
    tx_before = engine.counters(EP_PORT)["tx_packets"]
    error = from_target(ICMP(type=3, code=3) / Raw(ip_of(f.engine_sent)), src=TARGET)
    assert engine.simulate(error, NLB_PORT, 2 * S).verdict == "forward"
    assert the_flow(engine, "udp").packets == (before[0], before[1] + 1)
    assert engine.counters(EP_PORT)["tx_packets"] == tx_before + 1


def test_error_with_zero_udp_checksum_quoted_keeps_it_zero(engine: Engine) -> None:
    """A quoted UDP header whose checksum was 0 ("none") is translated without one."""
    request = Ether(from_client(UDP(sport=CPORT + 1, dport=53) / b"no checksum"))
    request[UDP].chksum = 0
    client_sent = bytes(request)
    out = engine.simulate(client_sent, EP_PORT, S)
    assert Ether(out.frame)[UDP].chksum == 0
    error = from_target(ICMP(type=3, code=3) / Raw(ip_of(out.frame)), src=TARGET)
    back = engine.simulate(error, NLB_PORT, 2 * S)
    assert back.verdict == "forward"
    assert Ether(back.frame)[UDPerror].chksum == 0
    assert back.frame == to_client(ICMP(type=3, code=3) / Raw(ip_of(client_sent)))
    assert_error_checksums_exact(back.frame)


# ---- (c) errors that quote no flow ---------------------------------------------------------

def test_error_quoting_an_unknown_flow_is_dropped(engine: Engine) -> None:
    f = open_flow(engine, "udp")
    cases = [
        # a flow that never existed: another SNAT port
        (NLB_PORT, from_target(ICMP(type=3, code=3) / Raw(bytes(
            IP(src=NLB_IP, dst=TARGET) / UDP(sport=50000 + 9999, dport=5353) / b"?")), src=TARGET)),
        # the right tuple, the wrong destination port at the target
        (NLB_PORT, from_target(ICMP(type=3, code=3) / Raw(bytes(
            IP(src=NLB_IP, dst=TARGET) / UDP(sport=Ether(f.engine_sent)[UDP].sport, dport=5354) / b"?")),
            src=TARGET)),
        # a reply of another client port, quoted by the client
        (EP_PORT, from_client(ICMP(type=3, code=3) / Raw(bytes(
            IP(src=EP_IP, dst=CLIENT) / UDP(sport=53, dport=CPORT + 1) / b"?")))),
        # the client-side tuple quoted on the target side: flows are keyed by port
        (NLB_PORT, from_target(ICMP(type=3, code=3) / Raw(ip_of(f.client_got)), src=TARGET)),
        # the target-side tuple quoted on the client side
        (EP_PORT, from_client(ICMP(type=3, code=3) / Raw(ip_of(f.engine_sent)))),
        # the same protocol's ports, but quoted as TCP
        (NLB_PORT, from_target(ICMP(type=3, code=4) / Raw(bytes(
            IP(src=NLB_IP, dst=TARGET) / TCP(sport=Ether(f.engine_sent)[UDP].sport, dport=5353))),
            src=PROVIDER_ROUTER)),
    ]
    for port, frame in cases:
        before = engine.drops(port)["icmp_no_flow"]
        out = engine.simulate(frame, port, 2 * S)
        assert (out.verdict, out.drop_reason) == ("drop", "icmp_no_flow"), Ether(frame).summary()
        assert engine.drops(port)["icmp_no_flow"] == before + 1


def test_error_quoting_an_expired_flow_is_dropped(engine: Engine) -> None:
    f = open_flow(engine, "udp")
    error = from_target(ICMP(type=3, code=3) / Raw(ip_of(f.engine_sent)), src=TARGET)
    out = engine.simulate(error, NLB_PORT, S + 121 * S)  # UDP idle timeout is 120 s
    assert (out.verdict, out.drop_reason) == ("drop", "icmp_no_flow")
