"""The fuzz target's seed corpus: the golden tests' packets, and scenarios of whole flows.

Usage: python native/fuzz/make_corpus.py OUT_DIR   (`make fuzz` runs it into build/fuzz/seeds)

Two kinds of seed are written, each one file in hp_fuzz.c's input format (the comment at
the top of hp_fuzz.c, and the readers named after each operation there):

* recorded: the engine unit tests (tests/unit) run here, in this process, with
  Engine.process_offload wrapped so that every batch a test sends is recorded; each test's
  batches become one input of raw frames on the same ports, in the same order, with the
  same offload flags and about the same clock. The fuzz engine's topology is conftest.py's,
  so these frames hit its listeners the way they hit the tests'.
* scenarios: inputs written here op by op that walk the engine through what raw frames
  alone reach slowly: a TCP connection both ways to its close and reopen, UDP and ICMP
  flows, ICMP errors for each direction, target resets, security groups, service and port
  changes between batches, idle expiry.

Writer mirrors the C format; when hp_fuzz.c's format changes, this file changes with it.
"""
from __future__ import annotations

import hashlib
import pathlib
import sys
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parents[2]

# hp_fuzz.c's tables, by the index an input uses
PORT_IDS = [0, 1, 2, 3, 4, 7, 300]
OP_BATCH, OP_PORT_SET, OP_PORT_REMOVE, OP_SG_SET, OP_SG_CLEAR, OP_KIND_CONTROL, OP_EXPIRE, \
    OP_READ, OP_TAP = 0, 3, 4, 5, 6, 7, 8, 9, 10
TAP_ON = 0x80                     # tap_switch()'s first byte: on (else: off if on)
FRAME_RAW, FRAME_NEW, FRAME_FORWARD, FRAME_REPLY, FRAME_ICMP_ERROR, FRAME_ARP = 0, 1, 2, 3, 5, 6
CTL_ADD, CTL_REMOVE, CTL_FLAGS, CTL_BACKENDS, CTL_RESET = range(5)  # enum control
SECONDS = [0, 0, 0, 1, 1, 2, 5, 9, 11, 31, 61, 121, 351, 3600]  # time_step() by index
SYN, SYN_ACK, ACK, PSH_ACK, FIN_ACK, RST, RST_ACK, FIN = range(8)  # tcp_flag_choices
KIND_PRIVATELINK, KIND_VPC_NAT = 0, 1
# vpc_nat_setup()'s options: link B too, link A's routes, TCP only, a pool of two SNAT
# ports, MTU and MSS clamp, a 3 s idle timeout
LINK_B, ROUTES, TCP_ONLY, SMALL_POOL, MTU_MSS, SHORT_IDLE = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
# new_tuple()'s first byte: protocol in the top two bits, destination the kind's first
# (PrivateLink: the listener VIP; VPC NAT: target A, 10.0.1.20)
TO_VIP = {"tcp": 0x10, "udp": 0x50, "icmp": 0x90}
TO_SECOND = 0x10  # added to TO_VIP: the kind's second destination (VPC NAT: 10.0.2.20)
MAX_BATCH, MAX_FRAME = 40, 1600
MAX_INPUT = 4096  # `make fuzz` runs with -max_len=4096
S = 1_000_000_000


class Writer:
    """One input, built operation by operation."""

    def __init__(self, kind: int = KIND_PRIVATELINK, kind_opts: int = 0x06, capacity: int = 6,
                 maglev: int = 0, short_timeouts: bool = False, seed: int = 0) -> None:
        engine = capacity | maglev << 3 | (0x40 if short_timeouts else 0)
        self.data = bytearray([kind | kind_opts << 2, engine, seed])

    def _u16(self, v: int) -> None:
        self.data += v.to_bytes(2, "big")

    def batch(self, port: int, frames: list[bytes], step: int = 0, partial: bool = False,
              offload: bool = False, gso_sel: int | None = None) -> "Writer":
        """frames: raw frames, or specs from new()/forward()/reply()/icmp_error()/arp()."""
        for at in range(0, len(frames), MAX_BATCH):
            chunk = frames[at:at + MAX_BATCH]
            how = int(partial) | int(offload) << 1
            if gso_sel is not None:
                how |= 0x04 | (gso_sel & 15) << 3
            n = len(chunk)
            if n <= 4:
                self.data += bytes([OP_BATCH, PORT_IDS.index(port) | (n - 1) << 4,
                                    step if at == 0 else 0, how])
            else:
                self.data += bytes([OP_BATCH, PORT_IDS.index(port), step if at == 0 else 0,
                                    how | 0x80, n - 1])
            for frame in chunk:
                if isinstance(frame, bytes):
                    frame = frame[:MAX_FRAME]
                    self.data.append(FRAME_RAW)
                    self._u16(len(frame))
                    self.data += frame
                else:
                    self.data += frame.data
        return self

    def control(self, *args: int) -> "Writer":
        self.data += bytes([OP_KIND_CONTROL, *args])
        return self

    def op(self, *args: int) -> "Writer":
        self.data += bytes(args)
        return self


class Spec:
    """A frame hp_fuzz.c builds: its spec byte and arguments, then no mutation."""

    def __init__(self, *args: int) -> None:
        self.data = bytes(args) + b"\0"


def new(proto: str = "tcp", flags: int = SYN, sport_sel: int = 0, mss: bool = False,
        second: bool = False) -> Spec:
    to = TO_VIP[proto] + (TO_SECOND if second else 0)
    return Spec(FRAME_NEW, 0, flags | (0x38 if mss else 0), to, sport_sel << 4)


def toward(src_sel: int, dst_sel: int, proto: str = "tcp", flags: int = SYN) -> Spec:
    """A new packet between two of the kind's addresses (hp_fuzz.c, kinds[].addrs)."""
    return Spec(FRAME_NEW, 0, flags, TO_VIP[proto] - 0x10 | src_sel, dst_sel)


def forward(proto: str = "tcp", flags: int = ACK, flow: int = 0, payload: int = 0) -> Spec:
    if payload > 7:            # a length of its own (build_frame's 0x40), after the tuple
        return Spec(FRAME_FORWARD, flow, flags | 0x40, TO_VIP[proto], 0, payload >> 8, payload & 0xff)
    return Spec(FRAME_FORWARD, flow, flags | payload << 3, TO_VIP[proto], 0)


def reply(proto: str = "tcp", flags: int = SYN, flow: int = 0, payload: int = 0) -> Spec:
    # flags SYN on a live flow's reply means "its SYN-ACK" (hp_fuzz.c, build_frame)
    return Spec(FRAME_REPLY, flow, flags | payload << 3, TO_VIP[proto], 0)


def icmp_error(direction: int, type_sel: int = 0, quote_words: int = 8, flow: int = 0) -> Spec:
    return Spec(FRAME_ICMP_ERROR, flow, direction | type_sel << 1 | quote_words << 3,
                TO_VIP["tcp"], 0)


def arp(addr_sel: int = 1) -> Spec:
    return Spec(FRAME_ARP, addr_sel)


def step_for(seconds: float) -> int:
    """The time_step() selector that comes closest to `seconds` without passing it."""
    best = max(i for i, s in enumerate(SECONDS) if s <= seconds)
    sixteenths = min(15, int((seconds - SECONDS[best]) * 16))
    return best | sixteenths << 4


def scenarios() -> list[bytes]:
    """Whole flows and table changes, each an input."""
    out = []
    # TCP: handshake, data both ways, close from both sides, reopen on the same tuple
    w = Writer().batch(0, [new("tcp", SYN, mss=True)]).batch(1, [reply("tcp", SYN)])
    w.batch(0, [forward("tcp", ACK), forward("tcp", PSH_ACK, payload=5)])
    w.batch(1, [reply("tcp", PSH_ACK, payload=3), reply("tcp", FIN_ACK)], step=3)
    w.batch(0, [forward("tcp", FIN_ACK)]).batch(1, [reply("tcp", ACK)])
    w.batch(0, [new("tcp", SYN)], step=step_for(2))
    out.append(w)
    # the same with a PROXY v2 listener: the header in front of the first data (twice: a
    # retransmission), the replies' acks shifted back, GSO and partial checksums
    w = Writer(kind_opts=0x06 | PROXY_V2).batch(0, [new("tcp", SYN, mss=True)])
    w.batch(1, [reply("tcp", SYN)]).batch(0, [forward("tcp", ACK)])
    w.batch(0, [forward("tcp", PSH_ACK, payload=5), forward("tcp", PSH_ACK, payload=40)])
    w.batch(0, [forward("tcp", PSH_ACK, payload=900)], partial=True)
    w.batch(0, [forward("tcp", PSH_ACK, payload=1400)], partial=True, offload=True, gso_sel=2)
    w.batch(1, [reply("tcp", PSH_ACK, payload=3), reply("tcp", FIN_ACK)], step=3)
    w.batch(0, [forward("tcp", FIN_ACK)]).batch(1, [reply("tcp", ACK)])
    out.append(w)
    # UDP and ICMP echo, both ways, then idle until they expire
    w = Writer(short_timeouts=True)
    w.batch(0, [new("udp"), new("icmp"), new("udp", sport_sel=1)])
    w.batch(1, [reply("udp", flow=0), reply("icmp", flow=1), reply("udp", flow=2)])
    w.batch(0, [forward("udp", flow=2), forward("icmp", flow=1)], step=step_for(2))
    w.op(OP_EXPIRE, step_for(11), 64).op(OP_READ).batch(1, [reply("udp")])
    out.append(w)
    # ICMP errors quoting each direction of a live flow, of each type and quote length
    for direction in (0, 1):
        for type_sel in range(4):
            w = Writer().batch(0, [new("tcp")]).batch(1, [reply("tcp", SYN)])
            port = 1 if direction else 0
            w.batch(port, [icmp_error(direction, type_sel, 3 + type_sel * 2)])
            out.append(w)
    # a target turns unhealthy: its flows are reset from whichever side speaks next
    w = Writer().batch(0, [new("tcp", sport_sel=i) for i in range(6)])
    w.control(CTL_RESET, 0, 0x23).control(CTL_RESET, 0, 0x24)
    w.batch(1, [reply("tcp", ACK, flow=i) for i in range(3)])
    w.batch(0, [forward("tcp", ACK, flow=i) for i in range(6)])
    out.append(w)
    # security groups: ingress and egress rules, then cleared
    w = Writer()
    w.op(OP_SG_SET, 0x20, 0x01 | 32 << 2, 0x00, 0, 0x01 | 24 << 2, 0xa8, 3)  # 2 ingress rules
    w.op(OP_SG_SET, 0x19, 0x02 | 16 << 2, 0x21, 4)  # 1 egress rule on port 1
    w.batch(0, [new("tcp"), new("udp"), new("icmp")])
    w.op(OP_SG_CLEAR, 0x00).op(OP_SG_CLEAR, 0x09).batch(0, [new("tcp", sport_sel=2)])
    out.append(w)
    # services and ports changed between batches: a new listener with options, new
    # backends, disabled, removed; a port that loses its address, then removed
    w = Writer(capacity=3)
    # TCP 10.0.1.50:443, hashing the SYN's sequence, SNAT from 10.0.1.51 ports 1025-1026,
    # MTU 300, MSS clamped to 1200; two backends; then three SYNs for two SNAT ports
    w.control(CTL_ADD, 0x10, 0x01, 0x7c, 4, 0x0a, 1, 2, 40, 150, 2, 0x03, 1, 0x14, 1)
    w.batch(0, [Spec(FRAME_NEW, 0, SYN | 0x38, 0x30, sport << 4 | 4) for sport in range(3)])
    w.control(CTL_BACKENDS, 0, 1, 0x43, 1).batch(0, [new("tcp", sport_sel=5)])
    w.control(CTL_FLAGS, 0, 0x01).batch(0, [forward("tcp")]).control(CTL_FLAGS, 0, 0x06)
    w.control(CTL_REMOVE, 1).control(CTL_REMOVE, 2).op(OP_PORT_SET, 0x20)
    w.batch(1, [reply("tcp")]).op(OP_PORT_REMOVE, 3).op(OP_PORT_SET, 0x03)
    w.batch(3, [new("tcp")]).op(OP_READ)
    out.append(w)
    # offload: partial checksums, kept or completed, and GSO frames
    w = Writer().batch(0, [new("tcp")], partial=True)
    w.batch(1, [reply("tcp", SYN)], partial=True, offload=True)
    w.batch(0, [forward("tcp", PSH_ACK, payload=7)], partial=True, offload=True, gso_sel=0)
    w.batch(0, [forward("tcp", PSH_ACK, payload=7)], partial=True, gso_sel=0)
    out.append(w)
    # ARP for each address, on each port; frames on a port never set and one out of range
    w = Writer().batch(0, [arp(i) for i in range(16)]).batch(1, [arp(2), arp(11)])
    w.batch(7, [new("tcp")]).batch(300, [new("tcp")])
    out.append(w)
    # the tap: on for every port with a ring of 4 (a handshake overflows it), off, then on
    # for port 1's frames only, at stage out, 64 bytes of each
    w = Writer().op(OP_TAP, TAP_ON | 2, 0).batch(0, [new("tcp", SYN)]).batch(1, [reply("tcp", SYN)])
    w.batch(0, [forward("tcp", ACK), forward("tcp", PSH_ACK, payload=5), new("udp")])
    w.batch(0, [new("tcp", SYN, sport_sel=i) for i in range(1, 6)])
    w.op(OP_TAP, 0, 0).op(OP_TAP, TAP_ON | 5, 0x18 | 2).batch(0, [forward("tcp", FIN_ACK), arp(1)])
    w.batch(1, [reply("tcp", ACK)])
    out.append(w)
    out += vpc_nat_scenarios()
    return [bytes(w.data) for w in out]


def vpc_nat_scenarios() -> list[Writer]:
    """The same for VPC links: flows both ways through each ENI, the one-way drop, ICMP
    errors quoting link flows, ENI egress security groups, links added and removed."""
    out = []

    def link(opts: int = LINK_B | ROUTES, **kw) -> Writer:
        return Writer(kind=KIND_VPC_NAT, kind_opts=opts, **kw)

    # TCP through ENI A0 (target A, by route) and ENI A1 (target B): both ways, to the close
    for second, eni in ((False, 1), (True, 2)):
        w = link().batch(0, [new("tcp", SYN, mss=True, second=second)])
        w.batch(eni, [reply("tcp", SYN)]).batch(0, [forward("tcp", ACK), forward("tcp", PSH_ACK, payload=5)])
        w.batch(eni, [reply("tcp", PSH_ACK, payload=3), reply("tcp", FIN_ACK)], step=3)
        w.batch(0, [forward("tcp", FIN_ACK)]).batch(eni, [reply("tcp", ACK)])
        w.batch(0, [new("tcp", SYN, second=second)], step=step_for(2))
        out.append(w)
    # UDP both ways, idle until expired; no route: ENIs by hash; link B beside link A
    w = link(LINK_B | SHORT_IDLE, short_timeouts=True)
    w.batch(0, [new("udp"), new("udp", sport_sel=1), new("udp", second=True)])
    w.batch(3, [new("udp"), new("tcp")])
    w.batch(1, [reply("udp", flow=i) for i in range(3)]).batch(2, [reply("udp", flow=i) for i in range(3)])
    w.batch(4, [reply("udp"), reply("tcp", SYN)])
    w.op(OP_EXPIRE, step_for(11), 64).op(OP_READ).batch(1, [reply("udp")])
    out.append(w)
    # ICMP errors quoting each direction of a link flow, of each type
    for direction in (0, 1):
        for type_sel in range(4):
            w = link().batch(0, [new("udp")]).batch(1, [reply("udp")])
            w.batch(1 if direction else 0, [icmp_error(direction, type_sel, 3 + type_sel * 2)])
            out.append(w)
    # one way: SYNs and datagrams from the customer's side to an ENI, stray segments
    w = link().batch(1, [toward(3, 1, "tcp", SYN), toward(3, 1, "udp"), toward(3, 1, "tcp", ACK),
                         toward(3, 1, "tcp", RST), toward(4, 2, "tcp", SYN)])
    w.batch(0, [new("icmp"), toward(0, 8, "tcp"), new("tcp", ACK)])  # not carried
    out.append(w)
    # the ENI's egress group decides new flows: tcp 10.0.1.0/24 port 80 only on port 1
    w = link().op(OP_SG_SET, 0x19, 24 << 2, 0x00, 3)
    w.batch(0, [new("tcp"), new("udp"), new("tcp", second=True)])
    w.op(OP_SG_SET, 0x01).batch(1, [reply("tcp", SYN)])  # an empty ingress group on the ENI
    w.op(OP_SG_CLEAR, 0x09).batch(0, [new("udp", sport_sel=3)])
    out.append(w)
    # a link added from the input on port 3 (10.0.0.0/16, ENI on port 4, a pool of two
    # ports, MSS 1200, a route), its flows, disabled, backends refused, a reset, removed
    w = link(ROUTES, capacity=3)
    w.control(CTL_ADD, 0x03, 0x05, 0, 2, 150, 0x15, 0x03, 0x64, 0x23, 0)
    w.batch(3, [new("tcp", SYN, mss=True, sport_sel=i) for i in range(3)])
    w.batch(4, [reply("tcp", SYN, flow=i) for i in range(3)])
    w.control(CTL_FLAGS, 1, 0x01).batch(3, [forward("tcp")]).control(CTL_FLAGS, 1, 0x00)
    w.control(CTL_BACKENDS, 1, 1, 0x03, 1).control(CTL_RESET, 1, 0x03)
    w.batch(4, [reply("tcp", ACK)]).op(OP_PORT_REMOVE, 4).control(CTL_REMOVE, 1)
    w.op(OP_PORT_REMOVE, 4).batch(3, [new("tcp")])
    w.control(CTL_ADD, 0x00, 0x00, 0x00).control(CTL_ADD, 0x30, 0x00, 0x05, 0x03, 0x00)
    w.op(OP_READ)
    out.append(w)
    # a pool of two ports: the third flow to the same destination finds none
    w = link(ROUTES | SMALL_POOL).batch(0, [new("udp", sport_sel=i) for i in range(3)])
    w.batch(0, [new("udp", sport_sel=3, second=True)]).batch(1, [reply("udp", flow=1)])
    out.append(w)
    return out


# ---- the golden tests' packets ----------------------------------------------------------

GOLDEN_TESTS = ["test_api.py", "test_icmp.py", "test_limits.py", "test_malformed.py",
                "test_nat.py", "test_offload.py", "test_sg.py", "test_tcp_state.py",
                "test_checksum_property.py", "test_maglev.py", "test_vpc_nat.py",
                "test_proxy_v2_engine.py"]


class Topology:
    """How a test file's engine maps onto the fuzz engine: the kind (and its setup
    options) and, for each of the test's ports, the fuzz port and the test's MAC for it
    (rewritten to the fuzz port's, 02:00:00:00:00:e0 + index, as the engine checks it)."""

    def __init__(self, kind: int, kind_opts: int, ports: dict[int, tuple[int, str | None]]):
        self.kind, self.kind_opts, self.ports = kind, kind_opts, ports

    def writer(self) -> Writer:
        return Writer(self.kind, self.kind_opts, capacity=7, maglev=3)

    def frame(self, test_port: int, frame: bytes) -> bytes:
        port, mac = self.ports[test_port]
        if mac is not None and frame[:6] == bytes.fromhex(mac.replace(":", "")):
            frame = bytes([2, 0, 0, 0, 0, 0xe0 + PORT_IDS.index(port)]) + frame[6:]
        return frame


# conftest.py's ports are the fuzz engine's; test_vpc_nat.py's 5-9 are its 0-4
PRIVATELINK = Topology(KIND_PRIVATELINK, 0x06, {p: (p, None) for p in PORT_IDS})
# privatelink_setup()'s option 0x08: the TCP listener puts a PROXY v2 header in
PROXY_V2 = 0x08
PRIVATELINK_PROXY = Topology(KIND_PRIVATELINK, 0x06 | PROXY_V2, {p: (p, None) for p in PORT_IDS})
VPC_NAT = Topology(KIND_VPC_NAT, LINK_B | ROUTES,
                   {p: (p - 5, f"02:00:00:00:01:{p:02x}") for p in range(5, 10)})
TOPOLOGY = {"test_vpc_nat.py": VPC_NAT, "test_proxy_v2_engine.py": PRIVATELINK_PROXY}
MAX_INPUTS_PER_TEST = 8  # property tests run hundreds of examples; a few are enough here
MAX_INPUTS_PER_ENGINE = 4  # a test that sends thousands of batches: its first ones


def recorded() -> list[bytes]:
    """Runs the golden tests with every batch they send recorded; one input per engine."""
    import pytest

    from dataplane.forwarder import engine as engine_module

    batches: dict[tuple[str, int], list[tuple]] = defaultdict(list)
    current = {"test": ""}
    original = engine_module.Engine.process_offload

    def recording(self, in_port, frames, now_ns=0, csum_partial=False, csum_offload=False,
                  gso_size=0, **kw):
        batches[(current["test"], id(self))].append(
            (in_port, [bytes(f) for f in frames], now_ns, csum_partial, csum_offload, gso_size))
        return original(self, in_port, frames, now_ns, csum_partial, csum_offload, gso_size, **kw)

    class Recorder:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_call(self, item):
            current["test"] = item.nodeid.split("[")[0]
            yield

    engine_module.Engine.process_offload = recording
    try:
        args = [str(ROOT / "tests" / "unit" / name) for name in GOLDEN_TESTS]
        pytest.main(["-q", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=", *args],
                    plugins=[Recorder()])
    finally:
        engine_module.Engine.process_offload = original

    per_test: dict[str, int] = defaultdict(int)
    inputs = []
    for (test, _), sent in batches.items():
        per_test[test] += 1
        if per_test[test] > MAX_INPUTS_PER_TEST:
            continue
        name = test.split("::")[0].rsplit("/", 1)[-1]
        inputs += _as_inputs(sent, TOPOLOGY.get(name, PRIVATELINK))
    return inputs


def _as_inputs(sent: list[tuple], topology: Topology) -> list[bytes]:
    """One engine's batches as inputs of at most MAX_INPUT bytes: a new input (a new
    engine) starts where the next frame would not fit."""
    inputs = []
    w, clock = topology.writer(), S  # the harness's clock starts at 1 s
    for in_port, frames, now_ns, partial, offload, gso in sent:
        if in_port not in topology.ports:
            continue
        frames = [topology.frame(in_port, f) for f in frames]
        in_port = topology.ports[in_port][0]
        step = step_for((now_ns - clock) / S) if now_ns > clock else 0
        clock = max(clock, now_ns)
        gso_sel = None if not gso else max(0, min(15, (gso - 8) // 100))
        chunk: list[bytes] = []
        for frame in (f[:MAX_FRAME] for f in frames):
            pending = sum(len(f) + 3 for f in chunk) + len(frame) + 8
            if len(w.data) + pending > MAX_INPUT and (chunk or len(w.data) > 3):
                if chunk:
                    w.batch(in_port, chunk, step, partial, offload, gso_sel)
                inputs.append(bytes(w.data))
                if len(inputs) == MAX_INPUTS_PER_ENGINE:
                    return inputs
                w, chunk, step = topology.writer(), [], 0
            chunk.append(frame)
        if chunk:
            w.batch(in_port, chunk, step, partial, offload, gso_sel)
    if len(w.data) > 3:
        inputs.append(bytes(w.data))
    return inputs


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("seed-*"):
        old.unlink()
    seeds = scenarios() + recorded()
    for data in seeds:
        (out / f"seed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)
    print(f"make_corpus: {len(seeds)} seeds in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
