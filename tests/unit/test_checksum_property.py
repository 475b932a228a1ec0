"""Property tests: after any translation, every checksum is what a full recomputation gives.

DESIGN.md's first invariant, checked with hypothesis over random packets and random
services. Each example builds a fresh engine (64 flows) with one random service — VIP and
listener port, one backend (address, port), SNAT address and SNAT port pool, which of the
two ports faces the clients, and for TCP a random MSS clamp — and runs one flow through it
in both directions:

    client → backend: (client, cport, vip, vport)          ⇒ (snat_ip, snat_port, backend, bport)
    backend → client: (backend, bport, snat_ip, snat_port) ⇒ (vip, vport, client, cport)

The service is of either kind: a PrivateLink listener, or (TCP and UDP) a VPC link, whose
destination is kept (backend = vip, bport = vport), reached through one ENI whose address
is the SNAT address, with a random prefix of the destination as the link's reach.

Packets are random too: TCP with random flags, sequence numbers, options (MSS at even and
odd offsets) and payload; UDP with a computed or a zero ("none") checksum; ICMP echo with
random identifier, sequence and payload; random IPv4 TOS/TTL/ID/DF and options, and an
optional 802.1Q tag. The expected output is the input with the translated addresses,
ports (or echo identifier), MACs and clamped MSS written in, and every checksum recomputed
by scapy; the engine's frame must equal it byte for byte. Also:

* a zero UDP checksum stays zero, and a UDP checksum that computes to zero is sent as
  0xFFFF (RFC 768), also when the sender's own checksum was 0xFFFF;
* the CHECKSUM_PARTIAL path (the L4 checksum field holds only the pseudo-header sum, as
  the kernel leaves it for veth, or garbage) yields a fully correct checksum;
* ICMP errors quoting a random translated flow, in both directions, carry correct outer,
  ICMP, quoted IPv4 and quoted L4 checksums;
* a PROXY v2 listener's flow (native/hp_proxy.c): random segments both ways, with
  sequence numbers, acknowledgements and SACK edges around the header's place, whole or
  partial checksums, leave exactly as a model written here says (the header in front of
  the first data, seq shifted toward the target, ack and SACK shifted back, the SYN-ACK's
  MSS lowered) with every checksum recomputed.
"""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_Router_Alert
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from conftest import (CONSUMER_ROUTER_MAC, EP_MAC, EP_PORT, NLB_MAC, NLB_PORT,
                      PROVIDER_ROUTER_MAC, S, make_engine)
from dataplane.forwarder.engine import (Backend, Engine, LinkEni, Result, int_to_ip, ip_to_int,
                                        mac_to_bytes)
from test_icmp import recomputed_error
from test_proxy_v2_engine import proxy_header

PORT_MAC = {EP_PORT: EP_MAC, NLB_PORT: NLB_MAC}
PEER_MAC = {EP_PORT: CONSUMER_ROUTER_MAC, NLB_PORT: PROVIDER_ROUTER_MAC}
PROTO_NUM = {"tcp": 6, "udp": 17, "icmp": 1}
PROPERTY = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

addresses = st.integers(1, 0xFFFFFFFE).map(int_to_ip)
PROXY_VPCE = "vpce-0a1b2c3d4e5f67890"
ports = st.integers(1, 65535)


# ---- the random service --------------------------------------------------------------------

@dataclass(frozen=True)
class Setup:
    kind: str              # 'privatelink' or 'vpc_nat'
    proto: str
    in_port: int
    vip: str
    vport: int
    backend: str
    bport: int
    snat_ip: str
    pool: tuple[int, int]
    client: str
    cport: int             # the echo identifier for ICMP
    mss_clamp: int
    prefix_len: int        # a VPC link's reach: vip/prefix_len
    proxy_v2: bool = False # a PrivateLink listener putting a PROXY v2 header in

    @property
    def out_port(self) -> int:
        return NLB_PORT if self.in_port == EP_PORT else EP_PORT

    def engine(self) -> Engine:
        eng = make_engine(capacity=64)
        if self.kind == "vpc_nat":
            eng.add_vpc_link(self.in_port, [f"{self.vip}/{self.prefix_len}"],
                             [LinkEni(self.out_port, self.snat_ip)], protocols=[self.proto],
                             snat_ports=self.pool, mss_clamp=self.mss_clamp)
            return eng
        svc = eng.add_service(self.in_port, self.out_port, self.vip, self.vport, self.proto,
                              snat_ip=self.snat_ip, snat_ports=self.pool, mss_clamp=self.mss_clamp,
                              proxy_v2=self.proxy_v2, vpce_id=PROXY_VPCE if self.proxy_v2 else None)
        eng.set_backends(svc, [Backend(self.backend, self.bport)])
        return eng


@st.composite
def setups(draw, proto: str, clamp: bool = True, pool: tuple[int, int] | None = None) -> Setup:
    icmp = proto == "icmp"
    kind = "privatelink" if icmp else draw(st.sampled_from(["privatelink", "vpc_nat"]), "kind")
    if pool is None:
        lo = draw(ports, "pool start")
        pool = (lo, draw(st.integers(lo, min(65535, lo + draw(st.sampled_from([0, 10, 1000, 65535]))))))
    vip, vport = draw(addresses, "vip"), 0 if icmp else draw(ports, "vport")
    link = kind == "vpc_nat"  # the destination is kept
    return Setup(
        kind=kind, proto=proto, in_port=draw(st.sampled_from([EP_PORT, NLB_PORT]), "client side"),
        vip=vip, vport=vport,
        backend=vip if link else draw(addresses, "backend"),
        bport=vport if link or icmp else draw(ports, "bport"),
        snat_ip=draw(addresses, "snat"), pool=pool,
        client=draw(addresses, "client"), cport=draw(st.integers(0 if icmp else 1, 65535), "cport"),
        mss_clamp=draw(st.one_of(st.just(0), st.integers(1, 65535)), "mss clamp")
        if proto == "tcp" and clamp else 0,
        prefix_len=draw(st.integers(0, 32), "link prefix length"))


# ---- random packets --------------------------------------------------------------------

tcp_options = st.lists(st.one_of(
    st.tuples(st.just("MSS"), st.integers(0, 65535)),
    st.tuples(st.just("NOP"), st.none()),
    st.tuples(st.just("WScale"), st.integers(0, 14)),
    st.tuples(st.just("SAckOK"), st.just(b"")),
    st.tuples(st.just("Timestamp"), st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))),
    st.tuples(st.just("SAck"), st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))),
), max_size=6).filter(lambda opts: len(bytes(TCP(options=opts))) <= 60
                      and sum(1 for k, _ in opts if k == "MSS") <= 1)

ip_options = st.sampled_from([[], [IPOption_NOP()] * 4, [IPOption_Router_Alert()],
                              [IPOption_NOP(), IPOption_NOP(), IPOption_Router_Alert(), IPOption_NOP(),
                               IPOption_NOP(), IPOption_NOP(), IPOption_NOP()]])
payloads = st.binary(max_size=80)
SYN, ACK, RST = 0x02, 0x10, 0x04


@st.composite
def ip_headers(draw) -> dict:
    return dict(tos=draw(st.integers(0, 255)), ttl=draw(st.integers(1, 255)), id=draw(st.integers(0, 65535)),
                flags=draw(st.sampled_from([0, 2])), options=draw(ip_options))


@st.composite
def tcp_segments(draw, opening: bool = False) -> TCP:
    flags = draw(st.integers(0, 255), "flags")
    if opening:  # what may open a flow: SYN without ACK or RST, any other bits
        flags = (flags & ~(SYN | ACK | RST)) | SYN
    return TCP(flags=flags, seq=draw(st.integers(0, 2**32 - 1)), ack=draw(st.integers(0, 2**32 - 1)),
               window=draw(st.integers(0, 65535)), urgptr=draw(st.integers(0, 65535)),
               options=draw(tcp_options, "options")) / draw(payloads, "payload")


@st.composite
def udp_datagrams(draw) -> UDP:
    udp = UDP() / draw(payloads, "payload")
    if draw(st.booleans(), "zero checksum"):
        udp.chksum = 0
    return udp


@st.composite
def echoes(draw, type_: int) -> ICMP:
    return ICMP(type=type_, seq=draw(st.integers(0, 65535))) / draw(payloads, "payload")


def segment(draw, proto: str, opening: bool, type_: int = 8):
    if proto == "tcp":
        return draw(tcp_segments(opening))
    if proto == "udp":
        return draw(udp_datagrams())
    return draw(echoes(type_))


# ---- frames, and what must come out ---------------------------------------------------------

def frame_in(port: int, src: str, dst: str, l4, sport: int, dport: int, ip: dict, vlan: int | None) -> bytes:
    """A frame arriving on `port` from its VPC router, with its checksums computed by scapy."""
    l4 = l4.copy()
    if isinstance(l4, ICMP):
        l4.id = sport if l4.type == 8 else dport
    else:
        l4.sport, l4.dport = sport, dport
    eth = Ether(src=PEER_MAC[port], dst=PORT_MAC[port])
    if vlan is not None:
        eth = eth / Dot1Q(vlan=vlan)
    frame = bytes(eth / IP(src=src, dst=dst, **ip) / l4)
    assert recompute(frame, keep_udp_zero=True) == frame, "generator: scapy must round-trip it"
    return frame


def offsets(frame: bytes) -> tuple[int, int]:
    l3 = 18 if frame[12:14] == b"\x81\x00" else 14
    return l3, l3 + (frame[l3] & 0x0F) * 4


def recompute(frame: bytes, keep_udp_zero: bool) -> bytes:
    """`frame` with its IPv4 and L4 checksums recomputed by scapy; a zero UDP checksum kept
    only if `keep_udp_zero` (a sender's "no checksum" that must survive)."""
    pkt = Ether(frame)
    del pkt[IP].chksum
    for layer in (TCP, UDP, ICMP):
        if layer in pkt:
            zero = layer is UDP and pkt[UDP].chksum == 0 and keep_udp_zero
            del pkt[layer].chksum
            if zero:
                pkt[UDP].chksum = 0
    return bytes(pkt)


def clamp_mss(tcp: bytearray, clamp: int) -> None:
    """Lowers the first MSS option to `clamp`, as a SYN crossing the service must be."""
    doff, i = (tcp[12] >> 4) * 4, 20
    while i < doff and tcp[i] != 0:
        if tcp[i] == 1:
            i += 1
            continue
        if tcp[i] == 2 and tcp[i + 1] == 4:
            if int.from_bytes(tcp[i + 2:i + 4], "big") > clamp:
                tcp[i + 2:i + 4] = clamp.to_bytes(2, "big")
            return
        i += tcp[i + 1]


def expected_out(frame: bytes, out_port: int, src: str, sport: int, dst: str, dport: int,
                 mss_clamp: int, keep_udp_zero: bool) -> bytes:
    """The input with the out-tuple, the out port's MACs and a clamped MSS written in, and
    every checksum recomputed in full."""
    b = bytearray(frame)
    b[0:6] = mac_to_bytes(PEER_MAC[out_port])
    b[6:12] = mac_to_bytes(PORT_MAC[out_port])
    l3, l4 = offsets(frame)
    b[l3 + 12:l3 + 16] = ip_to_int(src).to_bytes(4, "big")
    b[l3 + 16:l3 + 20] = ip_to_int(dst).to_bytes(4, "big")
    proto = b[l3 + 9]
    if proto == 1:
        b[l4 + 4:l4 + 6] = (sport if b[l4] == 8 else dport).to_bytes(2, "big")
    else:
        b[l4:l4 + 2] = sport.to_bytes(2, "big")
        b[l4 + 2:l4 + 4] = dport.to_bytes(2, "big")
    if proto == 6 and b[l4 + 13] & SYN and mss_clamp:
        tcp = b[l4:]
        clamp_mss(tcp, mss_clamp)
        b[l4:] = tcp
    return recompute(bytes(b), keep_udp_zero)


def pseudo_sum(frame: bytes) -> int:
    """What the kernel leaves in the L4 checksum field under CHECKSUM_PARTIAL: the folded,
    uncomplemented pseudo-header sum (ICMP has no pseudo-header: 0)."""
    l3, l4 = offsets(frame)
    proto = frame[l3 + 9]
    if proto == 1:
        return 0
    words = [frame[l3 + 12:l3 + 14], frame[l3 + 14:l3 + 16], frame[l3 + 16:l3 + 18], frame[l3 + 18:l3 + 20]]
    total = sum(int.from_bytes(w, "big") for w in words) + proto
    total += int.from_bytes(frame[l3 + 2:l3 + 4], "big") - (l4 - l3)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def make_partial(frame: bytes, mode: str | None, garbage: int) -> bytes:
    """The frame as a sender using checksum offload hands it over: L4 checksum not done."""
    if mode is None:
        return frame
    l3, l4 = offsets(frame)
    coff = {6: 16, 17: 6, 1: 2}[frame[l3 + 9]]
    value = pseudo_sum(frame) if mode == "pseudo" else garbage
    return frame[:l4 + coff] + value.to_bytes(2, "big") + frame[l4 + coff + 2:]


partial_modes = st.sampled_from([None, None, "pseudo", "garbage"])


def finish_partial(frame: bytes) -> bytes:
    """What a NIC or the kernel does with a CHECKSUM_PARTIAL frame on transmit: sums the
    L4 segment from its start, the checksum field (the pseudo-header sum) included, and
    stores the complement there (0 becomes 0xFFFF for UDP)."""
    l3, l4 = offsets(frame)
    proto = frame[l3 + 9]
    coff = {6: 16, 17: 6, 1: 2}[proto]
    end = l3 + int.from_bytes(frame[l3 + 2:l3 + 4], "big")
    data = frame[l4:end] + b"\0" * ((end - l4) & 1)
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    check = ~total & 0xFFFF
    if proto == 17 and check == 0:
        check = 0xFFFF
    return frame[:l4 + coff] + check.to_bytes(2, "big") + frame[l4 + coff + 2:]


@dataclass
class Flow:
    setup: Setup
    eng: Engine
    ip: dict
    vlan: int | None
    snat_port: int = 0

    def client_frame(self, l4) -> bytes:
        s = self.setup
        return frame_in(s.in_port, s.client, s.vip, l4, s.cport, s.vport, self.ip, self.vlan)

    def backend_frame(self, l4) -> bytes:
        s = self.setup
        return frame_in(s.out_port, s.backend, s.snat_ip, l4, s.bport, self.snat_port, self.ip, self.vlan)

    def send(self, frame: bytes, from_client: bool, partial: str | None, garbage: int,
             offload: bool = False) -> Result:
        """Sends `frame` one way and checks the frame that comes out against the expected
        one. With `offload`, a partial checksum leaves partial: it is finished here, as
        the transmit path would, before the comparison."""
        s = self.setup
        port = s.in_port if from_client else s.out_port
        counter = "csum_kept_partial" if offload else "csum_completed"
        before = self.eng.counters(port)[counter]
        (sent,) = self.eng.process_offload(port, [make_partial(frame, partial, garbage)], S,
                                           csum_partial=partial is not None, csum_offload=offload)
        assert sent.csum_partial == (offload and partial is not None)
        out = sent.result._replace(frame=finish_partial(sent.result.frame)) if sent.csum_partial \
            else sent.result
        assert (out.verdict, out.drop_reason) == ("forward", "none")
        if from_client:
            (flow,) = self.eng.flows()  # a SYN may reopen a closed flow on a new SNAT port
            self.snat_port = flow.snat[1]
            assert flow.snat[0] == s.snat_ip and s.pool[0] <= self.snat_port <= s.pool[1]
            assert flow.backend == (s.backend, s.bport)
            want = expected_out(frame, s.out_port, s.snat_ip, self.snat_port, s.backend, s.bport,
                                s.mss_clamp, keep_udp_zero=partial is None)
        else:
            want = expected_out(frame, s.in_port, s.vip, s.vport, s.client, s.cport,
                                s.mss_clamp, keep_udp_zero=partial is None)
        assert out.out_port == (s.out_port if from_client else s.in_port)
        assert out.frame == want, (Ether(out.frame).summary(), Ether(want).summary())
        assert self.eng.counters(port)[counter] == before + (partial is not None)
        return out


def open_flow(draw, s: Setup) -> Flow:
    vlan = draw(st.one_of(st.none(), st.integers(1, 4094)), "vlan")
    return Flow(s, s.engine(), draw(ip_headers(), "ip header"), vlan)


# ---- the properties ------------------------------------------------------------------------

@PROPERTY
@given(data=st.data(), proto=st.sampled_from(["tcp", "udp", "icmp"]))
def test_checksums_after_translation_equal_full_recomputation(data: st.DataObject, proto: str) -> None:
    """Opening packet, a reply, another client packet: each leaves with every checksum
    exactly what scapy computes for the translated frame."""
    draw = data.draw
    flow = open_flow(draw, draw(setups(proto), "setup"))
    flow.send(flow.client_frame(segment(draw, proto, opening=True)), True, None, 0)
    flow.send(flow.backend_frame(segment(draw, proto, opening=False, type_=0)), False, None, 0)
    flow.send(flow.client_frame(segment(draw, proto, opening=False)), True, None, 0)


@PROPERTY
@given(data=st.data(), proto=st.sampled_from(["tcp", "udp", "icmp"]))
def test_partial_checksums_are_completed_in_full(data: st.DataObject, proto: str) -> None:
    """Any packet may come with CHECKSUM_PARTIAL: the pseudo-header sum (what the kernel
    leaves) or garbage in the L4 checksum field. It must leave with a full checksum."""
    draw = data.draw
    flow = open_flow(draw, draw(setups(proto), "setup"))
    garbage = st.integers(0, 65535)
    flow.send(flow.client_frame(segment(draw, proto, opening=True)), True,
              draw(st.sampled_from(["pseudo", "garbage"]), "first partial"), draw(garbage))
    flow.send(flow.backend_frame(segment(draw, proto, opening=False, type_=0)), False,
              draw(partial_modes, "reply partial"), draw(garbage))
    flow.send(flow.client_frame(segment(draw, proto, opening=False)), True,
              draw(partial_modes, "second partial"), draw(garbage))


@PROPERTY
@given(data=st.data(), proto=st.sampled_from(["tcp", "udp"]))
def test_partial_checksums_stay_partial_when_the_transmit_path_finishes_them(
        data: st.DataObject, proto: str) -> None:
    """With checksum offload on the way out (virtio-net NEEDS_CSUM), a partial checksum
    leaves partial: the field is the translated frame's pseudo-header sum, so that what
    the transmitting kernel finishes equals scapy's full recomputation. The MSS clamp of
    an opening SYN changes the segment, not the field."""
    draw = data.draw
    flow = open_flow(draw, draw(setups(proto), "setup"))
    flow.send(flow.client_frame(segment(draw, proto, opening=True)), True, "pseudo", 0, offload=True)
    flow.send(flow.backend_frame(segment(draw, proto, opening=False, type_=0)), False,
              draw(st.sampled_from([None, "pseudo"]), "reply partial"), 0, offload=True)
    flow.send(flow.client_frame(segment(draw, proto, opening=False)), True, "pseudo", 0,
              offload=True)


@PROPERTY
@given(data=st.data())
def test_zero_udp_checksum_stays_zero_both_ways(data: st.DataObject) -> None:
    draw = data.draw
    flow = open_flow(draw, draw(setups("udp"), "setup"))
    for from_client in (True, False, True):
        udp = UDP() / draw(payloads)
        udp.chksum = 0
        frame = flow.client_frame(udp) if from_client else flow.backend_frame(udp)
        flow.send(frame, from_client, None, 0)  # expected_out keeps the zero


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def payload_summing_to_zero_checksum(src: str, sport: int, dst: str, dport: int, rest: bytes) -> bytes:
    """A payload (a 16-bit word, then `rest`) for which the UDP checksum of
    src:sport → dst:dport computes to 0 (so it must be sent as 0xFFFF)."""
    probe = IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / (b"\0\0" + rest)
    c = IP(bytes(probe))[UDP].chksum
    s0 = 0xFFFF if c == 0xFFFF else ~c & 0xFFFF  # the folded sum without the word
    word = 0 if s0 == 0xFFFF else 0xFFFF - s0
    payload = word.to_bytes(2, "big") + rest
    check = IP(bytes(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload))[UDP]
    assert check.chksum == 0xFFFF and _fold(s0 + word) == 0xFFFF
    return payload


@PROPERTY
@given(data=st.data(), which=st.sampled_from(["request", "reply"]), side=st.sampled_from(["out", "in"]))
def test_udp_checksum_computing_to_zero_is_sent_as_ffff(data: st.DataObject, which: str, side: str) -> None:
    """`side` 'out': the translated datagram's checksum computes to 0, so it must leave as
    0xFFFF, not as 0 (which would mean "no checksum"). 'in': the sender's own checksum was
    0xFFFF (it computed to 0); the translated one must still be right."""
    draw = data.draw
    port = draw(ports, "snat port")
    s = draw(setups("udp", pool=(port, port)), "setup")
    flow = open_flow(draw, s)
    flow.vlan, flow.ip = None, {}
    rest = draw(payloads, "rest")
    if which == "reply":
        flow.send(flow.client_frame(UDP() / b"open"), True, None, 0)
    if which == "request":
        tuple_ = (s.snat_ip, port, s.backend, s.bport) if side == "out" else (s.client, s.cport, s.vip, s.vport)
    else:
        tuple_ = (s.vip, s.vport, s.client, s.cport) if side == "out" else (s.backend, s.bport, s.snat_ip, port)
    l4 = UDP() / payload_summing_to_zero_checksum(*tuple_, rest)
    frame = flow.client_frame(l4) if which == "request" else flow.backend_frame(l4)
    if side == "in":
        assert Ether(frame)[UDP].chksum == 0xFFFF
    out = flow.send(frame, which == "request", None, 0)
    if side == "out":
        assert Ether(out.frame)[UDP].chksum == 0xFFFF


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), proto=st.sampled_from(["tcp", "udp", "icmp"]),
       error=st.sampled_from([(3, 3), (3, 4), (3, 1), (11, 0), (12, 0)]))
def test_icmp_errors_quoting_a_random_flow_have_exact_checksums(data: st.DataObject, proto: str,
                                                                 error: tuple[int, int]) -> None:
    """An error about the engine's packet toward the backend reaches the client, and one
    about the engine's reply reaches the backend; each quotes what its receiver sent, with
    every checksum (outer IPv4, ICMP, quoted IPv4, quoted L4) exactly recomputed."""
    draw = data.draw
    s = draw(setups(proto, clamp=False), "setup")  # a clamped MSS would not be undone
    flow = open_flow(draw, s)
    flow.vlan, flow.ip = None, {}
    client_sent = flow.client_frame(segment(draw, proto, opening=True))
    engine_sent = flow.eng.simulate(client_sent, s.in_port, S).frame
    flow.snat_port = flow.eng.flows()[0].snat[1]
    target_sent = flow.backend_frame(segment(draw, proto, opening=False, type_=0))
    client_got = flow.eng.simulate(target_sent, s.out_port, S).frame
    type_, code = error
    outer = draw(ip_headers(), "outer ip")
    outer["options"] = []
    router = draw(addresses, "router")
    quoted_len = draw(st.one_of(st.none(), st.just(28)), "quoted length")

    def quote(frame: bytes) -> Raw:
        return Raw(frame[14:] if quoted_len is None else frame[14:14 + quoted_len])

    # (a) from the backend side
    err = bytes(Ether(src=PEER_MAC[s.out_port], dst=PORT_MAC[s.out_port]) /
                IP(src=router, dst=s.snat_ip, **outer) / ICMP(type=type_, code=code) / quote(engine_sent))
    out = flow.eng.simulate(err, s.out_port, S)
    assert (out.verdict, out.out_port) == ("forward", s.in_port)
    assert out.frame == bytes(Ether(src=PORT_MAC[s.in_port], dst=PEER_MAC[s.in_port]) /
                              IP(src=s.vip, dst=s.client, **outer) / ICMP(type=type_, code=code) /
                              quote(client_sent))
    assert out.frame == recomputed_error(out.frame)

    # (b) from the client side
    err = bytes(Ether(src=PEER_MAC[s.in_port], dst=PORT_MAC[s.in_port]) /
                IP(src=s.client, dst=s.vip, **outer) / ICMP(type=type_, code=code) / quote(client_got))
    out = flow.eng.simulate(err, s.in_port, S)
    assert (out.verdict, out.out_port) == ("forward", s.out_port)
    assert out.frame == bytes(Ether(src=PORT_MAC[s.out_port], dst=PEER_MAC[s.out_port]) /
                              IP(src=s.snat_ip, dst=s.backend, **outer) / ICMP(type=type_, code=code) /
                              quote(target_sent))
    assert out.frame == recomputed_error(out.frame)


# ---- PROXY protocol v2 --------------------------------------------------------------------

FIN = 0x01


def _signed(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - 2**32 if v >= 2**31 else v


def proxy_translated(want: bytes, frame: bytes, from_client: bool, start: int, header: bytes,
                     keep_udp_zero: bool) -> bytes:
    """The model of a PROXY v2 flow's segment (hp_proxy.c's table), applied to the frame
    the plain translation gives (`want`), every checksum recomputed: toward the target a
    segment at the header's place with data or a FIN gets it in front, later ones are
    shifted; back, acks and SACK edges past the header are shifted back, into it mapped
    to its start; the SYN-ACK's MSS is lowered by the header's length."""
    h = len(header)
    pkt = Ether(want)
    tcp = pkt[TCP]
    if from_client:
        d = _signed(tcp.seq - start)
        payload = bytes(tcp.payload)
        if d > 0:
            tcp.seq = (tcp.seq + h) & 0xFFFFFFFF
        elif d == 0 and (payload or tcp.flags & FIN):
            tcp.remove_payload()
            tcp.add_payload(Raw(header + payload))
            del pkt[IP].len
    else:
        def back(v: int) -> int:
            d = _signed(v - start)
            return (v - h) & 0xFFFFFFFF if d >= h else start if d > 0 else v
        if tcp.flags & ACK:
            tcp.ack = back(tcp.ack)
        options = []
        for kind, value in tcp.options:
            if kind == "SAck":
                value = tuple(back(v) for v in value)
            elif kind == "MSS" and tcp.flags & SYN:
                original = next(v for k, v in TCP(bytes(Ether(frame)[TCP])).options if k == "MSS")
                lowered = value - h if value > h + 64 else 64
                value = min(lowered, original)
            options.append((kind, value))
        tcp.options = options
    return recompute(bytes(pkt), keep_udp_zero)


@st.composite
def near(draw, start: int, h: int) -> int:
    """A sequence number around the header's place (before, at, inside, past), or any."""
    return draw(st.one_of(st.integers(0, 2**32 - 1),
                          st.integers(-3, 3).map(lambda d: (start + d) & 0xFFFFFFFF),
                          st.integers(0, h + 3).map(lambda d: (start + d) & 0xFFFFFFFF),
                          st.integers(h, h + 5000).map(lambda d: (start + d) & 0xFFFFFFFF)))


@PROPERTY
@given(data=st.data())
def test_proxy_v2_flows_have_exact_checksums_and_shifts_both_ways(data: st.DataObject) -> None:
    """A PROXY v2 listener with random addresses, ports, pool and MSS clamp; a SYN with a
    random sequence number, then random segments both ways whose sequence numbers,
    acknowledgements and SACK edges fall before, at, inside and past the header, with
    whole or partial checksums (completed or kept partial for the transmit path)."""
    draw = data.draw
    base = draw(setups("tcp"), "setup")
    s = Setup(**{**base.__dict__, "kind": "privatelink", "proxy_v2": True})
    flow = open_flow(draw, s)
    isn = draw(st.integers(0, 2**32 - 1), "isn")
    start = (isn + 1) & 0xFFFFFFFF
    header = None
    for step in range(draw(st.integers(1, 6), "segments") + 1):
        from_client = step == 0 or draw(st.booleans(), "direction")
        tcp = draw(tcp_segments(opening=step == 0), "segment")
        if step == 0:
            tcp.seq = isn
            tcp.remove_payload()
        elif from_client:
            tcp.flags = int(tcp.flags) & ~SYN    # no reopening: one flow, one header place
            tcp.seq = draw(near(start, 100), "seq")
        else:
            tcp.ack = draw(near(start, 100), "ack")
            tcp.options = [(k, tuple(draw(near(start, 100)) for _ in v) if k == "SAck" else v)
                           for k, v in tcp.options]
        frame = flow.client_frame(tcp) if from_client else flow.backend_frame(tcp)
        partial = draw(partial_modes, "partial") if step else None
        # the transmit path finishes a partial checksum only from the pseudo-header sum
        offload = partial == "pseudo" and draw(st.booleans(), "offload")
        port = s.in_port if from_client else s.out_port
        (sent,) = flow.eng.process_offload(port, [make_partial(frame, partial, 0x1234)], S,
                                           csum_partial=partial is not None, csum_offload=offload)
        out = sent.result._replace(frame=finish_partial(sent.result.frame)) if sent.csum_partial \
            else sent.result
        assert (out.verdict, out.drop_reason) == ("forward", "none")
        if step == 0:
            flow.snat_port = flow.eng.flows()[0].snat[1]
            assert flow.eng.flows()[0].proxy_offset == 100
            header = proxy_header(s.client, s.cport, s.vip, s.vport, PROXY_VPCE)
        if from_client:
            want = expected_out(frame, s.out_port, s.snat_ip, flow.snat_port, s.backend, s.bport,
                                s.mss_clamp, keep_udp_zero=False)
        else:
            want = expected_out(frame, s.in_port, s.vip, s.vport, s.client, s.cport,
                                s.mss_clamp, keep_udp_zero=False)
        want = proxy_translated(want, frame, from_client, start, header, False)
        assert out.frame == want, (Ether(out.frame).summary(), Ether(want).summary())
