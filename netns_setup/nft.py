"""Security groups as stateful nftables rules in a VPC namespace.

pyroute2 has no usable nftables support, so this module writes an nft ruleset as text
and loads it with `nft -f -` run inside the namespace (one atomic transaction: the
whole table appears at once or not at all). It is the one place vpclab shells out for
kernel configuration.

One table per VPC namespace, `table inet <lab>`. Groups become address sets (the
private IPs of the ENIs that carry them, for `sg:` references); each instance ENI gets
an egress chain (packets *arriving* from the instance on `eni-<id>`) and an ingress
chain (packets *leaving* towards it). The forward hook, on the router side of every
instance veth:

    ct state established,related accept      ← stateful: replies always pass
    ct state invalid drop
    iifname vmap { eni-…: jump egress_… }     ← rules end in `return`, else log and drop
    oifname vmap { eni-…: jump ingress_… }    ← rules end in `accept`, else log and drop
    accept                                    ← anything not to/from an instance ENI

A refused packet is dropped in silence (no RST, no ICMP), as on AWS; a copy of its
headers goes to NFLOG group 27 of the namespace for VPC Flow Logs' REJECT records. Traffic to the
VPC's own addresses (the router, DNS at base+2) goes through `input`, which has no
rules: DNS to the Route 53 Resolver ignores security groups on AWS too.

The same table holds AWS's source/destination check of each instance ENI whose
`source_dest_check` is on (EC2's default). Two more hooks, each a vmap to one chain
per ENI that lets the ENI's own address through and counts and drops the rest:

    prerouting, priority raw (before conntrack): iifname "eni-…" → ip saddr must be its address
    postrouting:                                 oifname "eni-…" → ip daddr must be its address

The source check sits before conntrack and before routing, so a spoofed packet costs
no conntrack entry, reaches neither the router's own addresses nor the Hyperplane,
and is counted where it entered. Each ENI has two named counters,
`source_<eni>` and `destination_<eni>` (packets and bytes dropped; `counters()`
reads them). An nftables rule was chosen over the kernel's reverse-path filter
(rp_filter) because rp_filter counts its drops in one namespace-wide number
(IPReversePathFilter), not per ENI; it checks sources only, never the destination of
a packet delivered to an instance; and its verdict depends on the routes, which
vpclab will grow (route tables that point at an instance), while this check says
exactly what AWS's does: an ENI sends and receives for its own address only.

Input, as plain data (this layer knows nothing of the model):

    groups = {"web-sg": ["10.0.1.4", "10.0.2.50"], ...}
    enis   = [{"ifname": "eni-web1", "address": "10.0.1.4", "source_dest_check": True,
               "ingress": [{"protocol": "tcp", "ports": (8080, 8080),
                            "peer": "10.0.0.0/16"}, {..., "peer": "sg:admin-sg"}],
               "egress":  [{"protocol": "all", "ports": None, "peer": "0.0.0.0/0"}]}]
"""
from __future__ import annotations

import json
import subprocess
from typing import Any, Iterable

from .nsenter import in_netns_thread

# NFLOG group and prefix of the packets security groups refuse (`reject_log`).
REJECT_LOG_GROUP = 27
REJECT_LOG_PREFIX = "vpclab-sg "

CONNTRACK_SYSCTLS = {
    # AWS security-group tracking timeouts (EC2 ConnectionTrackingSpecification
    # defaults); a new namespace starts with Linux's, which differ for UDP streams.
    "net.netfilter.nf_conntrack_tcp_timeout_established": 432000,
    "net.netfilter.nf_conntrack_udp_timeout": 30,
    "net.netfilter.nf_conntrack_udp_timeout_stream": 180,
    "net.netfilter.nf_conntrack_generic_timeout": 600,
}


def _chain_name(direction: str, ifname: str) -> str:
    return f"{direction}_{ifname.replace('-', '_')}"


def _set_name(group: str) -> str:
    return "sg_" + group.replace("-", "_")


CHECKS = (("source", "prerouting", "raw", "iifname", "saddr"),
          ("destination", "postrouting", "filter", "oifname", "daddr"))


def check_counter(check: str, ifname: str) -> str:
    """The named counter of one ENI's `source` or `destination` check."""
    return f"{check}_{ifname.replace('-', '_')}"


def _source_dest_check(enis: list[dict[str, Any]]) -> list[str]:
    """Counters, hooks and per-ENI chains of the source/destination check."""
    checked = [e for e in enis if e.get("source_dest_check", True)]
    if not checked:
        return []
    out = []
    for e in checked:
        for check, *_ in CHECKS:
            out.append(f"  counter {check_counter(check, e['ifname'])} {{ }}")
    for check, hook, priority, dev_key, addr_key in CHECKS:
        jumps = ", ".join(f'"{e["ifname"]}" : jump {check_counter(check, e["ifname"])}'
                          for e in checked)
        out += [f"  chain {check}_check {{",
                f"    type filter hook {hook} priority {priority}; policy accept;",
                f"    {dev_key} vmap {{ {jumps} }}", "  }"]
        for e in checked:
            name = check_counter(check, e["ifname"])
            out += [f"  chain {name} {{", f"    ip {addr_key} {e['address']} return",
                    f'    counter name "{name}" drop', "  }"]
    return out


def reject_log(direction: str, ifname: str) -> str:
    """The statement before a security group's drop: each refused packet goes to NFLOG
    group REJECT_LOG_GROUP of the VPC namespace, with the chain's direction and ENI as
    its prefix, where VPC Flow Logs' collector reads it (dataplane/services/flowlogs:
    its REJECT records). The kernel drops the copy at once when nobody listens."""
    return f'log prefix "{REJECT_LOG_PREFIX}{direction} {ifname}" group {REJECT_LOG_GROUP}'


def _match(rule: dict[str, Any], direction: str) -> str:
    parts = []
    peer = rule["peer"]
    addr_key = "saddr" if direction == "ingress" else "daddr"
    if peer.startswith("sg:"):
        parts.append(f"ip {addr_key} @{_set_name(peer[3:])}")
    elif peer != "0.0.0.0/0":
        parts.append(f"ip {addr_key} {peer}")
    else:
        parts.append("meta nfproto ipv4")
    proto, ports = rule["protocol"], rule.get("ports")
    if proto in ("tcp", "udp"):
        if ports is None or tuple(ports) == (0, 65535):
            parts.append(f"meta l4proto {proto}")
        else:
            lo, hi = ports
            parts.append(f"{proto} dport {lo}" if lo == hi else f"{proto} dport {lo}-{hi}")
    elif proto == "icmp":
        parts.append("meta l4proto icmp")
    return " ".join(parts)


def render(table: str, groups: dict[str, Iterable[str]], enis: list[dict[str, Any]]) -> str:
    """The nft script that (re)creates `table inet <table>` (see the module docstring)."""
    out = [f"table inet {table}", f"delete table inet {table}", f"table inet {table} {{"]
    for group, members in groups.items():
        out.append(f"  set {_set_name(group)} {{")
        out.append("    type ipv4_addr")
        members = sorted(set(members))
        if members:
            out.append(f"    elements = {{ {', '.join(members)} }}")
        out.append("  }")
    out += ["  chain forward {",
            "    type filter hook forward priority filter; policy accept;",
            "    ct state established,related accept",
            "    ct state invalid drop"]
    if enis:
        eg = ", ".join(f'"{e["ifname"]}" : jump {_chain_name("egress", e["ifname"])}'
                       for e in enis)
        ing = ", ".join(f'"{e["ifname"]}" : jump {_chain_name("ingress", e["ifname"])}'
                        for e in enis)
        out += [f"    iifname vmap {{ {eg} }}", f"    oifname vmap {{ {ing} }}"]
    out += ["    accept", "  }"]
    out += _source_dest_check(enis)
    for e in enis:
        for direction, verdict in (("egress", "return"), ("ingress", "accept")):
            out.append(f"  chain {_chain_name(direction, e['ifname'])} {{")
            for rule in e[direction]:
                out.append(f"    {_match(rule, direction)} {verdict}")
            out.append(f"    {reject_log(direction, e['ifname'])} drop")
            out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def render_ports_capture_only(table: str, ifnames: Iterable[str]) -> str:
    """The nft script that (re)creates `table netdev <table>`, dropping every frame that
    arrives on `ifnames` at the ingress hook. A forwarder's AF_PACKET sockets have their
    copy by then (packet taps run first); without the rule the same frame would go on up
    into the namespace's own IPv4 stack, which has no address to deliver it to and only
    spends about a quarter of the per-frame cost on dropping it (bench/afxdp/README.md)."""
    devices = ", ".join(f'"{name}"' for name in sorted(set(ifnames)))
    if not devices:
        raise ValueError("no forwarder port to drop frames on")
    return "\n".join([
        f"table netdev {table}", f"delete table netdev {table}", f"table netdev {table} {{",
        "  chain ports {",
        f"    type filter hook ingress devices = {{ {devices} }} priority filter; policy drop;",
        "  }", "}", ""])


def _nft(ns: str, *args: str, script: str | None = None) -> str:
    """`nft ARGS` (its input `script`) run inside namespace `ns`; its output. Started
    from a thread that entered the namespace, so the child is born there and Python
    needs no code between fork and exec (it can vfork: netns_setup/nsenter.py)."""
    proc = in_netns_thread(ns, lambda: subprocess.run(
        ["nft", *args], input=script, text=True, capture_output=True, timeout=30))
    if proc.returncode != 0:
        raise RuntimeError(f"nft in namespace {ns}: {proc.stderr.strip()}")
    return proc.stdout


def apply(ns: str, script: str) -> None:
    """Load `script` with `nft -f -` inside namespace `ns` (atomic)."""
    _nft(ns, "-f", "-", script=script)


def counters(ns: str, table: str) -> dict[str, dict[str, int]]:
    """{name: {"packets", "bytes"}} of every named counter of `table inet <table>` in
    namespace `ns` ({} when the table has none)."""
    out = _nft(ns, "-j", "list", "counters", "table", "inet", table)
    return {c["name"]: {"packets": c["packets"], "bytes": c["bytes"]}
            for item in json.loads(out)["nftables"]
            if (c := item.get("counter")) is not None}


def list_tables(ns: str) -> list[str]:
    """`family name` of every nftables table in namespace `ns`."""
    return [line.split(None, 1)[1] for line in _nft(ns, "list", "tables").splitlines()
            if line.startswith("table ")]
