"""Hyperplane ENIs: the network interfaces that Hyperplane owns in a customer's VPC
(an NLB node's, an interface endpoint's, a VPC link's), and their stable IDs.

Each kind says which ENIs it wants in a VPC as `EniRequest`s (its
`eni_requests(lab, vpc)`); `Lab.hyperplane_enis()` gives each the lowest free address of
its subnet after the instances' and the earlier requests', kinds in registry order
(dataplane/kinds.py). IDs are stable hashes of the lab and the resource's path, in
AWS's formats, so they survive `down` and `up`: `eni-<17 hex>`, with the interface in
the VPC namespace named `eni-<11 hex>` (15 characters, the kernel's limit).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def stable_hex(*parts: str, n: int = 17) -> str:
    """`n` hex digits that depend only on `parts`: IDs survive `down` and `up`."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


def account_id(lab: str) -> str:
    """The lab's AWS account (and a service's, given its name): 12 digits, stable."""
    return str(int(stable_hex(lab, "account", n=12), 16) % 10**12).zfill(12)


def eni_ids(lab: str, vpc: str, kind: str, owner: str, subnet: str) -> tuple[str, str]:
    """(eni-<17 hex> ID, eni-<11 hex> interface name) of one Hyperplane ENI."""
    h = stable_hex(lab, vpc, kind, owner, subnet)
    return "eni-" + h, "eni-" + h[:11]


@dataclass(frozen=True)
class EniRequest:
    """What a kind asks for: one ENI per subnet for `owner`, carrying `security_groups`
    (members of them for `sg:` references; empty for ENIs that carry none, like NLB's)."""
    kind: str            # "nlb", "vpce", "vpclink"
    owner: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...] = ()


@dataclass
class HyperplaneEni:
    """An ENI that Hyperplane owns, with its address, as `up` makes it."""
    vpc: str
    kind: str            # "nlb", "vpce" or "vpclink"
    owner: str           # the NLB's, the endpoint's or the VPC link's name
    subnet: str
    az: str | None
    ip: str
    eni_id: str          # eni-<17 hex>
    ifname: str          # eni-<11 hex>, its interface in the VPC namespace
    security_groups: list[str] = field(default_factory=list)
