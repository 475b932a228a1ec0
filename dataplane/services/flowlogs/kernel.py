"""What the kernel counts for instance ENIs: accepted flows from conntrack, refused
packets from NFLOG, both read inside a VPC router's namespace.

Why conntrack for what was accepted. Every packet between ENIs crosses the VPC router's
namespace, whose security groups are stateful nftables rules, so every accepted flow
already has a conntrack entry there, keyed by its 5-tuple, with per-direction packet
and byte counters once `net.netfilter.nf_conntrack_acct` is on (set by the collector in
the lab's VPC namespaces only — it is per namespace — never in the root one). Reading
them costs the data path nothing more: no rule per packet, no copy to userspace (NFLOG
of every packet would be a copy per packet), and no per-flow nftables set to grow and
expire (nftables counters know rules, not 5-tuples). The collector dumps the table
every poll (a second, or less for test intervals) and keeps the counts it last saw per
entry, so a flow's packets are reported per interval as deltas; an entry outlives its
last packet (TCP: 10 s after a RST, 120 s in TIME_WAIT; UDP and ICMP: 30 s), so a poll
a second sees its last counts before it goes. A flow that began before accounting was
on has no counters and is not reported.

Why NFLOG for what was refused. A refused packet never gets a confirmed conntrack
entry, so conntrack cannot see it; the security groups' drop statements log each such
packet to NFLOG group `nft.REJECT_LOG_GROUP` with a prefix naming the chain's direction
and ENI (netns_setup/nft.py), and `RejectLog` reads the packets' headers (80 bytes
copied, not the payload) from a netlink socket bound to that group in the namespace.
Refused packets are rare next to accepted ones, so a copy each is cheap.

Netlink is spoken through pyroute2 for conntrack; its NFLOG is not in pyroute2, so
`RejectLog` speaks the few messages it needs (bind, copy mode, packets) itself.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from netns_setup import nft
from netns_setup.nsenter import NetnsSockets, in_netns_thread

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET, NFULNL_MSG_CONFIG = 0, 1
NFULA_CFG_CMD, NFULA_CFG_MODE, NFULA_CFG_TIMEOUT, NFULA_CFG_QTHRESH = 1, 2, 4, 5
NFULNL_CFG_CMD_BIND, NFULNL_COPY_PACKET = 1, 2
NFULA_PAYLOAD, NFULA_PREFIX = 9, 10
NLM_F_REQUEST, NLM_F_ACK = 1, 4
COPY_BYTES = 80                  # an IPv4 header with options, and the ports
IPS_SEEN_REPLY = 1 << 1
# conntrack's TCP states (nf_conntrack_tcp.h): FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT
# follow a FIN; CLOSE follows a RST.
TCP_CLOSING_STATES = {4, 5, 6, 7}
TCP_CLOSE = 8
ACCT_SYSCTL = "net.netfilter.nf_conntrack_acct"


@dataclass(frozen=True)
class Tracked:
    """One conntrack entry: its identity, its original direction's 5-tuple, counters
    each way (None without accounting) and what its TCP state says."""
    key: tuple
    src: str
    dst: str
    sport: int
    dport: int
    protocol: int
    counts: tuple[int, int, int, int] | None    # orig packets, bytes, reply packets, bytes
    answered: bool
    closing: bool
    reset: bool


def _tuple(t) -> tuple[str, str, int, int, int]:
    ip, proto = t.get_attr("CTA_TUPLE_IP"), t.get_attr("CTA_TUPLE_PROTO")
    num = proto.get_attr("CTA_PROTO_NUM")
    if num == socket.IPPROTO_ICMP:
        ports = (0, 0)           # AWS shows ICMP with ports 0
    else:
        ports = (proto.get_attr("CTA_PROTO_SRC_PORT") or 0, proto.get_attr("CTA_PROTO_DST_PORT") or 0)
    return ip.get_attr("CTA_IP_V4_SRC"), ip.get_attr("CTA_IP_V4_DST"), ports[0], ports[1], num


def _entry(m) -> Tracked | None:
    orig = m.get_attr("CTA_TUPLE_ORIG")
    if orig is None or orig.get_attr("CTA_TUPLE_IP").get_attr("CTA_IP_V4_SRC") is None:
        return None
    src, dst, sport, dport, proto = _tuple(orig)
    co, cr = m.get_attr("CTA_COUNTERS_ORIG"), m.get_attr("CTA_COUNTERS_REPLY")
    counts = None
    if co is not None and cr is not None:
        counts = (co.get_attr("CTA_COUNTERS_PACKETS") or 0, co.get_attr("CTA_COUNTERS_BYTES") or 0,
                  cr.get_attr("CTA_COUNTERS_PACKETS") or 0, cr.get_attr("CTA_COUNTERS_BYTES") or 0)
    state = None
    info = m.get_attr("CTA_PROTOINFO")
    if proto == socket.IPPROTO_TCP and info is not None:
        tcp = info.get_attr("CTA_PROTOINFO_TCP")
        state = tcp.get_attr("CTA_PROTOINFO_TCP_STATE") if tcp is not None else None
    status = m.get_attr("CTA_STATUS") or 0
    return Tracked((m.get_attr("CTA_ID"), src, dst, sport, dport, proto), src, dst, sport,
                   dport, proto, counts, bool(status & IPS_SEEN_REPLY),
                   state in TCP_CLOSING_STATES, state == TCP_CLOSE)


def conntrack(netns: str) -> list[Tracked]:
    """Every IPv4 conntrack entry of namespace `netns` (pyroute2 opens its netlink
    socket where it runs, so the dump runs in a thread inside the namespace)."""
    def dump() -> list[Tracked]:
        from pyroute2 import Conntrack
        ct = Conntrack()
        try:
            return [e for m in ct.dump() if (e := _entry(m)) is not None]
        finally:
            ct.close()
    return in_netns_thread(netns, dump)


def enable_accounting(netns: str) -> None:
    """Per-flow counters in `netns`'s conntrack (a per-namespace sysctl)."""
    def write() -> None:
        with open("/proc/sys/" + ACCT_SYSCTL.replace(".", "/"), "w") as f:
            f.write("1")
    in_netns_thread(netns, write)


@dataclass(frozen=True)
class Refused:
    """One packet a security group refused: the chain's direction and ENI interface,
    and the packet's 5-tuple and length."""
    direction: str
    ifname: str
    src: str
    dst: str
    sport: int
    dport: int
    protocol: int
    length: int
    tcp_flags: int = 0          # AWS's: FIN 1, SYN 2, RST 4, SYN-ACK 18


def _nlmsg(msg_type: int, flags: int, group: int, attrs: bytes) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(group)) + attrs
    return struct.pack("=IHHII", 16 + len(body), msg_type, flags, 0, 0) + body


def _attr(kind: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


def _attrs(data: bytes) -> dict[int, bytes]:
    out, i = {}, 0
    while i + 4 <= len(data):
        n, kind = struct.unpack_from("=HH", data, i)
        if n < 4:
            break
        out[kind & 0x7FFF] = data[i + 4:i + n]
        i += (n + 3) & ~3
    return out


def parse_refused(prefix: bytes, payload: bytes) -> Refused | None:
    """A logged packet as a `Refused`, or None if it is not a security group's (another
    prefix) or not IPv4."""
    text = prefix.rstrip(b"\0").decode("ascii", "replace")
    if not text.startswith(nft.REJECT_LOG_PREFIX) or len(payload) < 20 or payload[0] >> 4 != 4:
        return None
    direction, _, ifname = text[len(nft.REJECT_LOG_PREFIX):].partition(" ")
    ihl = (payload[0] & 0x0F) * 4
    length, proto = struct.unpack_from("!H", payload, 2)[0], payload[9]
    src, dst = socket.inet_ntoa(payload[12:16]), socket.inet_ntoa(payload[16:20])
    sport = dport = flags = 0
    if proto in (socket.IPPROTO_TCP, socket.IPPROTO_UDP) and len(payload) >= ihl + 4:
        sport, dport = struct.unpack_from("!HH", payload, ihl)
    if proto == socket.IPPROTO_TCP and len(payload) >= ihl + 14:
        bits = payload[ihl + 13]
        flags = bits & 0x07 | (0x10 if bits & 0x12 == 0x12 else 0)   # FIN SYN RST, SYN-ACK
    return Refused(direction, ifname, src, dst, sport, dport, proto, length, flags)


class RejectLog:
    """The refused packets of one VPC namespace: a netlink socket bound to NFLOG group
    `nft.REJECT_LOG_GROUP` there, read without blocking."""

    def __init__(self, netns: str):
        with NetnsSockets(netns) as ns:
            self.sock = ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.sock.bind((0, 0))
        config = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
        group = nft.REJECT_LOG_GROUP
        for attrs in (_attr(NFULA_CFG_CMD, struct.pack("=B", NFULNL_CFG_CMD_BIND)),
                      _attr(NFULA_CFG_MODE, struct.pack("!IBx", COPY_BYTES, NFULNL_COPY_PACKET)),
                      _attr(NFULA_CFG_QTHRESH, struct.pack("!I", 1)),
                      _attr(NFULA_CFG_TIMEOUT, struct.pack("!I", 1))):
            self.sock.send(_nlmsg(config, NLM_F_REQUEST | NLM_F_ACK, group, attrs))
            self._ack()
        self.sock.setblocking(False)
        self.overruns = 0

    def _ack(self) -> None:
        data = self.sock.recv(4096)
        _, msg_type, _, _, _ = struct.unpack_from("=IHHII", data)
        if msg_type == 2:        # NLMSG_ERROR
            err = struct.unpack_from("=i", data, 16)[0]
            if err:
                raise OSError(-err, f"NFLOG group {nft.REJECT_LOG_GROUP}: bind refused")

    def read(self) -> list[Refused]:
        """Every refused packet logged since the last call."""
        out: list[Refused] = []
        packet = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return out
            except OSError:          # ENOBUFS: the kernel dropped some; counted
                self.overruns += 1
                continue
            i = 0
            while i + 16 <= len(data):
                n, msg_type = struct.unpack_from("=IH", data, i)
                if n < 16:
                    break
                if msg_type == packet:
                    attrs = _attrs(data[i + 20:i + n])
                    r = parse_refused(attrs.get(NFULA_PREFIX, b""), attrs.get(NFULA_PAYLOAD, b""))
                    if r is not None:
                        out.append(r)
                i += (n + 3) & ~3

    def close(self) -> None:
        self.sock.close()
