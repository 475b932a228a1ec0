"""Text tables of what the forwarder reports over its control socket, for `vpclab flows`
and `vpclab stats`.

Flows read like `conntrack -L`, one line per flow, the translation spelled out:

    ENI            PROTO  CLIENT              ENDPOINT        ⇒ NLB                 TARGET           STATE        IDLE  PKTS →/←   BYTES →/←
    eni-0a1b2c3d   tcp    10.0.1.10:43512     10.0.1.50:80    ⇒ 10.0.1.100:17823    10.0.1.20:8080   ESTABLISHED  3s    12/10      1.2K/8.9K

A listener whose target group has PROXY protocol v2 shifts its flows' sequence numbers
toward the target by the header it put in front of the client's first bytes; when any
flow shown has one, a PROXY column gives each flow's shift (`+100`; `-`: none).

and a VPC link's flows (VPC-to-VPC NAT: the destination is kept) in a table of their own:

    VPC LINK                   PROTO  SOURCE             ⇒ LINK ENI            DESTINATION      STATE        IDLE  PKTS →/←   BYTES →/←
    vpclink-0a1b2c3d4e5f6a7b8  tcp    169.254.0.2:40112  ⇒ 10.0.1.5:1024       10.0.1.4:8080    ESTABLISHED  0s    6/4        420/380

Stats list each ENI's counters, then every drop reason that is not zero (or, asked,
every one there is) with its meaning, so a drop is never a bare number.
"""
from __future__ import annotations

from typing import Iterable

from dataplane.forwarder.engine import DROP_REASON_TEXT


def _addr(pair) -> str:
    return f"{pair[0]}:{pair[1]}" if pair[1] else str(pair[0])


def human(n: int) -> str:
    """1234567 → '1.2M': short enough for a table column."""
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _table(header: list[str], rows: Iterable[list[str]]) -> str:
    rows = [header, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def _counts(f: dict) -> list[str]:
    return [f["tcp_state"], f"{f['idle_s']}s", f"{f['packets'][0]}/{f['packets'][1]}",
            f"{human(f['bytes'][0])}/{human(f['bytes'][1])}"]


def format_flows(flows: list[dict]) -> str:
    if not flows:
        return "no flows"
    tail = ["STATE", "IDLE", "PKTS →/←", "BYTES →/←"]
    links = [f for f in flows if f.get("kind") == "vpc_nat"]
    listeners = [f for f in flows if f.get("kind") != "vpc_nat"]
    tables = []
    if listeners:
        proxy = any(f.get("proxy_offset") for f in listeners)
        tables.append(_table(
            ["ENI", "PROTO", "CLIENT", "ENDPOINT", "⇒ NLB", "TARGET",
             *(["PROXY"] if proxy else []), *tail],
            [[f["in_port_name"], f["protocol"], _addr(f["client"]), _addr(f["vip"]),
              "⇒ " + _addr(f["snat"]), _addr(f["backend"]),
              *([f"+{f['proxy_offset']}" if f.get("proxy_offset") else "-"] if proxy else []),
              *_counts(f)]
             for f in sorted(listeners, key=lambda f: (f["in_port_name"], f["client"]))]))
    if links:
        tables.append(_table(
            ["VPC LINK", "PROTO", "SOURCE", "⇒ LINK ENI", "DESTINATION", *tail],
            [[f["service_name"], f["protocol"], _addr(f["client"]), "⇒ " + _addr(f["snat"]),
              _addr(f["backend"]), *_counts(f)]
             for f in sorted(links, key=lambda f: (f["service_name"], f["client"]))]))
    return "\n\n".join(tables) + f"\n{len(flows)} flow(s)"


def format_stats(stats: dict, every_reason: bool = False) -> str:
    """Counters per ENI, then the drop reasons: the non-zero ones, or with
    `every_reason` all of them (zeros included), each with its meaning."""
    lines = [f"flows {stats['flows']} of {stats['capacity']}"
             + (f" ({stats['half_open']} half-open)" if "half_open" in stats else "")
             + f", engine memory {human(stats['memory_bytes'])}B"
             + (f", loop {stats['loop']}" if stats.get("loop") else "")]
    shown = ["rx_packets", "tx_packets", "dropped", "flows_created", "flows_expired",
             "evicted_port_pool", "evicted_table_full", "arp_replies", "tcp_rst_sent", "mss_clamped"]
    rows = [[name] + [str(port["counters"].get(k, 0)) for k in shown]
            for name, port in stats["ports"].items()]
    lines.append(_table(["ENI"] + [k.replace("_", " ") for k in shown], rows))
    # The rings: what arrived as GSO frames or with partial checksums, and what was lost
    # outside the engine (its drop reasons never see these).
    io_shown = [("gso_frames", "rx_gso_frames", "io"), ("csum partial", "rx_csum_partial", "io"),
                ("kept partial", "csum_kept_partial", "counters"),
                ("completed", "csum_completed", "counters"),
                ("rx ring drops", "rx_ring_drops", "io"), ("rx truncated", "rx_truncated", "io"),
                ("tx ring full", "tx_ring_full", "io")]
    lines.append("")
    lines.append(_table(["ENI"] + [title.replace("_", " ") for title, _, _ in io_shown],
                        [[name] + [str(port[where].get(key, "-")) for _, key, where in io_shown]
                         for name, port in stats["ports"].items()]))
    reasons = list(DROP_REASON_TEXT)[1:] if every_reason else None
    drops = [(name, reason, port["drops"].get(reason, 0)) for name, port in stats["ports"].items()
             for reason in (reasons or sorted(port["drops"]))]
    if drops:
        lines.append("")
        lines.append(_table(["ENI", "DROPPED", "REASON", "MEANING"],
                            [[name, str(n), reason, DROP_REASON_TEXT.get(reason, "")]
                             for name, reason, n in drops]))
    return "\n".join(lines)
