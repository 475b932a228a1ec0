"""PrivateLink resources of a VPC: Network Load Balancers, target groups, endpoint
services (provider side) and interface endpoints (consumer side).

As the rest of the model, these are what the file says; what AWS derives is computed:

* IDs are stable hashes of the lab and the resource's path, in AWS's formats:
  `vpce-<17 hex>`, `vpce-svc-<17 hex>`, `eni-<17 hex>`; the ENI's interface name in
  the VPC namespace is `eni-<11 hex>` (15 characters, the kernel's limit).
* ENI addresses (`Lab.hyperplane_enis()`): one NLB ENI per NLB subnet, then one endpoint
  ENI per endpoint subnet, each the lowest address of its subnet that no instance holds,
  skipping AWS's five reserves.
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
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping

DEFAULT_IDLE_TIMEOUT = 350   # NLB TCP listener default (60-6000)


def stable_hex(*parts: str, n: int = 17) -> str:
    """`n` hex digits that depend only on `parts`: IDs survive `down` and `up`."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


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
        return d


@dataclass
class EndpointService:
    name: str
    load_balancers: list[str]
    acceptance_required: bool = True     # AWS's default: manual acceptance
    private_dns_name: str | None = None

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

    @property
    def service_ref(self) -> tuple[str, str]:
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


@dataclass
class HyperplaneEni:
    """An ENI that Hyperplane owns: an NLB node's or an interface endpoint's."""
    vpc: str
    kind: str            # "nlb" or "vpce"
    owner: str           # the NLB's or the endpoint's name
    subnet: str
    az: str | None
    ip: str
    eni_id: str          # eni-<17 hex>
    ifname: str          # eni-<11 hex>, its interface in the VPC namespace


def endpoint_id(lab: str, vpc: str, name: str) -> str:
    return "vpce-" + stable_hex(lab, vpc, "vpce", name)


def service_id(lab: str, vpc: str, name: str) -> str:
    return "vpce-svc-" + stable_hex(lab, vpc, "svc", name)


def eni_ids(lab: str, vpc: str, kind: str, owner: str, subnet: str) -> tuple[str, str]:
    h = stable_hex(lab, vpc, kind, owner, subnet)
    return "eni-" + h, "eni-" + h[:11]


def endpoint_dns_names(lab: str, region: str, vpc: str, endpoint: str, svc_vpc: str,
                       svc: str, az: str | None) -> tuple[str, str | None]:
    """(regional name, zonal name for `az`) of an endpoint (AWS-FACTS §1)."""
    suffix = stable_hex(lab, vpc, endpoint, "dns", n=8)
    base = f"{endpoint_id(lab, vpc, endpoint)}-{suffix}"
    domain = f"{service_id(lab, svc_vpc, svc)}.{region}.vpce.amazonaws.com"
    return f"{base}.{domain}", (f"{base}-{az}.{domain}" if az else None)
