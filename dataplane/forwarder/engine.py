"""A thin, typed wrapper over the Hyperplane C engine (native/hp_engine.h).

The engine is what the forwarder runs; this module is how Python drives it: create an
engine, give it ports (ENIs), services (listeners with backends and an SNAT pool) and
security-group rules, hand it frames, read counters and flows. Python never sees a
packet on the forwarder's hot path; here it does, for tests, the `trace` command and
benchmarks' set-up, through `process()` and `simulate()`, which run the real C code.

Addresses are given as strings ("10.0.1.50") or ints, MACs as "02:00:00:00:00:01" or 6
bytes, times as integer nanoseconds of any monotonic clock (the engine never reads a
clock, so a test moves time by passing a larger `now_ns`).

    eng = Engine(flow_capacity=1024)
    eng.set_port(0, mac="02:00:00:00:00:01", addrs=["10.0.1.50"])   # endpoint ENI
    eng.set_port(1, mac="02:00:00:00:00:02", addrs=["10.0.1.100"])  # NLB ENI
    svc = eng.add_service(in_port=0, out_port=1, vip="10.0.1.50", vport=80, proto="tcp")
    eng.set_backends(svc, [Backend("10.0.1.20", 8080)])
    verdict, out_port, frame, reason = eng.simulate(frame_bytes, in_port=0)

A VPC link (VPC-to-VPC NAT, the second kind of service) is added whole, with its
destination prefixes, ENIs and routes, and is then a service id like any other:

    link = eng.add_vpc_link(in_port=5, prefixes=["10.0.0.0/16"],
                            enis=[LinkEni(6, "10.0.1.4"), LinkEni(7, "10.0.2.4")],
                            routes=[LinkRoute("10.0.1.0/24", 0), LinkRoute("10.0.2.0/24", 1)])
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple, Sequence

from dataplane._native import ffi, lib
# The spec's value types are the engine's arguments too: one definition of each.
from dataplane.compile.spec import Backend, LinkEni, LinkRoute, SgRule  # noqa: F401

PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "all": 0}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}
VERDICTS = {lib.HP_VERDICT_DROP: "drop", lib.HP_VERDICT_FORWARD: "forward",
            lib.HP_VERDICT_REPLY: "reply"}
TCP_STATES = {lib.HP_TCP_NONE: "-", lib.HP_TCP_SYN_SENT: "SYN_SENT",
              lib.HP_TCP_ESTABLISHED: "ESTABLISHED", lib.HP_TCP_FIN_WAIT: "FIN_WAIT",
              lib.HP_TCP_CLOSING: "CLOSING", lib.HP_TCP_CLOSED: "CLOSED",
              lib.HP_TCP_SYN_RECV: "SYN_RECV"}
DROP_REASONS: tuple[str, ...] = tuple(
    ffi.string(lib.hp_drop_reason_name(i)).decode() for i in range(lib.hp_drop_reason_count()))
DROP_REASON_TEXT: dict[str, str] = {
    name: ffi.string(lib.hp_drop_reason_text(i)).decode() for i, name in enumerate(DROP_REASONS)}
COUNTERS: tuple[str, ...] = tuple(
    ffi.string(lib.hp_counter_name(i)).decode() for i in range(lib.hp_counter_count()))
COUNTER_TEXT: dict[str, str] = {
    name: ffi.string(lib.hp_counter_text(i)).decode() for i, name in enumerate(COUNTERS)}
SG_DIRECTIONS = {"ingress": lib.HP_SG_INGRESS, "egress": lib.HP_SG_EGRESS}
KINDS = {lib.HP_KIND_PRIVATELINK: "privatelink", lib.HP_KIND_VPC_NAT: "vpc_nat"}
NS_PER_S = 1_000_000_000
# Bytes after each frame handed to process(): room for a PROXY v2 header, as the
# forwarder's receive slots have.
ROOM = 256


class EngineError(ValueError):
    """A control call was refused; the message is the engine's, naming what was wrong."""


def ip_to_int(ip: str | int | ipaddress.IPv4Address) -> int:
    return int(ipaddress.IPv4Address(ip))


def int_to_ip(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def mac_to_bytes(mac: str | bytes) -> bytes:
    if isinstance(mac, bytes):
        if len(mac) != 6:
            raise EngineError(f"a MAC address has 6 bytes, not {len(mac)}")
        return mac
    parts = mac.split(":")
    if len(parts) != 6:
        raise EngineError(f"{mac!r} is not a MAC address (want six hex bytes joined by ':')")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise EngineError(f"{mac!r} is not a MAC address") from None


def _proto(proto: str | int) -> int:
    if isinstance(proto, int):
        return proto
    try:
        return PROTOCOLS[proto.lower()]
    except KeyError:
        raise EngineError(f"unknown protocol {proto!r}; use one of {', '.join(PROTOCOLS)}") from None


def _network(cidr: str, what: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(cidr, strict=False)
    except ValueError:
        raise EngineError(f"{what} {cidr!r} is not an IPv4 CIDR") from None


class Result(NamedTuple):
    verdict: str           # 'drop', 'forward' or 'reply'
    out_port: int
    frame: bytes           # the frame as it leaves (rewritten, or the reply built)
    drop_reason: str       # 'none' unless dropped (a RST reply carries its reason too)


class OffloadResult(NamedTuple):
    result: Result
    csum_partial: bool     # the frame leaves with its L4 checksum still to be finished
    gso_size: int          # segment payload of a GSO frame as it leaves, 0: none


@dataclass(frozen=True)
class FlowInfo:
    """One flow. For a VPC link's flow (kind 'vpc_nat'): client = the source on API
    Gateway's side, snat = the link ENI's address and port, vip = backend = the
    destination in the customer's VPC."""
    id: int
    service: int
    kind: str                  # 'privatelink' or 'vpc_nat'
    in_port: int
    out_port: int
    protocol: str
    tcp_state: str
    client: tuple[str, int]
    vip: tuple[str, int]
    snat: tuple[str, int]
    backend: tuple[str, int]
    packets: tuple[int, int]   # client → backend, backend → client
    bytes: tuple[int, int]
    created_ns: int
    last_seen_ns: int
    proxy_offset: int = 0      # PROXY v2 header bytes put in toward the target: the shift

    @classmethod
    def _from_c(cls, f) -> "FlowInfo":
        return cls(
            id=f.id, service=f.service, kind=KINDS.get(f.kind, str(f.kind)),
            in_port=f.in_port, out_port=f.out_port,
            protocol=PROTOCOL_NAMES.get(f.proto, str(f.proto)),
            tcp_state=TCP_STATES.get(f.tcp_state, str(f.tcp_state)),
            client=(int_to_ip(f.client_ip), f.client_port), vip=(int_to_ip(f.vip), f.vport),
            snat=(int_to_ip(f.snat_ip), f.snat_port),
            backend=(int_to_ip(f.backend_ip), f.backend_port),
            packets=(f.packets[0], f.packets[1]), bytes=(f.bytes[0], f.bytes[1]),
            created_ns=f.created_ns, last_seen_ns=f.last_seen_ns, proxy_offset=f.proxy_offset)


TRACE_SG = {lib.HP_TRACE_SG_OPEN: "open", lib.HP_TRACE_SG_NONE: "refused",
            lib.HP_TRACE_SG_UNCHECKED: "unchecked"}
TRACE_BACKEND = {lib.HP_TRACE_BACKEND_NONE: "none", lib.HP_TRACE_BACKEND_FLOW: "flow",
                 lib.HP_TRACE_BACKEND_MAGLEV: "maglev", lib.HP_TRACE_BACKEND_LINK_ROUTE: "link_route",
                 lib.HP_TRACE_BACKEND_LINK_HASH: "link_hash"}
TRACE_SNAT = {lib.HP_TRACE_SNAT_NONE: "none", lib.HP_TRACE_SNAT_FREE: "free",
              lib.HP_TRACE_SNAT_EXPIRE: "expire_idle", lib.HP_TRACE_SNAT_EVICT: "evict_half_open",
              lib.HP_TRACE_SNAT_FLOW: "flow"}
TRACE_FLOW = {lib.HP_TRACE_FLOW_NONE: "none", lib.HP_TRACE_FLOW_HIT: "hit",
              lib.HP_TRACE_FLOW_EXPIRED: "expired", lib.HP_TRACE_FLOW_REOPEN: "reopen"}
TCP_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}


def tcp_flags(flags: str | int) -> int:
    """TCP flags as scapy writes them ("S", "SA", "A", "FA", "R") or as a number."""
    if isinstance(flags, int):
        return flags
    try:
        return sum(TCP_FLAG_BITS[c] for c in set(flags.upper()))
    except KeyError:
        raise EngineError(f"TCP flags {flags!r}: use letters of {''.join(TCP_FLAG_BITS)}") from None


@dataclass(frozen=True)
class EngineTrace:
    """What the engine would do with one packet (native/hp_trace.c), decided by its own
    code and changing nothing. sg_ingress / sg_egress: the index of the rule that let it
    through, or 'open' (no group on the port), 'refused' (no rule matched), 'unchecked'
    (the decision ended before). backend_how: 'maglev' (backend_index = the Maglev entry),
    'link_route' (the VPC link's route), 'link_hash' (the ENI hashed to), 'flow' (the
    existing flow's). snat_how: 'free', 'expire_idle' / 'evict_half_open' (the port of a
    flow the real packet would remove first), 'none' (port_allocation), 'flow'."""
    verdict: str
    drop_reason: str
    rst: bool
    flow: str                       # 'none', 'hit', 'expired' or 'reopen'
    flow_id: int | None
    flow_dir: int | None
    tcp_state: str
    service: int | None
    kind: str | None
    protocol: str
    src: tuple[str, int]
    dst: tuple[str, int]
    sg_ingress: int | str
    sg_egress: int | str
    sg_egress_port: int | None
    backend_how: str
    backend_index: int | None
    snat_how: str
    snat_attempts: int
    out_port: int
    out_src: tuple[str, int] | None
    out_dst: tuple[str, int] | None
    packet_size: int
    mtu: int
    mss_clamp: int
    mss_out: int
    proxy_len: int
    flow_table_full: bool

    @classmethod
    def _from_c(cls, r) -> "EngineTrace":
        hit = r.flow != lib.HP_TRACE_FLOW_NONE
        chosen = r.backend_how != lib.HP_TRACE_BACKEND_NONE
        return cls(
            verdict=VERDICTS[r.verdict], drop_reason=DROP_REASONS[r.drop_reason], rst=bool(r.rst),
            flow=TRACE_FLOW[r.flow], flow_id=r.flow_id if hit else None,
            flow_dir=r.flow_dir if hit else None,
            tcp_state=TCP_STATES.get(r.tcp_state, str(r.tcp_state)) if hit else "-",
            service=r.service if r.service >= 0 else None,
            kind=KINDS.get(r.kind) if r.service >= 0 else None,
            protocol=PROTOCOL_NAMES.get(r.proto, str(r.proto)),
            src=(int_to_ip(r.src_ip), r.src_port), dst=(int_to_ip(r.dst_ip), r.dst_port),
            sg_ingress=TRACE_SG.get(r.sg_ingress_rule, r.sg_ingress_rule),
            sg_egress=TRACE_SG.get(r.sg_egress_rule, r.sg_egress_rule),
            sg_egress_port=r.sg_egress_port if r.sg_egress_rule != lib.HP_TRACE_SG_UNCHECKED else None,
            backend_how=TRACE_BACKEND[r.backend_how],
            backend_index=r.backend_index if r.backend_how not in (
                lib.HP_TRACE_BACKEND_NONE, lib.HP_TRACE_BACKEND_FLOW) else None,
            snat_how=TRACE_SNAT[r.snat_how], snat_attempts=r.snat_attempts, out_port=r.out_port,
            out_src=(int_to_ip(r.out_src_ip), r.out_src_port) if chosen else None,
            out_dst=(int_to_ip(r.out_dst_ip), r.out_dst_port) if chosen else None,
            packet_size=r.packet_size, mtu=r.mtu, mss_clamp=r.mss_clamp, mss_out=r.mss_out,
            proxy_len=r.proxy_len, flow_table_full=bool(r.flow_table_full))


class Engine:
    """One Hyperplane engine: its ports, services, flow table and counters."""

    def __init__(self, flow_capacity: int = 65536, *, max_services: int = 0,
                 maglev_size: int = 0, hash_seed: int = 0, timeout_tcp_syn_s: int = 0,
                 timeout_tcp_fin_s: int = 0, timeout_tcp_close_s: int = 0,
                 timeout_udp_s: int = 0, timeout_icmp_s: int = 0,
                 expiry_scan_per_batch: int = 0, max_ports: int = 0,
                 expired_ring: int = 0) -> None:
        cfg = ffi.new("struct hp_engine_config *", {
            "flow_capacity": flow_capacity, "max_services": max_services,
            "maglev_size": maglev_size, "hash_seed": hash_seed,
            "timeout_tcp_syn_s": timeout_tcp_syn_s, "timeout_tcp_fin_s": timeout_tcp_fin_s,
            "timeout_tcp_close_s": timeout_tcp_close_s, "timeout_udp_s": timeout_udp_s,
            "timeout_icmp_s": timeout_icmp_s, "expiry_scan_per_batch": expiry_scan_per_batch,
            "max_ports": max_ports, "expired_ring": expired_ring})
        ptr = lib.hp_engine_create(cfg)
        if ptr == ffi.NULL:
            raise EngineError(ffi.string(lib.hp_last_error(ffi.NULL)).decode())
        self._e = ffi.gc(ptr, lib.hp_engine_destroy)
        self.config = {k: getattr(cfg, k) for k in dir(cfg)}

    def close(self) -> None:
        """Frees the engine now rather than when it is garbage-collected."""
        if self._e is not None:
            ffi.release(self._e)
            self._e = None

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check(self, rc: int) -> int:
        if rc < 0:
            raise EngineError(ffi.string(lib.hp_last_error(self._e)).decode())
        return rc

    # -- tables ---------------------------------------------------------------------------

    def set_port(self, port: int, mac: str | bytes, addrs: Iterable[str] = (),
                 peer_mac: str | bytes | None = None) -> None:
        addrs = [ip_to_int(a) for a in addrs]
        if len(addrs) > lib.HP_PORT_MAX_ADDRS:
            raise EngineError(f"port {port}: {len(addrs)} addresses, at most {lib.HP_PORT_MAX_ADDRS}")
        cfg = ffi.new("struct hp_port_config *")
        cfg.mac = list(mac_to_bytes(mac))
        cfg.peer_mac = list(mac_to_bytes(peer_mac) if peer_mac else bytes(6))
        for i, a in enumerate(addrs):
            cfg.addrs[i] = a
        cfg.n_addrs = len(addrs)
        self._check(lib.hp_port_set(self._e, port, cfg))

    def remove_port(self, port: int) -> None:
        self._check(lib.hp_port_remove(self._e, port))

    def set_security_group(self, port: int, direction: str, rules: Sequence[SgRule]) -> None:
        """Enables allow-only filtering of new flows on a port; no rules admits nothing."""
        c_rules = ffi.new("struct hp_sg_rule[]", max(len(rules), 1))
        for i, r in enumerate(rules):
            net = ipaddress.IPv4Network(r.cidr, strict=False)
            c_rules[i].proto = _proto(r.protocol)
            c_rules[i].prefix_len = net.prefixlen
            c_rules[i].cidr = int(net.network_address)
            c_rules[i].port_lo = r.port_lo
            c_rules[i].port_hi = r.port_hi
        self._check(lib.hp_port_sg_set(self._e, port, self._direction(direction), c_rules, len(rules)))

    def clear_security_group(self, port: int, direction: str) -> None:
        """Turns filtering off on a port: every new flow passes."""
        self._check(lib.hp_port_sg_clear(self._e, port, self._direction(direction)))

    @staticmethod
    def _direction(direction: str) -> int:
        try:
            return SG_DIRECTIONS[direction]
        except KeyError:
            raise EngineError(f"security group direction must be 'ingress' or 'egress', not {direction!r}") from None

    def add_service(self, in_port: int, out_port: int, vip: str, vport: int, proto: str = "tcp",
                    *, snat_ip: str | None = None, snat_ports: tuple[int, int] = (0, 0),
                    idle_timeout_s: int = 0, mtu: int = 0, mss_clamp: int = 0,
                    rst_on_miss: bool = False, hash_tcp_seq: bool = False,
                    disabled: bool = False, proxy_v2: bool = False,
                    vpce_id: str | None = None) -> int:
        """A listener (in_port, vip, proto, vport); returns its service id.

        Maps (client, cport, vip, vport) ⇒ (snat_ip, snat_port, backend, bport), with
        snat_port from `snat_ports` (inclusive; (0, 0) means 1024-65535). `proxy_v2`: a
        PROXY v2 header in front of each flow's first bytes toward the backend, with
        `vpce_id` (the endpoint's ID) in its TLV 0xEA when given (native/hp_proxy.c)."""
        vpce = (vpce_id or "").encode("ascii", "replace")
        if len(vpce) > lib.HP_PROXY_VPCE_ID_MAX:
            raise EngineError(f"PROXY v2 endpoint ID {vpce_id!r} is longer than "
                              f"{lib.HP_PROXY_VPCE_ID_MAX} characters")
        cfg = ffi.new("struct hp_service_config *", {
            "in_port": in_port, "out_port": out_port, "vip": ip_to_int(vip), "vport": vport,
            "proto": _proto(proto), "flags": self._flags(disabled, rst_on_miss, hash_tcp_seq),
            "snat_ip": ip_to_int(snat_ip) if snat_ip else 0,
            "snat_port_min": snat_ports[0], "snat_port_max": snat_ports[1],
            "idle_timeout_s": idle_timeout_s, "mtu": mtu, "mss_clamp": mss_clamp,
            "proxy_v2": int(proxy_v2), "vpce_id": vpce})
        return self._check(lib.hp_service_add(self._e, cfg))

    def add_vpc_link(self, in_port: int, prefixes: Sequence[str],
                     enis: Sequence[LinkEni | tuple], routes: Sequence[LinkRoute | tuple] = (),
                     protocols: Sequence[str] = ("tcp", "udp"), *,
                     snat_ports: tuple[int, int] = (0, 0), idle_timeout_s: int = 0,
                     mtu: int = 0, mss_clamp: int = 0, disabled: bool = False) -> int:
        """A VPC link (VPC-to-VPC NAT) attached on `in_port`; returns its service id.

        Maps (src, sport, dst, dport) on in_port, dst in `prefixes`, ⇒ (ENI ip, snat
        port, dst, dport) out of the ENI that the longest covering route names (else
        one by hash), replies back. `protocols`: 'tcp', 'udp' or both. A link cannot
        be changed: remove it and add it again."""
        protos = sorted({_proto(p) for p in protocols})
        if not protos or any(p not in (PROTOCOLS["tcp"], PROTOCOLS["udp"]) for p in protos):
            raise EngineError(f"a VPC link carries 'tcp', 'udp' or both, not {list(protocols)!r}")
        es = [e if isinstance(e, LinkEni) else LinkEni(*e) for e in enis]
        rs = [r if isinstance(r, LinkRoute) else LinkRoute(*r) for r in routes]
        limits = [(prefixes, lib.HP_LINK_MAX_PREFIXES, "prefixes"), (es, lib.HP_LINK_MAX_ENIS, "ENIs"),
                  (rs, lib.HP_LINK_MAX_ROUTES, "routes")]
        for items, most, what in limits:
            if len(items) > most:
                raise EngineError(f"a VPC link has at most {most} {what}, not {len(items)}")
        cfg = ffi.new("struct hp_link_config *", {
            "in_port": in_port, "proto": protos[0] if len(protos) == 1 else 0,
            "flags": self._flags(disabled, False, False),
            "snat_port_min": snat_ports[0], "snat_port_max": snat_ports[1],
            "idle_timeout_s": idle_timeout_s, "mtu": mtu, "mss_clamp": mss_clamp,
            "n_prefixes": len(prefixes), "n_enis": len(es), "n_routes": len(rs)})
        for i, cidr in enumerate(prefixes):
            net = _network(cidr, "VPC link prefix")
            cfg.prefixes[i].addr, cfg.prefixes[i].len = int(net.network_address), net.prefixlen
        for i, eni in enumerate(es):
            cfg.enis[i].port, cfg.enis[i].ip = eni.port, ip_to_int(eni.ip)
        for i, route in enumerate(rs):
            net = _network(route.cidr, "VPC link route")
            cfg.routes[i].cidr, cfg.routes[i].prefix_len = int(net.network_address), net.prefixlen
            if not 0 <= route.eni < len(es):
                raise EngineError(f"VPC link route {route.cidr} names ENI {route.eni}; "
                                  f"the link has {len(es)} (0-{len(es) - 1})")
            cfg.routes[i].eni = route.eni
        return self._check(lib.hp_link_add(self._e, cfg))

    @staticmethod
    def _flags(disabled: bool, rst_on_miss: bool, hash_tcp_seq: bool) -> int:
        return ((lib.HP_SVC_DISABLED if disabled else 0) |
                (lib.HP_SVC_RST_ON_MISS if rst_on_miss else 0) |
                (lib.HP_SVC_HASH_TCP_SEQ if hash_tcp_seq else 0))

    def set_service_flags(self, service: int, *, disabled: bool = False,
                          rst_on_miss: bool = False, hash_tcp_seq: bool = False) -> None:
        self._check(lib.hp_service_set_flags(self._e, service,
                                             self._flags(disabled, rst_on_miss, hash_tcp_seq)))

    def remove_service(self, service: int) -> None:
        """Removes a service and every flow it has."""
        self._check(lib.hp_service_remove(self._e, service))

    def set_backends(self, service: int, backends: Sequence[Backend | tuple]) -> None:
        """Replaces the backend set. Existing flows stay on their backend."""
        bs = [b if isinstance(b, Backend) else Backend(*b) for b in backends]
        arr = ffi.new("struct hp_backend[]", max(len(bs), 1))
        for i, b in enumerate(bs):
            arr[i].ip = ip_to_int(b.ip)
            arr[i].port = b.port
            arr[i].weight = b.weight
        self._check(lib.hp_service_set_backends(self._e, service, arr, len(bs)))

    def reset_backend(self, service: int, backend: Backend | tuple) -> int:
        """Resets the flows pinned to one backend (a target turned unhealthy): the next
        packet of each, from either side, gets a RST and the flow is forgotten. Returns
        how many flows were marked."""
        b = backend if isinstance(backend, Backend) else Backend(*backend)
        return self._check(lib.hp_service_reset_backend(self._e, service, ip_to_int(b.ip), b.port))

    # -- packets --------------------------------------------------------------------------

    def process(self, in_port: int, frames: Sequence[bytes], now_ns: int = 0,
                csum_partial: bool = False, room: int = ROOM) -> list[Result]:
        """Runs one batch through the engine, as the forwarder does."""
        return [out.result for out in self.process_offload(in_port, frames, now_ns, csum_partial,
                                                           room=room)]

    def process_offload(self, in_port: int, frames: Sequence[bytes], now_ns: int = 0,
                        csum_partial: bool = False, csum_offload: bool = False,
                        gso_size: int = 0, room: int = ROOM) -> list[OffloadResult]:
        """One batch with the offload metadata a virtio-net header carries (hp_engine.h,
        HP_PKT_*): the frames' L4 checksums partial or not, whether the transmit path
        could finish a partial checksum, the GSO segment size; and what leaves with them.
        Each frame's buffer has `room` bytes after it, which a PROXY v2 header may take."""
        n = len(frames)
        pkts = ffi.new("struct hp_pkt[]", max(n, 1))
        bufs = []
        flags = (lib.HP_PKT_CSUM_PARTIAL if csum_partial else 0) | \
                (lib.HP_PKT_CSUM_OFFLOAD if csum_offload else 0)
        for i, frame in enumerate(frames):
            buf = ffi.new("uint8_t[]", max(len(frame) + room, 1))
            ffi.memmove(buf, bytes(frame), len(frame))
            bufs.append(buf)
            pkts[i].data = buf
            pkts[i].len = len(frame)
            pkts[i].cap = len(frame) + room
            pkts[i].flags = flags
            pkts[i].gso_size = gso_size
        lib.hp_process(self._e, in_port, pkts, n, now_ns)
        return [OffloadResult(Result(VERDICTS[p.verdict], p.out_port,
                                     bytes(ffi.buffer(p.data, p.len)), DROP_REASONS[p.drop_reason]),
                              bool(p.flags & lib.HP_PKT_CSUM_PARTIAL), p.gso_size)
                for p in (pkts[i] for i in range(n))]

    def simulate(self, frame: bytes, in_port: int, now_ns: int = 0,
                 csum_partial: bool = False, room: int = ROOM) -> Result:
        """One packet through the real C code: (verdict, out_port, out_frame, drop_reason)."""
        return self.process(in_port, [frame], now_ns, csum_partial, room)[0]

    def trace(self, in_port: int, frame: bytes | None = None, *, proto: str | int = "tcp",
              src: str = "0.0.0.0", sport: int = 0, dst: str = "0.0.0.0", dport: int = 0,
              flags: str | int = "S", size: int = 0) -> EngineTrace:
        """The engine's dry run (native/hp_trace.c): what process() would do with `frame`
        arriving on `in_port` — or, without a frame, with a packet built from the 5-tuple
        (TCP `flags`, `size` bytes of IPv4; an ICMP echo's identifier is `sport`) — by
        the same decisions, changing nothing: no flow, no port, no counter, no clock."""
        out = ffi.new("struct hp_trace_result *")
        if frame is not None:
            rc = lib.hp_trace(self._e, in_port, bytes(frame), len(frame), out)
        else:
            p = _proto(proto)
            rc = lib.hp_trace_tuple(self._e, in_port, p, ip_to_int(src), sport, ip_to_int(dst),
                                    dport, tcp_flags(flags) if p == 6 else 0, size, out)
        if rc != 0:
            raise EngineError(ffi.string(out.error).decode())
        return EngineTrace._from_c(out)

    # -- benchmark drivers (native/hp_bench.c: the loop runs in C) -----------------------

    def bench_established(self, in_port: int, frame: bytes, n_flows: int, batch: int,
                          packets: int, now_ns: int = 0) -> int:
        """Sends `packets` copies of `frame`, spread over `n_flows` source ports/addresses,
        in batches; returns how many were forwarded."""
        return lib.hp_bench_established(self._e, in_port, frame, len(frame), n_flows, batch,
                                        packets, now_ns)

    def bench_new_flows(self, in_port: int, frame: bytes, first_flow: int, batch: int,
                        flows: int, now_ns: int = 0) -> int:
        """Sends one copy of `frame` for each of `flows` new flows; returns how many were
        forwarded."""
        return lib.hp_bench_new_flows(self._e, in_port, frame, len(frame), first_flow, batch,
                                      flows, now_ns)

    # -- state ----------------------------------------------------------------------------

    def expire(self, now_ns: int, max_scan: int | None = None) -> int:
        """Ages up to `max_scan` flow slots (all by default); returns how many expired."""
        return lib.hp_expire(self._e, now_ns, self.capacity if max_scan is None else max_scan)

    @property
    def capacity(self) -> int:
        return self.config["flow_capacity"]

    @property
    def flow_count(self) -> int:
        return lib.hp_flow_count(self._e)

    @property
    def half_open_count(self) -> int:
        """TCP flows whose handshake is not complete: what a new flow evicts, oldest
        first, when its SNAT pool or the flow table is full."""
        return lib.hp_flow_half_open_count(self._e)

    def flows(self) -> list[FlowInfo]:
        out = ffi.new("struct hp_flow_info[]", 256)
        cursor = ffi.new("uint32_t *", 0)
        result: list[FlowInfo] = []
        while True:
            n = lib.hp_flow_dump(self._e, cursor, out, 256)
            result += [FlowInfo._from_c(out[i]) for i in range(n)]
            if n < 256:
                return result

    def expired(self) -> list[FlowInfo]:
        """Flows removed for idleness since the last call (the engine keeps the last
        `expired_ring` of them, 1,024 by default; expired_lost counts the others)."""
        out = ffi.new("struct hp_flow_info[]", 256)
        result: list[FlowInfo] = []
        while n := lib.hp_expired_read(self._e, out, 256):
            result += [FlowInfo._from_c(out[i]) for i in range(n)]
        return result

    @property
    def expired_lost(self) -> int:
        """Expired flows whose report was overwritten before it was read."""
        return lib.hp_expired_lost(self._e)

    def counters(self, port: int) -> dict[str, int]:
        return {name: lib.hp_port_counter(self._e, port, i) for i, name in enumerate(COUNTERS)}

    def drops(self, port: int) -> dict[str, int]:
        """Every drop reason's count on a port ('none' excluded)."""
        return {name: lib.hp_port_drop(self._e, port, i)
                for i, name in enumerate(DROP_REASONS) if i}

    def keep_flows_in(self, path: str, remap: Mapping[int, int],
                      svc_generation: int | None) -> dict:
        """Moves the flow table's slots into the file `path`, taking over the flows a
        previous forwarder left there (native/hp_flow_state.c): `remap` is {its service
        id: this engine's id}, recorded at service generation `svc_generation` (None: no
        record, start afresh). Returns what happened: resumed, dropped, generation, fresh,
        reason."""
        n = max(remap, default=-1) + 1
        table = ffi.new("int32_t[]", max(n, 1))
        for i in range(n):
            table[i] = remap.get(i, -1)
        out = ffi.new("struct hp_flow_state_report *")
        self._check(lib.hp_flow_state_attach(
            self._e, os.fsencode(path), table if svc_generation is not None else ffi.NULL, n,
            svc_generation or 0, out))
        return {"path": path, "resumed": out.resumed, "dropped": out.dropped,
                "generation": out.generation, "fresh": bool(out.fresh),
                "reason": ffi.string(out.reason).decode() or None}

    @property
    def service_generation(self) -> int:
        """Bumped by every service added or removed (the flow-state file keeps it)."""
        return lib.hp_engine_service_generation(self._e)

    @property
    def memory_bytes(self) -> int:
        return lib.hp_engine_memory(self._e)

    @property
    def flow_bytes_per_flow(self) -> int:
        return lib.hp_flow_bytes_per_flow(self._e)

    # -- the tap (native/hp_tap.c): frames as they arrived and as they left -------------

    def tap_enable(self, port: int | None = None, stage: str = "both", ring: int = 0,
                   snaplen: int = 0) -> None:
        """Turns the engine's tap on: frames arriving on or leaving by `port` (None: every
        port), at `stage` ('in', 'out' or 'both'), kept in a ring of `ring` records (a power of
        two; 0: 4,096) of `snaplen` bytes each (0: 2,048) until tap_read() takes them."""
        if stage not in TAP_STAGES:
            raise EngineError(f"tap stage must be one of {', '.join(TAP_STAGES)}, not {stage!r}")
        cfg = ffi.new("struct hp_tap_config *", {
            "ring": ring, "snaplen": snaplen, "stages": TAP_STAGES[stage],
            "port": lib.HP_TAP_ALL_PORTS if port is None else port})
        self._check(lib.hp_tap_enable(self._e, cfg))

    def tap_disable(self) -> None:
        """Turns the tap off and frees its ring (records not read are lost)."""
        self._check(lib.hp_tap_disable(self._e))

    def tap_read(self, max_records: int = 1024) -> list[TapRecord]:
        """Takes up to `max_records` of the oldest records out of the tap's ring."""
        stats = self.tap_stats()
        if not stats["enabled"] or not stats["pending"]:
            return []
        n = min(max_records, stats["pending"])
        out = ffi.new("struct hp_tap_record[]", n)
        cap = n * stats["snaplen"]
        data = ffi.new("uint8_t[]", cap)
        got = lib.hp_tap_read(self._e, out, data, cap, n)
        buf = ffi.buffer(data, cap)
        return [TapRecord(r.ts_ns, TAP_STAGE_NAMES[r.stage], r.port, VERDICTS[r.verdict],
                          DROP_REASONS[r.drop_reason], r.orig_len,
                          bytes(buf[r.data_offset:r.data_offset + r.cap_len]))
                for r in (out[i] for i in range(got))]

    def tap_stats(self) -> dict[str, int | bool]:
        """enabled, pending (records not read), ring, snaplen, kept and dropped (records not
        kept because the ring was full) since the tap was turned on."""
        out = ffi.new("struct hp_tap_stats *")
        lib.hp_tap_stats(self._e, out)
        return {"enabled": bool(out.enabled), "pending": out.pending, "ring": out.ring,
                "snaplen": out.snaplen, "kept": out.kept, "dropped": out.dropped}


def build_info() -> str:
    """How the engine was compiled: 'release', or 'asan,ubsan' under `make sanitize`."""
    return ffi.string(lib.hp_build_info()).decode()


# -- taps inside the Hyperplane (native/hp_tap.c) -------------------------------------------

TAP_STAGES = {"in": lib.HP_TAP_IN, "out": lib.HP_TAP_OUT,
              "both": lib.HP_TAP_IN | lib.HP_TAP_OUT}
TAP_STAGE_NAMES = {lib.HP_TAP_IN: "in", lib.HP_TAP_OUT: "out"}


@dataclass(frozen=True)
class TapRecord:
    """One frame as the engine saw it arrive (stage 'in') or sent it after translation
    ('out'), on `port` (where it arrived, or where it leaves), with the frame's verdict
    and drop reason ('none' unless dropped, or answered by a RST). `frame` is its first
    snaplen bytes; `orig_len` its whole length; `ts_ns` the engine's time of its batch."""
    ts_ns: int
    stage: str
    port: int
    verdict: str
    drop_reason: str
    orig_len: int
    frame: bytes


def flows_raw_page(engine: Engine, cursor: int, since_ns: int = 0,
                   max_flows: int = 4096) -> tuple[bytes, int]:
    """Up to `max_flows` flows last seen at or after `since_ns` (to the second; 0: every
    flow) from slot `cursor` on, as the engine's own `struct hp_flow_info` records, and
    the cursor to go on from (0 once the table has been read to its end). A dump in
    pages, each one C call, so that a caller holding the forwarder's loop for each page
    holds it briefly, and in bytes, so that the forwarder spends no Python on each flow:
    `flows_from_raw` reads them where they are used (VPC Flow Logs' collector)."""
    out = ffi.new("struct hp_flow_info[]", max_flows)
    at = ffi.new("uint32_t *", cursor)
    n = lib.hp_flow_dump_since(engine._e, at, since_ns, out, max_flows)
    data = bytes(ffi.buffer(out, n * ffi.sizeof("struct hp_flow_info")))
    return data, (at[0] if n == max_flows else 0)


def flows_from_raw(data: bytes) -> list[FlowInfo]:
    """The flows of `flows_raw_page`'s bytes (of an engine built from the same header)."""
    n = len(data) // ffi.sizeof("struct hp_flow_info")
    records = ffi.from_buffer("struct hp_flow_info[]", data)
    return [FlowInfo._from_c(records[i]) for i in range(n)]
