"""HTTP-API (V2) VPC links: API Gateway's way into a customer VPC (AWS-FACTS §5).

A link names one VPC, the subnets that get one link ENI each, and the security groups
those ENIs carry. API Gateway opens connections through it (VPC-to-VPC NAT: the
backend sees the link ENI's address); the customer side never opens one toward it.
The topology file's section, at the top level beside `vpcs`:

    api_gateway:
      vpc_links:
        app-link:                         # an HTTP-API (V2) VPC link
          vpc: app
          subnets: [a, b]                 # one ENI per subnet
          security_groups: [link-sg]      # the VPC's default group when omitted

From Python, the same: `lab.add_vpc_link("app-link", vpc="app", subnets=["a", "b"],
security_groups=["link-sg"])`.

What the model derives, as for PrivateLink:

* IDs, stable hashes of the lab and the link's name: the link `vpclink-<17 hex>`, each
  ENI `eni-<17 hex>` (interface `eni-<11 hex>` in the VPC namespace, model/enis.py);
* each link ENI's address: the lowest free address of its subnet after the instances'
  and the NLB and endpoint ENIs' (links come after PrivateLink in dataplane/kinds.py);
* the link ENIs are members of their security groups, so a target's rule naming
  `sg:<link-sg>` admits them (`Lab.sg_members`, used by nftables and the forwarder).

Checked (`check`): the VPC, subnets and groups exist; the subnets are in the link's VPC,
carry an AZ, at most one per AZ and at most 10 (AWS's quota of subnets per link); and
(`lab_problems`) the link's routes fit the engine: one per subnet of the VPC in an AZ
where the link has an ENI. Each link is one forwarder service (`forwarder_services`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .checks import known_groups, mapping, one_subnet_per_az
from .constants import DEFAULT_SG, MAX_LINK_ROUTES
from .enis import EniRequest, stable_hex
from .problems import Problem, add_unique

MAX_SUBNETS = 10       # AWS quota: subnets per HTTP-API VPC link (AWS-FACTS §5)
ENI_KIND = "vpclink"
PATH = "api_gateway.vpc_links"


@dataclass
class VpcLink:
    name: str
    vpc: str
    subnets: list[str]
    security_groups: list[str] = field(default_factory=list)

    @property
    def effective_security_groups(self) -> list[str]:
        """None named: the VPC's default group, as on AWS."""
        return list(self.security_groups) or [DEFAULT_SG]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"vpc": self.vpc, "subnets": list(self.subnets)}
        if self.security_groups:
            d["security_groups"] = list(self.security_groups)
        return d


def vpc_link_id(lab: str, name: str) -> str:
    return "vpclink-" + stable_hex(lab, ENI_KIND, name)


@dataclass(kw_only=True)
class LabBuilder:
    """The VPC links' part of `Lab`: its table and builder method (`Lab` inherits it)."""
    vpc_links: dict[str, VpcLink] = field(default_factory=dict)

    def add_vpc_link(self, name: str, vpc: Any, subnets: Iterable[Any],
                     security_groups: Iterable[Any] = ()) -> VpcLink:
        """A link into `vpc` (a name or a `Vpc`), one ENI per subnet (names or
        `Subnet`s), carrying `security_groups` (names or `SecurityGroup`s)."""
        link = VpcLink(name, getattr(vpc, "name", vpc), [getattr(s, "name", s) for s in subnets],
                       [getattr(g, "name", g) for g in security_groups])
        return add_unique(self.vpc_links, name, link, "VPC link", PATH)


def is_http_link(link: Any) -> bool:
    """An entry of `api_gateway.vpc_links` that is this kind's (REST links, `type: REST`,
    are model/api_gateway.py's)."""
    return isinstance(link, dict) and link.get("type", "HTTP") == "HTTP"


def read(lab: Any, doc: Mapping[str, Any]) -> None:
    for name, link in ((doc.get("api_gateway") or {}).get("vpc_links") or {}).items():
        if is_http_link(link):
            lab.add_vpc_link(name, link["vpc"], link["subnets"],
                             link.get("security_groups") or [])


def write(lab: Any, doc: dict[str, Any]) -> None:
    if lab.vpc_links:
        links = doc.setdefault("api_gateway", {}).setdefault("vpc_links", {})
        links.update({n: l.to_dict() for n, l in lab.vpc_links.items()})


def eni_requests(lab: Any, vpc: Any) -> list[EniRequest]:
    """One ENI per subnet of each link into `vpc`, carrying the link's groups."""
    return [EniRequest(ENI_KIND, link.name, tuple(link.subnets),
                       tuple(link.effective_security_groups))
            for link in lab.vpc_links.values() if link.vpc == vpc.name]


def check(doc: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    vpcs = mapping(doc.get("vpcs"))
    links = mapping(mapping(doc.get("api_gateway")).get("vpc_links"))
    for name, link in links.items():
        if not is_http_link(link):
            continue
        lp = f"{PATH}.{name}"
        problems += [Problem(f"{lp}.{key}", "required key is missing (an HTTP-API VPC link "
                                            "names its vpc and subnets)")
                     for key in ("vpc", "subnets") if key not in link]
        if "target" in link:
            problems.append(Problem(f"{lp}.target", "an HTTP-API VPC link has no target (its "
                                    "routes name theirs); `target` is for `type: REST`"))
        vname = link.get("vpc")
        if not isinstance(vname, str):
            continue
        if vname not in vpcs:
            problems.append(Problem(f"{lp}.vpc", f"unknown VPC {vname!r} (VPCs: "
                                    f"{', '.join(vpcs) or 'none'})"))
            continue
        vpc = mapping(vpcs[vname])
        subnets = link.get("subnets")
        if isinstance(subnets, list) and len(subnets) > MAX_SUBNETS:
            problems.append(Problem(f"{lp}.subnets", f"{len(subnets)} subnets; a VPC link "
                                    f"takes at most {MAX_SUBNETS} (AWS quota)"))
        problems += one_subnet_per_az(subnets, vpc, f"{lp}.subnets", "a VPC link", vname)
        problems += known_groups(link.get("security_groups"), vpc, vname,
                                 f"{lp}.security_groups")
    return problems


def forwarder_services(lab: Any) -> int:
    """One `vpc_nat` service per link (compile/vpc_link.py)."""
    return len(lab.vpc_links)


def lab_problems(lab: Any) -> list[Problem]:
    """A link routes each subnet of its VPC in an AZ where it has an ENI to that ENI; the
    engine holds MAX_LINK_ROUTES such routes per link."""
    problems = []
    for name, link in lab.vpc_links.items():
        vpc = lab.vpcs[link.vpc]
        azs = {vpc.subnets[s].az for s in link.subnets}
        n = sum(1 for s in vpc.subnets.values() if s.az in azs)
        if n > MAX_LINK_ROUTES:
            problems.append(Problem(f"{PATH}.{name}.subnets",
                                    f"VPC {link.vpc} has {n} subnets in the link's AZs, each a "
                                    f"route of the link; the forwarder takes {MAX_LINK_ROUTES}"))
    return problems
