"""Flow log records: what one ENI saw in one aggregation interval, in AWS's words.

Pure: no kernel, no clock, no files. The collector (collector.py) turns what the kernel
and the forwarder counted into `Observation`s — packets and bytes one ENI sent or
received for one 5-tuple, accepted or rejected — and hands them to a `Window`, one per
flow log; when the window's interval ends, `Window.records()` gives the records, one per
(ENI, direction, 5-tuple, action), a `NODATA` record for a covered ENI that saw nothing
and a `SKIPDATA` record for one where something could not be attributed to a 5-tuple
(the engine's security-group drops, expired flows the engine could not keep).

Records are one direction each, as on AWS: a TCP connection between two instances is
four records, an egress and an ingress one on each ENI. The addresses follow AWS's
definitions (VPC guide, flow log records):

* `srcaddr` — the source of incoming traffic, or the ENI's own address for outgoing;
* `dstaddr` — the destination of outgoing traffic, or the ENI's own address for incoming;
* `pkt-srcaddr`, `pkt-dstaddr` — the packet's own header, always.

They differ where an ENI forwards others' packets (an instance with
`source_dest_check: false`): its records show itself in `srcaddr`/`dstaddr` and the
hosts behind it in `pkt-*`.

`tcp-flags` is AWS's OR of the flags seen (FIN 1, SYN 2, RST 4, SYN-ACK 18), derived
from what the trackers know — a flow that began in the interval had its SYN (SYN-ACK on
the answering side once answered), one closing had FIN, one reset had RST — not from
every packet, which neither conntrack nor the engine keeps.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from dataplane.model.flow_logs import DEFAULT_FIELDS, format_version, parse_format

ACCEPT, REJECT = "ACCEPT", "REJECT"
OK, NODATA, SKIPDATA = "OK", "NODATA", "SKIPDATA"
INGRESS, EGRESS = "ingress", "egress"
FIN, SYN, RST, SYN_ACK = 1, 2, 4, 18
ETH_HEADER = 14         # the engine counts frames; a record counts IP bytes


@dataclass(frozen=True)
class Eni:
    """One ENI as its records name it."""
    eni_id: str
    address: str
    vpc: str
    vpc_id: str
    vpc_cidr: str
    subnet_id: str
    instance_id: str       # "-" for a Hyperplane ENI (requester-managed)
    account_id: str
    region: str
    az_id: str


@dataclass(frozen=True)
class Observation:
    """Packets one ENI sent (egress) or received (ingress), the packets' own header."""
    eni_id: str
    direction: str
    src: str
    dst: str
    sport: int
    dport: int
    protocol: int
    action: str
    packets: int
    bytes: int
    tcp_flags: int = 0


@dataclass
class _Sum:
    packets: int = 0
    bytes: int = 0
    tcp_flags: int = 0


@dataclass
class Window:
    """One flow log's current aggregation interval [start, start + interval)."""
    fields: tuple[str, ...]
    enis: dict[str, Eni]                 # the ENIs this flow log covers
    start: int
    interval: int
    sums: dict[tuple, _Sum] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, format: str, enis: dict[str, Eni], now: float, interval: int) -> "Window":
        return cls(parse_format(format), enis, aligned(now, interval), interval)

    @property
    def end(self) -> int:
        return self.start + self.interval

    def add(self, o: Observation) -> None:
        if o.eni_id not in self.enis or (o.packets == 0 and o.tcp_flags == 0):
            return
        key = (o.eni_id, o.direction, o.src, o.dst, o.sport, o.dport, o.protocol, o.action)
        s = self.sums.setdefault(key, _Sum())
        s.packets += o.packets
        s.bytes += o.bytes
        s.tcp_flags |= o.tcp_flags

    def skip(self, eni_id: str) -> None:
        if eni_id in self.enis:
            self.skipped.add(eni_id)

    def records(self) -> dict[str, list[str]]:
        """{ENI ID: record lines} of this interval, every covered ENI with at least one."""
        version = str(format_version(self.fields))
        out: dict[str, list[str]] = {e: [] for e in self.enis}
        for key in sorted(self.sums, key=_order):
            eni_id, direction, src, dst, sport, dport, proto, action = key
            s = self.sums[key]
            values = traffic_values(self.enis[eni_id], direction, src, dst, sport, dport,
                                    proto, action, s.packets, s.bytes, s.tcp_flags)
            out[eni_id].append(line(self.fields, {**values, **self._common(eni_id, version)}))
        for eni_id, lines in out.items():
            status = SKIPDATA if eni_id in self.skipped else (NODATA if not lines else None)
            if status:
                lines.append(line(self.fields, {**self._common(eni_id, version),
                                                "log-status": status}))
        return out

    def _common(self, eni_id: str, version: str) -> dict[str, str]:
        e = self.enis[eni_id]
        return {"version": version, "account-id": e.account_id, "interface-id": e.eni_id,
                "start": str(self.start), "end": str(self.end), "vpc-id": e.vpc_id,
                "subnet-id": e.subnet_id, "instance-id": e.instance_id,
                "region": e.region, "az-id": e.az_id}


def _order(key: tuple) -> tuple:
    eni_id, direction, src, dst, sport, dport, proto, action = key
    return (eni_id, ipaddress.IPv4Address(src), ipaddress.IPv4Address(dst), sport, dport,
            proto, direction, action)


def aligned(now: float, interval: int) -> int:
    """The start of the interval that holds `now` (intervals begin at multiples of it)."""
    return int(now) // interval * interval


def traffic_values(eni: Eni, direction: str, src: str, dst: str, sport: int, dport: int,
                   proto: int, action: str, packets: int, nbytes: int,
                   tcp_flags: int) -> dict[str, str]:
    """A record's traffic fields (module docstring: srcaddr/dstaddr against pkt-*)."""
    outgoing = direction == EGRESS
    same_vpc = ipaddress.IPv4Address(dst) in ipaddress.IPv4Network(eni.vpc_cidr)
    return {"srcaddr": eni.address if outgoing else src,
            "dstaddr": dst if outgoing else eni.address,
            "srcport": str(sport), "dstport": str(dport), "protocol": str(proto),
            "packets": str(packets), "bytes": str(nbytes), "action": action,
            "log-status": OK, "tcp-flags": str(tcp_flags if proto == 6 else 0),
            "type": "IPv4", "pkt-srcaddr": src, "pkt-dstaddr": dst,
            "flow-direction": direction,
            # AWS's traffic-path 1: through another resource in the same VPC (egress only)
            "traffic-path": "1" if outgoing and same_vpc else "-"}


def line(fields: tuple[str, ...], values: dict[str, str]) -> str:
    """One record: the format's fields in order, "-" where a field has no value."""
    return " ".join(values.get(f, "-") for f in fields)


def parse_line(fields: tuple[str, ...], text: str) -> dict[str, str]:
    """A record line back into {field: value} (for `vpclab flowlogs --json` and tests)."""
    parts = text.split(" ")
    if len(parts) != len(fields):
        raise ValueError(f"a record of this format has {len(fields)} fields, not "
                         f"{len(parts)}: {text!r}")
    return dict(zip(fields, parts))


def tcp_flags(new: bool, answered: bool, closing: bool, reset: bool,
              answering_side: bool) -> int:
    """The flags one direction of a TCP flow showed in an interval, from its tracker's
    state (module docstring): SYN from the opener (SYN-ACK from the answerer, once it
    answered) in the interval the flow began, FIN once closing, RST once reset."""
    flags = 0
    if new:
        flags |= (SYN_ACK if answered else 0) if answering_side else SYN
    if closing:
        flags |= FIN
    if reset:
        flags |= RST
    return flags


__all__ = ["Eni", "Observation", "Window", "aligned", "line", "parse_line", "tcp_flags",
           "traffic_values", "DEFAULT_FIELDS", "ACCEPT", "REJECT", "INGRESS", "EGRESS"]
