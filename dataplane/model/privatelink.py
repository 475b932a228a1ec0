"""PrivateLink resources of a VPC: Network Load Balancers, target groups, endpoint
services (provider side) and interface endpoints (consumer side).

As the rest of the model, these are what the file says; what AWS derives is computed:

* IDs are stable hashes of the lab and the resource's path, in AWS's formats:
  `vpce-<17 hex>`, `vpce-svc-<17 hex>`, `eni-<17 hex>`; the ENI's interface name in
  the VPC namespace is `eni-<11 hex>` (15 characters, the kernel's limit).
* ENI addresses (`Lab.hyperplane_enis()`, model/enis.py): one NLB ENI per NLB subnet,
  then one endpoint ENI per endpoint subnet, each the lowest address of its subnet that
  no instance holds, skipping AWS's five reserves.
* DNS names of an endpoint (AWS-FACTS §1): regional
  `vpce-<id>-<suffix>.vpce-svc-<id>.<region>.vpce.amazonaws.com` (every ENI), zonal
  `vpce-<id>-<suffix>-<az>.vpce-svc-…` (that AZ's ENI), and, with `private_dns`, the
  service's private DNS name (every ENI), all answered by the consumer VPC's resolver.

The YAML shape (accepted as written in issue 4):

    load_balancers:
      web-nlb: {type: network, subnets: [svc-a, svc-b],
                listeners: [{port: 80, protocol: TCP, target_group: web-tg}]}
    target_groups:
      web-tg: {protocol: TCP, port: 8080, targets: [web1, web2],
               health_check: {protocol: TCP, interval: 5, healthy_threshold: 2}}
    endpoint_services:
      web-svc: {load_balancers: [web-nlb], acceptance_required: false,
                private_dns_name: web.provider.internal}
    endpoints:
      web-ep: {service: provider/web-svc, subnets: [app-a, app-b],
               security_groups: [endpoint-sg], private_dns: true}

The kind registers in dataplane/kinds.py; this file is its model floor: the
`VpcBuilder` mixin (`vpc.add_load_balancer(...)` and the rest), `read`/`write` of its
sections, `check` (the meaning of those sections) and its `eni_requests`.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .checks import known_groups, mapping, one_subnet_per_az, subnet_azs
from .constants import MAX_BACKENDS
from . import names
from .enis import EniRequest, HyperplaneEni, eni_ids, stable_hex
from .execute_api import EXECUTE_API
from .problems import Problem, add_unique

__all__ = ["Listener", "LoadBalancer", "TargetGroup", "EndpointService", "Endpoint",
           "VpcBuilder", "HyperplaneEni", "eni_ids", "stable_hex", "endpoint_id", "service_id",
           "endpoint_dns_names", "read", "write", "check", "eni_requests"]

DEFAULT_IDLE_TIMEOUT = 350   # NLB TCP listener default (60-6000)
SECTIONS = ("load_balancers", "target_groups", "endpoint_services", "endpoints")


@dataclass
class Listener:
    port: int
    target_group: str
    protocol: str = "TCP"
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"port": self.port, "protocol": self.protocol,
                             "target_group": self.target_group}
        if self.idle_timeout != DEFAULT_IDLE_TIMEOUT:
            d["idle_timeout"] = self.idle_timeout
        return d


@dataclass
class LoadBalancer:
    name: str
    subnets: list[str]
    listeners: list[Listener] = field(default_factory=list)
    type: str = "network"
    managed_by: str | None = None          # as EndpointService.managed_by

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "subnets": list(self.subnets),
                "listeners": [l.to_dict() for l in self.listeners]}


@dataclass
class TargetGroup:
    name: str
    port: int
    targets: list[str] = field(default_factory=list)   # instance name, or ip / ip:port
    protocol: str = "TCP"
    health_check: dict[str, Any] = field(default_factory=dict)
    # PROXY protocol v2 header in front of each connection's first bytes (AWS-FACTS §2)
    proxy_protocol_v2: bool = False
    managed_by: str | None = None          # as EndpointService.managed_by

    def target_addresses(self, instance_ips: Mapping[str, str]) -> list[tuple[str, int]]:
        """(ip, port) of every target: an instance's address, or the one written."""
        out = []
        for t in self.targets:
            host, _, port = t.partition(":")
            out.append((instance_ips.get(host, host), int(port) if port else self.port))
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"protocol": self.protocol, "port": self.port,
                             "targets": list(self.targets)}
        if self.health_check:
            d["health_check"] = dict(self.health_check)
        if self.proxy_protocol_v2:
            d["proxy_protocol_v2"] = True
        return d


@dataclass
class EndpointService:
    name: str
    load_balancers: list[str]
    acceptance_required: bool = True     # AWS's default: manual acceptance
    private_dns_name: str | None = None
    # Made by another resource, not written in the file: "VPC link rest-link" for the
    # service a REST-API VPC link creates on its NLB (model/api_gateway.py).
    managed_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"load_balancers": list(self.load_balancers),
                             "acceptance_required": self.acceptance_required}
        if self.private_dns_name:
            d["private_dns_name"] = self.private_dns_name
        return d


@dataclass
class Endpoint:
    name: str
    service: str                          # "<vpc>/<endpoint service>"
    subnets: list[str]
    security_groups: list[str] = field(default_factory=list)
    private_dns: bool = False
    managed_by: str | None = None         # as EndpointService.managed_by

    @property
    def service_ref(self) -> tuple[str, str]:
        """(VPC, endpoint service); `execute-api` is API Gateway's own, in its VPC
        (model/execute_api.py)."""
        if self.service == EXECUTE_API:
            return names.APIGW, EXECUTE_API
        vpc, _, svc = self.service.partition("/")
        return vpc, svc

    @property
    def effective_security_groups(self) -> list[str]:
        """None named: the VPC's default group, as on AWS."""
        return list(self.security_groups) or ["default"]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"service": self.service, "subnets": list(self.subnets)}
        if self.security_groups:
            d["security_groups"] = list(self.security_groups)
        if self.private_dns:
            d["private_dns"] = True
        return d


def endpoint_id(lab: str, vpc: str, name: str) -> str:
    return "vpce-" + stable_hex(lab, vpc, "vpce", name)


def service_id(lab: str, vpc: str, name: str) -> str:
    return "vpce-svc-" + stable_hex(lab, vpc, "svc", name)


def endpoint_dns_names(lab: str, region: str, vpc: str, endpoint: str, svc_vpc: str,
                       svc: str, az: str | None) -> tuple[str, str | None]:
    """(regional name, zonal name for `az`) of an endpoint (AWS-FACTS §1)."""
    suffix = stable_hex(lab, vpc, endpoint, "dns", n=8)
    base = f"{endpoint_id(lab, vpc, endpoint)}-{suffix}"
    domain = (f"{EXECUTE_API}.{region}.vpce.amazonaws.com" if (svc_vpc, svc) == (names.APIGW, EXECUTE_API)
              else f"{service_id(lab, svc_vpc, svc)}.{region}.vpce.amazonaws.com")
    return f"{base}.{domain}", (f"{base}-{az}.{domain}" if az else None)


@dataclass(kw_only=True)
class VpcBuilder:
    """PrivateLink's part of `Vpc`: its tables and builder methods (`Vpc` inherits it)."""
    load_balancers: dict[str, LoadBalancer] = field(default_factory=dict)
    target_groups: dict[str, TargetGroup] = field(default_factory=dict)
    endpoint_services: dict[str, EndpointService] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    def add_load_balancer(self, name: str, subnets: Iterable[str],
                          listeners: Iterable[Listener | Mapping] = (),
                          type: str = "network", managed_by: str | None = None) -> LoadBalancer:
        ls = [l if isinstance(l, Listener) else
              Listener(l.get("port"), l.get("target_group"), l.get("protocol", "TCP"),
                       l.get("idle_timeout", DEFAULT_IDLE_TIMEOUT)) for l in listeners]
        return add_unique(self.load_balancers, name,
                          LoadBalancer(name, list(subnets), ls, type, managed_by),
                          "load balancer", f"{self._path}.load_balancers",
                          shares_names_with=(getattr(self, "albs", {}),))

    def add_target_group(self, name: str, port: int, targets: Iterable[str] = (),
                         protocol: str = "TCP",
                         health_check: Mapping[str, Any] | None = None,
                         proxy_protocol_v2: bool = False,
                         managed_by: str | None = None) -> TargetGroup:
        tg = TargetGroup(name, port, list(targets), protocol, dict(health_check or {}),
                         proxy_protocol_v2, managed_by)
        return add_unique(self.target_groups, name, tg, "target group",
                          f"{self._path}.target_groups",
                          shares_names_with=(getattr(self, "http_target_groups", {}),))

    def add_endpoint_service(self, name: str, load_balancers: Iterable[str],
                             acceptance_required: bool = True,
                             private_dns_name: str | None = None,
                             managed_by: str | None = None) -> EndpointService:
        es = EndpointService(name, list(load_balancers), acceptance_required, private_dns_name,
                             managed_by)
        return add_unique(self.endpoint_services, name, es, "endpoint service",
                          f"{self._path}.endpoint_services")

    def add_endpoint(self, name: str, service: str, subnets: Iterable[str],
                     security_groups: Iterable[str] = (), private_dns: bool = False,
                     managed_by: str | None = None) -> Endpoint:
        ep = Endpoint(name, service, list(subnets), list(security_groups), private_dns,
                      managed_by)
        return add_unique(self.endpoints, name, ep, "endpoint", f"{self._path}.endpoints")


def read(lab: Any, doc: Mapping[str, Any]) -> None:
    """Build this kind's resources of a checked document into `lab` (its VPCs exist)."""
    for vname, v in doc["vpcs"].items():
        vpc = lab.vpcs[vname]
        # ALBs and their HTTP groups share these sections; they are the ALB kind's.
        for n, lb in (v.get("load_balancers") or {}).items():
            if lb.get("type", "network") == "network":
                vpc.add_load_balancer(n, lb["subnets"], lb.get("listeners") or [])
        for n, tg in (v.get("target_groups") or {}).items():
            if tg.get("protocol", "TCP") == "TCP":
                vpc.add_target_group(n, tg["port"], tg.get("targets") or [],
                                     tg.get("protocol", "TCP"), tg.get("health_check"),
                                     tg.get("proxy_protocol_v2", False))
        for n, es in (v.get("endpoint_services") or {}).items():
            vpc.add_endpoint_service(n, es["load_balancers"], es.get("acceptance_required", True),
                                     es.get("private_dns_name"))
        for n, ep in (v.get("endpoints") or {}).items():
            vpc.add_endpoint(n, ep["service"], ep["subnets"], ep.get("security_groups") or [],
                             ep.get("private_dns", False))


def write(lab: Any, doc: dict[str, Any]) -> None:
    """This kind's sections of `lab`, into the document `Lab.to_dict()` is making (what
    other resources made, and service-owned VPCs, are theirs to write)."""
    for vname, vpc in lab.vpcs.items():
        if vname not in doc["vpcs"]:
            continue
        for key in SECTIONS:
            table = {n: obj.to_dict() for n, obj in getattr(vpc, key).items()
                     if getattr(obj, "managed_by", None) is None}
            if table:
                doc["vpcs"][vname][key] = table


def eni_requests(lab: Any, vpc: Any) -> list[EniRequest]:
    """One ENI per NLB subnet (no security groups: NLBs here have none), then one per
    endpoint subnet (the endpoint's groups)."""
    out = [EniRequest("nlb", lb.name, tuple(lb.subnets)) for lb in vpc.load_balancers.values()]
    out += [EniRequest("vpce", ep.name, tuple(ep.subnets), tuple(ep.effective_security_groups))
            for ep in vpc.endpoints.values()]
    return out


def forwarder_services(lab: Any) -> int:
    """How many forwarder services PrivateLink compiles (compile/privatelink.py): one per
    endpoint ENI and listener of the NLB node in its AZ, one per NLB node, target group
    and target for health checks."""
    enis = lab.hyperplane_enis()
    n = 0
    for vpc in lab.vpcs.values():
        for ep in vpc.endpoints.values():
            svc_vpc, svc = ep.service_ref
            provider = lab.vpcs.get(svc_vpc)
            es = provider.endpoint_services.get(svc) if provider else None
            if es is None:
                continue          # lab_problems names it (an execute-api endpoint made bare)
            lbs = es.load_balancers
            for e in enis:
                if (e.vpc, e.kind, e.owner) != (vpc.name, "vpce", ep.name):
                    continue
                node = next((x for lb in lbs for x in enis if (x.vpc, x.kind, x.owner, x.az)
                             == (svc_vpc, "nlb", lb, e.az)), None)
                if node is not None:
                    n += len(provider.load_balancers[node.owner].listeners)
        for lb in vpc.load_balancers.values():
            groups = dict.fromkeys(l.target_group for l in lb.listeners)
            n += len(lb.subnets) * sum(len(vpc.target_groups[g].targets) for g in groups)
    return n


def lab_problems(lab: Any) -> list[Problem]:
    """What needs the address plan: a target group must not name one target twice (an
    instance and its address are one target; the forwarder would get the same health
    check twice, and AWS registers a target once)."""
    problems = []
    addresses = lab.addresses()
    for vpc in lab.vpcs.values():
        ips = {i: addresses[(vpc.name, i)] for i in vpc.instances}
        for tg in vpc.target_groups.values():
            seen: dict[tuple[str, int], str] = {}
            for k, (target, resolved) in enumerate(zip(tg.targets, tg.target_addresses(ips))):
                if resolved in seen:
                    problems.append(Problem(
                        f"vpcs.{vpc.name}.target_groups.{tg.name}.targets[{k}]",
                        f"{target} is {resolved[0]}:{resolved[1]}, already a target as "
                        f"{seen[resolved]}"))
                seen.setdefault(resolved, target)
    return problems


def check(doc: dict[str, Any]) -> list[Problem]:
    """The meaning of every VPC's PrivateLink sections (their shape is the schema's)."""
    problems: list[Problem] = []
    vpcs = mapping(doc.get("vpcs"))
    for vname, vpc in vpcs.items():
        if isinstance(vpc, dict):
            problems += _check_vpc(str(vname), vpc, f"vpcs.{vname}", vpcs)
    return problems


def _check_private_dns(vname: str, vpc: dict, vp: str, vpcs: dict) -> list[Problem]:
    """At most one endpoint of a VPC answers each private DNS name (AWS refuses a second
    endpoint with private DNS for the same service, or for a name already taken)."""
    problems: list[Problem] = []
    taken: dict[str, str] = {}
    for ename, ep in mapping(vpc.get("endpoints")).items():
        if not isinstance(ep, dict) or ep.get("private_dns") is not True:
            continue
        svc = ep.get("service")
        if svc == EXECUTE_API:
            name = f"*.{EXECUTE_API} names"      # API Gateway's whole domain
        elif not isinstance(svc, str) or "/" not in svc:
            continue
        else:
            svpc_name, _, sname = svc.partition("/")
            es = mapping(mapping(mapping(vpcs.get(svpc_name)).get("endpoint_services")).get(sname))
            name = es.get("private_dns_name")
        if not isinstance(name, str):
            continue
        if name in taken:
            problems.append(Problem(f"{vp}.endpoints.{ename}.private_dns", f"endpoint "
                                    f"{taken[name]} of VPC {vname} already answers {name}; "
                                    f"private DNS can be on for one endpoint per name in a VPC"))
        else:
            taken[name] = str(ename)
    return problems


PRIVATE_TARGET_RANGES = [ipaddress.IPv4Network(n) for n in
                         ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")]


def _check_vpc(vname: str, vpc: dict, vp: str, vpcs: dict) -> list[Problem]:
    """NLBs, target groups, endpoint services and endpoints: references resolve, one
    subnet per AZ, targets are private, an NLB backs one service, endpoints sit in AZs
    their service is in."""
    problems: list[Problem] = []
    tgs = mapping(vpc.get("target_groups"))
    lbs = mapping(vpc.get("load_balancers"))
    instances = mapping(vpc.get("instances"))
    for lname, lb in lbs.items():
        lp = f"{vp}.load_balancers.{lname}"
        if not isinstance(lb, dict) or lb.get("type") == "application":
            continue                      # an ALB: model/alb.py checks it
        problems += one_subnet_per_az(lb.get("subnets"), vpc, f"{lp}.subnets", "a load balancer")
        ports: set[int] = set()
        for k, ls in enumerate(lb.get("listeners") or []):
            if not isinstance(ls, dict):
                continue
            if ls.get("port") in ports:
                problems.append(Problem(f"{lp}.listeners[{k}].port",
                                        f"port {ls.get('port')} has a listener already"))
            ports.add(ls.get("port"))
            tg = ls.get("target_group")
            if isinstance(tg, str) and tg not in tgs:
                problems.append(Problem(f"{lp}.listeners[{k}].target_group",
                                        f"unknown target group {tg!r} in VPC {vname}"))
    vnet = None
    try:
        vnet = ipaddress.IPv4Network(vpc.get("cidr"))
    except (ValueError, TypeError):
        pass
    problems += _check_private_dns(vname, vpc, vp, vpcs)
    for tname, tg in tgs.items():
        if not isinstance(tg, dict):
            continue
        if isinstance(tg.get("targets"), list) and len(tg["targets"]) > MAX_BACKENDS:
            problems.append(Problem(f"{vp}.target_groups.{tname}.targets",
                                    f"{len(tg['targets'])} targets; the forwarder takes at "
                                    f"most {MAX_BACKENDS} per target group"))
        for k, target in enumerate(tg.get("targets") or []):
            if not isinstance(target, str):
                continue
            tp = f"{vp}.target_groups.{tname}.targets[{k}]"
            host, _, port = target.partition(":")
            if port and not 1 <= int(port) <= 65535:
                problems.append(Problem(tp, f"port {port} is not 1-65535"))
            try:
                ip = ipaddress.IPv4Address(host)
            except ValueError:
                if host not in instances:
                    problems.append(Problem(tp, f"{host!r} is neither an instance of VPC "
                                            f"{vname} nor an IP address"))
                continue
            in_vpc = vnet is not None and ip in vnet
            if not in_vpc and not any(ip in n for n in PRIVATE_TARGET_RANGES):
                problems.append(Problem(tp, f"{host} is publicly routable: ip targets must be "
                                        f"in the VPC, RFC 1918 ranges or 100.64.0.0/10"))
    backed: dict[str, str] = {}
    for sname, es in mapping(vpc.get("endpoint_services")).items():
        if not isinstance(es, dict):
            continue
        for k, lname in enumerate(es.get("load_balancers") or []):
            sp = f"{vp}.endpoint_services.{sname}.load_balancers[{k}]"
            if isinstance(lname, str) and lname not in lbs:
                problems.append(Problem(sp, f"unknown load balancer {lname!r} in VPC {vname}"))
            elif lname in backed:
                problems.append(Problem(sp, f"NLB {lname} already backs endpoint service "
                                        f"{backed[lname]} (an NLB backs at most one)"))
            else:
                backed[lname] = sname
    for ename, ep in mapping(vpc.get("endpoints")).items():
        if not isinstance(ep, dict):
            continue
        ep_ = f"{vp}.endpoints.{ename}"
        problems += one_subnet_per_az(ep.get("subnets"), vpc, f"{ep_}.subnets", "an endpoint")
        problems += known_groups(ep.get("security_groups"), vpc, vname,
                                 f"{ep_}.security_groups")
        if ep.get("ip_address_type", "ipv4") != "ipv4":
            problems.append(Problem(f"{ep_}.ip_address_type", "ipv6 and dualstack endpoints "
                                    "are not supported by vpclab"))
        svc = ep.get("service")
        if not isinstance(svc, str) or "/" not in svc:
            continue                      # execute-api: API Gateway's, in every AZ asked
        svpc_name, _, sname = svc.partition("/")
        svpc = mapping(vpcs.get(svpc_name))
        es = mapping(mapping(svpc.get("endpoint_services")).get(sname))
        if not es:
            problems.append(Problem(f"{ep_}.service", f"no endpoint service {sname!r} in VPC "
                                    f"{svpc_name!r}"))
            continue
        service_azs: set[str] = set()
        for lname in es.get("load_balancers") or []:
            service_azs |= subnet_azs(mapping(mapping(svpc.get("load_balancers")).get(lname)).get("subnets"), svpc)
        for k, s_ in enumerate(ep.get("subnets") or []):
            azs = subnet_azs([s_], vpc)
            if azs and not azs <= service_azs:
                problems.append(Problem(f"{ep_}.subnets[{k}]", f"{s_} is in {', '.join(azs)}, where "
                                        f"{svc} has no load balancer node (its AZs: "
                                        f"{', '.join(sorted(service_azs)) or 'none'})"))
    return problems


