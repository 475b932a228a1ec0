"""The lab model: a lab of VPCs, each with subnets, security groups and instances.

A `Lab` is what a topology file says, nothing more: names, CIDRs, rules and requested
addresses, in the order they were written. It is built the same way whether it comes
from YAML (`dataplane.model.load`) or from Python:

    lab = Lab("demo", region="us-east-1")
    shop = lab.add_vpc("shop", "10.0.0.0/16")
    shop.add_subnet("web-a", "10.0.1.0/24", az="us-east-1a")
    shop.add_security_group("web-sg", ingress=[{"protocol": "tcp", "ports": 8080,
                                                "source": "10.0.0.0/16"}])
    shop.add_instance("web1", subnet="web-a", security_groups=["web-sg"])
    lab.check()                      # every problem at once, or TopologyError

`Lab.from_dict()` (used by the YAML loader) calls exactly these builder methods, so a
file and a script that say the same thing give equal objects, and `to_dict()` gives the
file back.

What the model adds to the file, as AWS does, is computed on demand and never stored:

* every VPC has a security group `default` (inbound from its own members, outbound to
  anywhere) unless the file defines `default` itself (as editing the default group);
  an instance that names no group is in `default`;
* a security group without an `egress` list allows all outbound traffic (a new AWS
  group), while `egress: []` allows nothing out but replies;
* instance addresses (`Lab.addresses()`): an instance with `ip:` gets it; the others
  get the lowest free address of their subnet, from network+4 upward, in file order,
  skipping the five addresses AWS reserves in every subnet: network, +1 (the VPC
  router), +2 (DNS), +3 (future use) and broadcast;
* Hyperplane ENIs (`Lab.hyperplane_enis()`): what every kind asks for, after the
  instances (model/enis.py); `Lab.sg_members()` puts them in their security groups.

Those two are the address plan, and each is a walk over the whole lab; what reads the
lab as a whole (`plan`, `up`, `validate --plan`, the compilers, `check`) asks for them
once per VPC or per resource, which made a 100-VPC lab cost seconds of walks. Such a
reader runs inside `with lab.unchanged():`, a block in which the lab is not changed:
there each walk is made once and its result reused (a copy each time, so that no
caller changes another's). The blocks nest, and a builder call inside one is a mistake
the block does not see, so they wrap readers only.

Each resource kind adds its tables and builder methods through a mixin that `Lab` or
`Vpc` inherits (`LabBuilder`, `VpcBuilder` in its model file), and its section of the
document through `read`/`write`, all found through dataplane/kinds.py; this file names
no kind. Validation (validate.py) never imports this file, so the two are no circle.
"""
from __future__ import annotations

import contextlib
import functools
import ipaddress
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from dataplane import kinds

from . import names
from .constants import (DEFAULT_REGION, DEFAULT_SG, FIRST_FREE_OFFSET, MAX_FORWARDER_SERVICES,
                        MAX_SG_RULES, RESERVED)
from .enis import HyperplaneEni, eni_ids
from .problems import Problem, TopologyError, add_unique
from .validate import check_document, check_port_count

__all__ = ["Rule", "SecurityGroup", "Subnet", "Instance", "Vpc", "Lab", "next_free",
           "default_security_group", "hyperplane_enis", "Problem", "TopologyError",
           "DEFAULT_REGION", "DEFAULT_SG", "FIRST_FREE_OFFSET", "RESERVED"]


@dataclass
class Rule:
    """One allow rule of a security group.

    `peer` is the source (ingress) or destination (egress): a CIDR or `sg:<name>`.
    `ports` is as written: None (all), a number, or "lo-hi".
    """
    protocol: str
    peer: str
    ports: int | str | None = None
    description: str | None = None

    @property
    def port_range(self) -> tuple[int, int] | None:
        """(lo, hi) inclusive, or None for every port (or a protocol without ports)."""
        if self.ports is None or self.protocol not in ("tcp", "udp"):
            return None
        if isinstance(self.ports, int):
            return (self.ports, self.ports)
        lo, _, hi = str(self.ports).partition("-")
        return (int(lo), int(hi or lo))

    @property
    def peer_group(self) -> str | None:
        """The referenced security group's name for `sg:<name>`, else None."""
        return self.peer[3:] if self.peer.startswith("sg:") else None

    def to_dict(self, peer_key: str) -> dict[str, Any]:
        d: dict[str, Any] = {"protocol": self.protocol}
        if self.ports is not None:
            d["ports"] = self.ports
        d[peer_key] = self.peer
        if self.description is not None:
            d["description"] = self.description
        return d


def _rule(r: Rule | Mapping[str, Any], peer_key: str) -> Rule:
    if isinstance(r, Rule):
        return r
    return Rule(protocol=r.get("protocol"), peer=r.get(peer_key), ports=r.get("ports"),
                description=r.get("description"))


@dataclass
class SecurityGroup:
    """A stateful, allow-only set of rules. `egress=None` means "allow all outbound"."""
    name: str
    ingress: list[Rule] = field(default_factory=list)
    egress: list[Rule] | None = None
    description: str | None = None

    @property
    def effective_egress(self) -> list[Rule]:
        if self.egress is None:
            return [Rule("all", "0.0.0.0/0")]
        return self.egress

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.description is not None:
            d["description"] = self.description
        d["ingress"] = [r.to_dict("source") for r in self.ingress]
        if self.egress is not None:
            d["egress"] = [r.to_dict("destination") for r in self.egress]
        return d


def default_security_group() -> SecurityGroup:
    """The group every VPC starts with: inbound from its own members, outbound all."""
    return SecurityGroup(DEFAULT_SG, ingress=[Rule("all", "sg:" + DEFAULT_SG)], egress=None)


@dataclass
class Subnet:
    name: str
    cidr: str
    az: str | None = None

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def router(self) -> ipaddress.IPv4Address:
        """The VPC router's address in this subnet (network+1)."""
        return self.network.network_address + 1

    def reserved_reason(self, ip: ipaddress.IPv4Address) -> str | None:
        """Why AWS would refuse `ip` here, if it is one of the five reserved addresses."""
        net = self.network
        if ip == net.broadcast_address:
            return RESERVED[-1]
        return RESERVED.get(int(ip) - int(net.network_address))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"cidr": self.cidr}
        if self.az is not None:
            d["az"] = self.az
        return d


@dataclass
class Instance:
    name: str
    subnet: str
    ip: str | None = None
    security_groups: list[str] = field(default_factory=list)
    run: str | None = None
    # AWS's SourceDestCheck: the ENI sends only from and receives only for its own
    # address. Off for an instance that forwards others' packets (a NAT instance).
    source_dest_check: bool = True
    # Made by another resource, not written in the file: "ALB web-alb" for an ALB's
    # node (model/alb.py), which is an ENI and a namespace like an instance's.
    managed_by: str | None = None
    # When the `run:` command is ready (`up` waits for it): {"tcp": port} or
    # {"http": path, "port": port}, with an optional "timeout" in seconds.
    ready: dict[str, Any] | None = None

    @property
    def effective_security_groups(self) -> list[str]:
        return list(self.security_groups) or [DEFAULT_SG]

    def eni_ifname(self, lab: str, vpc: str) -> str:
        """Its ENI's interface in the VPC namespace: `eni-<name>`, or for a managed
        instance (whose name may be long and holds a dot) `eni-<11 hex>` of its path."""
        if self.managed_by is None:
            return names.eni_ifname(self.name)
        return eni_ids(lab, vpc, "node", self.name, self.subnet)[1]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"subnet": self.subnet}
        if self.ip is not None:
            d["ip"] = self.ip
        if self.security_groups:
            d["security_groups"] = list(self.security_groups)
        if self.run is not None:
            d["run"] = self.run
        if not self.source_dest_check:
            d["source_dest_check"] = False
        if self.ready is not None:
            d["ready"] = dict(self.ready)
        return d


@dataclass
class Vpc(*kinds.builders("VpcBuilder")):
    """A VPC: subnets, security groups, instances, and each kind's tables (the
    `VpcBuilder` mixins of dataplane/kinds.py's kinds, PrivateLink's for one)."""
    name: str
    cidr: str
    subnets: dict[str, Subnet] = field(default_factory=dict)
    security_groups: dict[str, SecurityGroup] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    # The AWS service that owns this VPC ("API Gateway"), None for the lab's own: a
    # service's VPC is derived from other resources and never written in the file.
    service: str | None = None
    _path: str = field(default="", repr=False, compare=False)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def dns_address(self) -> ipaddress.IPv4Address:
        """AmazonProvidedDNS: the VPC's base address + 2."""
        return self.network.network_address + 2

    def add_subnet(self, name: str, cidr: str, az: str | None = None) -> Subnet:
        return add_unique(self.subnets, name, Subnet(name, cidr, az), "subnet",
                    f"{self._path}.subnets")

    def add_security_group(self, name: str, ingress: Iterable[Rule | Mapping] = (),
                           egress: Iterable[Rule | Mapping] | None = None,
                           description: str | None = None) -> SecurityGroup:
        sg = SecurityGroup(name, [_rule(r, "source") for r in ingress],
                           None if egress is None else [_rule(r, "destination") for r in egress],
                           description)
        return add_unique(self.security_groups, name, sg, "security group",
                    f"{self._path}.security_groups")

    def add_instance(self, name: str, subnet: str | Subnet, ip: str | None = None,
                     security_groups: Iterable[str | SecurityGroup] = (),
                     run: str | None = None, source_dest_check: bool = True,
                     managed_by: str | None = None,
                     ready: Mapping[str, Any] | None = None) -> Instance:
        """An instance; `run` is a command started in it by /bin/sh, and `ready` says
        when that command is ready: {"tcp": 8080}, or {"http": "/health", "port": 8080}
        (port 80 by default), each with an optional "timeout" (seconds, default 30)."""
        sn = subnet.name if isinstance(subnet, Subnet) else subnet
        groups = [g.name if isinstance(g, SecurityGroup) else g for g in security_groups]
        inst = Instance(name, sn, ip, groups, run, source_dest_check, managed_by,
                        None if ready is None else dict(ready))
        return add_unique(self.instances, name, inst, "instance", f"{self._path}.instances")

    def effective_security_groups(self) -> dict[str, SecurityGroup]:
        """The VPC's groups including the implicit `default` one."""
        groups = dict(self.security_groups)
        groups.setdefault(DEFAULT_SG, default_security_group())
        return groups

    def members(self, group: str, addresses: Mapping[tuple[str, str], str]) -> list[str]:
        """Private IPs of the ENIs that carry `group` (for `sg:` references)."""
        return [addresses[(self.name, i.name)] for i in self.instances.values()
                if group in i.effective_security_groups]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"cidr": self.cidr}
        if self.subnets:
            d["subnets"] = {n: s.to_dict() for n, s in self.subnets.items()}
        if self.security_groups:
            d["security_groups"] = {n: g.to_dict() for n, g in self.security_groups.items()}
        written = {n: i.to_dict() for n, i in self.instances.items() if i.managed_by is None}
        if written:
            d["instances"] = written
        return d


_UNCHANGED_LOCK = threading.Lock()


def reads_whole_lab(fn):
    """Run `fn(lab, …)` inside `lab.unchanged()`: for a function that reads the whole
    lab and changes nothing (module docstring)."""
    @functools.wraps(fn)
    def reading(lab: "Lab", *args: Any, **kwargs: Any) -> Any:
        with lab.unchanged():
            return fn(lab, *args, **kwargs)
    return reading


@dataclass
class Lab(*kinds.builders("LabBuilder")):
    """A lab: its VPCs, and each kind's lab-wide tables (`LabBuilder` mixins)."""
    name: str
    region: str = DEFAULT_REGION
    vpcs: dict[str, Vpc] = field(default_factory=dict)
    # The address plan while inside `unchanged()` (module docstring): {fact: result},
    # and how many blocks are open. Not part of the lab: no init, repr or comparison.
    _derived: dict[str, Any] | None = field(default=None, init=False, repr=False,
                                            compare=False)
    _unchanged_depth: int = field(default=0, init=False, repr=False, compare=False)

    def add_vpc(self, name: str, cidr: str) -> Vpc:
        return add_unique(self.vpcs, name, Vpc(name, cidr, _path=f"vpcs.{name}"), "VPC", "vpcs")

    # -- conversion --------------------------------------------------------------------
    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "Lab":
        """Build from a document already checked by `validate.check_document`."""
        lab = cls(doc["lab"], doc.get("region", DEFAULT_REGION))
        for vname, v in doc["vpcs"].items():
            vpc = lab.add_vpc(vname, v["cidr"])
            for sname, s in (v.get("subnets") or {}).items():
                vpc.add_subnet(sname, s["cidr"], s.get("az"))
            for gname, g in (v.get("security_groups") or {}).items():
                vpc.add_security_group(gname, g.get("ingress") or [], g.get("egress"),
                                       g.get("description"))
            for iname, i in (v.get("instances") or {}).items():
                vpc.add_instance(iname, i["subnet"], i.get("ip"),
                                 i.get("security_groups") or [], i.get("run"),
                                 i.get("source_dest_check", True), ready=i.get("ready"))
        for kind in kinds.models():
            kind.read(lab, doc)
        return lab

    def to_dict(self) -> dict[str, Any]:
        doc = {"lab": self.name, "region": self.region,
               "vpcs": {n: v.to_dict() for n, v in self.vpcs.items() if v.service is None}}
        for kind in kinds.models():
            kind.write(self, doc)
        return doc

    # -- checks and derived facts ------------------------------------------------------
    def problems(self) -> list[Problem]:
        """Every problem of the document, then (when there is none) of what it asks
        the Hyperplane for: ENI addresses and forwarder ports."""
        return check_document(self.to_dict()) or self.allocation_problems()

    @reads_whole_lab
    def allocation_problems(self) -> list[Problem]:
        """What `up` would find late: a Hyperplane ENI with no free address, more ENIs
        than forwarder ports, more services than the forwarder holds, a port whose
        security groups compile to more rules than the engine takes."""
        try:
            enis = self.hyperplane_enis()
        except TopologyError as e:
            return e.problems
        problems = check_port_count(len(enis), len(self.vpc_links))
        services = sum(kind.forwarder_services(self) for kind in kinds.models()
                       if hasattr(kind, "forwarder_services"))
        if services > MAX_FORWARDER_SERVICES:
            problems.append(Problem("", f"the lab compiles to {services} forwarder services "
                                    f"(one per endpoint ENI and listener, one per NLB node "
                                    f"and target health check); the forwarder holds "
                                    f"{MAX_FORWARDER_SERVICES}"))
        for kind in kinds.models():
            if hasattr(kind, "lab_problems"):
                problems += kind.lab_problems(self)
        for e in enis:
            vpc = self.vpcs[e.vpc]
            clash = next((i.name for i in vpc.instances.values()
                          if i.eni_ifname(self.name, vpc.name) == e.ifname), None)
            if clash:
                problems.append(Problem(f"vpcs.{e.vpc}.instances.{clash}", f"its ENI would be "
                                        f"{e.ifname}, the interface of the {e.kind} ENI of "
                                        f"{e.owner}; choose another instance name"))
        return problems + self._sg_rule_problems(enis)

    def _sg_rule_problems(self, enis: list[HyperplaneEni]) -> list[Problem]:
        """Each Hyperplane ENI's groups, as the engine gets them (one rule per `sg:`
        member), fit MAX_SG_RULES in each direction."""
        problems = []
        members = {v: self.sg_members(self.vpcs[v]) for v in {e.vpc for e in enis
                                                              if e.security_groups}}
        for e in enis:
            groups = self.vpcs[e.vpc].effective_security_groups()
            for direction in ("ingress", "effective_egress"):
                n = sum(len(members[e.vpc].get(r.peer_group, [])) if r.peer_group else 1
                        for g in e.security_groups for r in getattr(groups[g], direction))
                if n > MAX_SG_RULES:
                    where = {"vpce": f"vpcs.{e.vpc}.endpoints.{e.owner}",
                             "vpclink": f"api_gateway.vpc_links.{e.owner}"}.get(e.kind)
                    problems.append(Problem(
                        f"{where}.security_groups" if where else f"vpcs.{e.vpc}.security_groups",
                        f"the {direction.split('_')[-1]} "
                        f"rules of {', '.join(e.security_groups)} on the {e.kind} ENI of "
                        f"{e.owner} in {e.subnet} are {n} once sg: references name each "
                        f"member; the forwarder takes {MAX_SG_RULES} per ENI"))
        return problems

    def check(self) -> "Lab":
        """Raise TopologyError listing every problem; return self when there is none."""
        problems = self.problems()
        if problems:
            raise TopologyError(problems)
        return self

    @contextlib.contextmanager
    def unchanged(self) -> Iterator["Lab"]:
        """A block that reads the lab and does not change it: the address plan is
        computed once in it (module docstring). Blocks nest, from any thread."""
        with _UNCHANGED_LOCK:
            self._unchanged_depth += 1
            if self._derived is None:
                self._derived = {}
        try:
            yield self
        finally:
            with _UNCHANGED_LOCK:
                self._unchanged_depth -= 1
                if self._unchanged_depth == 0:
                    self._derived = None

    def _once(self, fact: str, compute):
        derived = self._derived
        if derived is None:
            return compute()
        if fact not in derived:
            derived[fact] = compute()     # two threads at once: the same result, twice
        return derived[fact]

    def hyperplane_enis(self) -> list[HyperplaneEni]:
        return list(self._once("hyperplane_enis", lambda: hyperplane_enis(self)))

    def sg_members(self, vpc: "Vpc") -> dict[str, list[str]]:
        """{group: private IPs} of the ENIs carrying each group of `vpc`: its instances',
        then the Hyperplane ENIs' that carry groups (endpoints', VPC links'). `sg:`
        references mean these, in nftables and in the forwarder alike."""
        addresses = self.addresses()
        out = {g: vpc.members(g, addresses) for g in vpc.effective_security_groups()}
        for e in self.hyperplane_enis():
            if e.vpc == vpc.name:
                for g in e.security_groups:
                    out.setdefault(g, []).append(e.ip)
        return out

    def addresses(self) -> dict[tuple[str, str], str]:
        """{(vpc, instance): private IP} for every instance (see the module docstring)."""
        return dict(self._once("addresses", self._addresses))

    def _addresses(self) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        for vpc in self.vpcs.values():
            taken: dict[str, set[ipaddress.IPv4Address]] = {s: set() for s in vpc.subnets}
            for inst in vpc.instances.values():
                if inst.ip is not None:
                    taken[inst.subnet].add(ipaddress.IPv4Address(inst.ip))
                    out[(vpc.name, inst.name)] = inst.ip
            for inst in vpc.instances.values():
                if inst.ip is not None:
                    continue
                ip = next_free(vpc.subnets[inst.subnet], taken[inst.subnet])
                if ip is None:
                    raise TopologyError([Problem(f"vpcs.{vpc.name}.instances.{inst.name}",
                                                 f"subnet {inst.subnet} has no free address")])
                taken[inst.subnet].add(ip)
                out[(vpc.name, inst.name)] = str(ip)
        return out


def hyperplane_enis(lab: "Lab") -> list[HyperplaneEni]:
    """Every Hyperplane-managed ENI, VPC by VPC, kinds in registry order (NLB nodes, then
    endpoints, then VPC links): each at the lowest address of its subnet that no instance
    (or earlier ENI) holds."""
    addresses = lab.addresses()
    out: list[HyperplaneEni] = []
    for vpc in lab.vpcs.values():
        taken = {s: {ipaddress.IPv4Address(addresses[(vpc.name, i.name)])
                     for i in vpc.instances.values() if i.subnet == s} for s in vpc.subnets}
        for kind in kinds.models():
            for req in kind.eni_requests(lab, vpc):
                for sname in req.subnets:
                    subnet = vpc.subnets[sname]
                    ip = next_free(subnet, taken[sname])
                    if ip is None:
                        raise TopologyError([Problem(
                            f"vpcs.{vpc.name}.subnets.{sname}",
                            f"no free address for the {req.kind} ENI of {req.owner}")])
                    taken[sname].add(ip)
                    eni_id, ifname = eni_ids(lab.name, vpc.name, req.kind, req.owner, sname)
                    out.append(HyperplaneEni(vpc.name, req.kind, req.owner, sname, subnet.az,
                                             str(ip), eni_id, ifname,
                                             list(req.security_groups)))
    return out


def next_free(subnet: Subnet, taken: set[ipaddress.IPv4Address]) -> ipaddress.IPv4Address | None:
    """The lowest address of `subnet` that is neither reserved nor in `taken`."""
    net = subnet.network
    first = int(net.network_address) + FIRST_FREE_OFFSET
    last = int(net.broadcast_address) - 1
    for n in range(first, last + 1):
        ip = ipaddress.IPv4Address(n)
        if ip not in taken:
            return ip
    return None
