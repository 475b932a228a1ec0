"""Instance security groups as the lab compiles them, evaluated for one packet.

An instance ENI's groups become nftables chains in its VPC namespace
(netns_setup/nft.py): an egress chain for packets arriving from the instance, an
ingress chain for packets leaving toward it, each rule ending in a verdict and the chain
in `drop`. `nft.render()` writes those chains from plain data that lab/plan.py computes
from the model — per ENI {"ingress": [rule…], "egress": [rule…]}, each rule
{"protocol", "ports", "peer"}, and the groups' members for `sg:` peers. This module
evaluates that same data, rule by rule in the chain's order, with nft.py's matching:

* `peer` a CIDR, `0.0.0.0/0` (any IPv4), or `sg:<group>` (the addresses of the ENIs
  carrying the group: instances' and Hyperplane ENIs');
* `protocol` tcp/udp with `ports` (lo, hi) on the destination port, or None (any port);
  icmp (any type); all.

Why evaluate the compiled data rather than ask nft: it is the one input the ruleset is
rendered from (the script is a pure function of it, and nft.py's tests pin that
function), so the answer names the rule as the user wrote it, by group and index, which
an nft trace (rule handles in a chain) would have to be mapped back to; it needs no root,
no packet injected into a live lab and no tracing rules added to its tables, so `trace`
never disturbs the lab it explains and the tree can be built and tested from a model
alone. What it does not see is a ruleset someone changed by hand in the namespace; the
root tests check that trace's verdicts and real connections agree.

Stateful, as nftables' `ct state established,related accept` makes it: only the packet
that opens a connection is checked, so replies are not traced.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class SgMatch:
    """The rule of an ENI's chain that decided: its index in the chain and the rule (as
    plan.py gives it), or index None when no rule matched (the chain's `drop`)."""
    index: int | None
    rule: Mapping[str, Any] | None

    @property
    def allowed(self) -> bool:
        return self.index is not None


def rule_text(rule: Mapping[str, Any], direction: str) -> str:
    """A rule as one line: `tcp 8080 from 10.0.0.0/16`, `all to 0.0.0.0/0`."""
    ports = rule.get("ports")
    proto = rule["protocol"]
    if ports is not None and proto in ("tcp", "udp"):
        lo, hi = ports
        proto += f" {lo}" if lo == hi else f" {lo}-{hi}"
    return f"{proto} {'from' if direction == 'ingress' else 'to'} {rule['peer']}"


def _peer_matches(peer: str, address: str, groups: Mapping[str, Sequence[str]]) -> bool:
    if peer.startswith("sg:"):
        return address in groups.get(peer[3:], ())
    return ipaddress.IPv4Address(address) in ipaddress.IPv4Network(peer, strict=False)


def _matches(rule: Mapping[str, Any], proto: str, peer: str, dport: int,
             groups: Mapping[str, Sequence[str]]) -> bool:
    if not _peer_matches(rule["peer"], peer, groups):
        return False
    want = rule["protocol"]
    if want == "all":
        return True
    if want != proto:
        return False
    ports = rule.get("ports")
    if proto in ("tcp", "udp") and ports is not None:
        return ports[0] <= dport <= ports[1]
    return True


def evaluate(eni: Mapping[str, Any], direction: str, proto: str, peer: str, dport: int,
             groups: Mapping[str, Sequence[str]]) -> SgMatch:
    """The first rule of `eni`'s `direction` chain ('ingress': `peer` is the source,
    'egress': the destination) that lets a packet of `proto` to `dport` through."""
    for i, rule in enumerate(eni[direction]):
        if _matches(rule, proto, peer, dport, groups):
            return SgMatch(i, rule)
    return SgMatch(None, None)
