"""AWS Cloud Map in a lab: namespaces, services and their registered instances
(AWS-FACTS §9, AWS-FACTS-HTTP 1.12).

The topology file's section, at the top level beside `vpcs`:

    cloud_map:
      namespaces:
        shop.local: {type: DNS_PRIVATE, vpc: shop}     # or {type: HTTP}: discovery by API only
      services:
        inventory:
          namespace: shop.local
          dns: {A: 60, SRV: 60}                        # record types and TTLs (DNS namespaces)
          health_check: {type: custom}                 # or omitted
          instances:
            i-blue:  {instance: shop/inv1, port: 8080, attributes: {color: blue}}
            i-green: {ip: 10.0.2.9, port: 8080, attributes: {color: green}}

From Python, the same: `lab.add_cloud_map_namespace("shop.local", "DNS_PRIVATE", vpc="shop")`,
`svc = lab.add_cloud_map_service("inventory", "shop.local", dns={"A": 60, "SRV": 60},
health_check="custom")`, `lab.add_cloud_map_instance("inventory", "i-blue",
instance="shop/inv1", port=8080, attributes={"color": "blue"})`.

What the model derives:

* IDs in AWS's formats, stable hashes of the lab and the names: a namespace `ns-<16 hex>`,
  a service `srv-<16 hex>`, its ARN `arn:aws:servicediscovery:<region>:<account>:service/srv-…`;
* each instance's reserved attributes: `AWS_INSTANCE_IPV4` (its `ip`, or the address of the
  lab instance it names) and `AWS_INSTANCE_PORT` (its `port`, when it has one); its initial
  health, under a custom health check, from `AWS_INIT_HEALTH_STATUS` (HEALTHY by default).

Checked (`check`), each problem naming its field: at most 50 namespaces; a DNS_PRIVATE
namespace names a VPC that exists and an HTTP one none, and its name does not sit under
the names the VPC's resolver already answers (`compute.internal`, `amazonaws.com`); a
service's namespace exists, `dns` only in a DNS_PRIVATE namespace; per instance exactly
one of `instance` (an existing `VPC/INSTANCE`) and `ip` (inside some VPC's CIDR), a port
1–65535 (required when the service has SRV records), at most 30 custom attributes, keys
≤ 255 and values ≤ 1,024 printable ASCII characters, an ID ≤ 64 characters (a DNS label in
a DNS namespace: it names `<id>.<service>.<namespace>`), at most 1,000 instances per
service. The reserved attributes vpclab derives may not be written; of the others only
`AWS_INIT_HEALTH_STATUS` (HEALTHY or UNHEALTHY, with a custom health check) is modelled.
`instance_problems` is the one check of an instance, shared with `vpclab cloudmap
register` (lab/realise_cloud_map.py).

API Gateway's routes name a service as `cloudmap:NAMESPACE/SERVICE?k=v`: `find_service`
finds it and `problems_for_link_target` says why it cannot be a target.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .checks import mapping
from .enis import EniRequest, stable_hex
from .problems import Problem, TopologyError, add_unique

PATH = "cloud_map"
NAMESPACE_TYPES = ("DNS_PRIVATE", "HTTP")
RECORD_TYPES = ("A", "SRV")
HEALTH_STATES = ("HEALTHY", "UNHEALTHY")
# AWS's quotas and limits (AWS-FACTS §9)
MAX_NAMESPACES = 50
MAX_INSTANCES = 1000
MAX_ATTRIBUTES = 30
MAX_KEY = 255
MAX_VALUE = 1024
MAX_INSTANCE_ID = 64
# Reserved attributes: what vpclab derives, and the one a user may set.
IPV4, PORT, INIT_HEALTH = "AWS_INSTANCE_IPV4", "AWS_INSTANCE_PORT", "AWS_INIT_HEALTH_STATUS"
DERIVED = (IPV4, PORT)
_INSTANCE_ID = re.compile(r"[0-9a-zA-Z_/:.@-]+")
_DNS_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_KEY = re.compile(r"[!-~]+")                                  # AWS: ^[a-zA-Z0-9!-~]+$
_VALUE = re.compile(r"([!-~][ \t!-~]*)?[!-~]?")               # printable, inner blanks
# Names the VPC's resolver answers itself (instances, endpoints, AWS's services).
RESERVED_DOMAINS = ("compute.internal", "amazonaws.com")


@dataclass
class CloudMapNamespace:
    name: str
    type: str                       # DNS_PRIVATE or HTTP
    vpc: str | None = None          # DNS_PRIVATE: the VPC whose resolver answers it

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type}
        if self.vpc is not None:
            d["vpc"] = self.vpc
        return d


@dataclass
class CloudMapInstance:
    id: str
    instance: str | None = None     # "VPC/INSTANCE" of the lab
    ip: str | None = None
    port: int | None = None
    attributes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for key in ("instance", "ip", "port"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if self.attributes:
            d["attributes"] = dict(self.attributes)
        return d


@dataclass
class CloudMapService:
    name: str
    namespace: str
    dns: dict[str, int] = field(default_factory=dict)     # {"A": ttl, "SRV": ttl}
    health_check: str | None = None                       # "custom" or None
    instances: list[CloudMapInstance] = field(default_factory=list)

    def instance(self, instance_id: str) -> CloudMapInstance | None:
        return next((i for i in self.instances if i.id == instance_id), None)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"namespace": self.namespace}
        if self.dns:
            d["dns"] = dict(self.dns)
        if self.health_check is not None:
            d["health_check"] = {"type": self.health_check}
        if self.instances:
            d["instances"] = {i.id: i.to_dict() for i in self.instances}
        return d


def namespace_id(lab: str, namespace: str) -> str:
    return "ns-" + stable_hex(lab, "cloudmap", namespace, n=16)


def service_id(lab: str, namespace: str, service: str) -> str:
    return "srv-" + stable_hex(lab, "cloudmap", namespace, service, n=16)


@dataclass(kw_only=True)
class LabBuilder:
    """Cloud Map's part of `Lab`: its namespaces and services (`Lab` inherits it)."""
    cloud_map_namespaces: dict[str, CloudMapNamespace] = field(default_factory=dict)
    cloud_map_services: dict[str, CloudMapService] = field(default_factory=dict)

    def add_cloud_map_namespace(self, name: str, type: str,
                                vpc: Any = None) -> CloudMapNamespace:
        """A namespace: DNS_PRIVATE (answered by `vpc`'s resolver) or HTTP."""
        ns = CloudMapNamespace(name, type, None if vpc is None else getattr(vpc, "name", vpc))
        return add_unique(self.cloud_map_namespaces, name, ns, "Cloud Map namespace",
                          f"{PATH}.namespaces")

    def add_cloud_map_service(self, name: str, namespace: str,
                              dns: Mapping[str, int] | None = None,
                              health_check: str | None = None,
                              instances: Mapping[str, Mapping[str, Any]] = ()) -> CloudMapService:
        """A service of `namespace`; `instances` as the file writes them ({id: fields})."""
        svc = add_unique(self.cloud_map_services, name,
                         CloudMapService(name, namespace, dict(dns or {}), health_check),
                         "Cloud Map service", f"{PATH}.services")
        for iid, fields in dict(instances).items():
            self.add_cloud_map_instance(name, iid, **fields)
        return svc

    def add_cloud_map_instance(self, service: str, id: str, instance: Any = None,
                               ip: str | None = None, port: int | None = None,
                               attributes: Mapping[str, str] | None = None) -> CloudMapInstance:
        """Registers instance `id` in `service`: a lab instance ("VPC/INSTANCE") or an
        address, with its port and custom attributes."""
        svc = self.cloud_map_services.get(service)
        if svc is None:
            raise TopologyError([Problem(f"{PATH}.services.{service}",
                                         "no such Cloud Map service (add it first)")])
        if svc.instance(id) is not None:
            raise TopologyError([Problem(f"{PATH}.services.{service}.instances.{id}",
                                         "duplicate instance ID")])
        inst = CloudMapInstance(id, instance, ip, port, dict(attributes or {}))
        svc.instances.append(inst)
        return inst


def read(lab: Any, doc: Mapping[str, Any]) -> None:
    section = doc.get("cloud_map") or {}
    for name, ns in (section.get("namespaces") or {}).items():
        lab.add_cloud_map_namespace(name, ns["type"], ns.get("vpc"))
    for name, svc in (section.get("services") or {}).items():
        lab.add_cloud_map_service(name, svc["namespace"], svc.get("dns"),
                                  (svc.get("health_check") or {}).get("type"),
                                  svc.get("instances") or {})


def write(lab: Any, doc: dict[str, Any]) -> None:
    if lab.cloud_map_namespaces or lab.cloud_map_services:
        section = doc.setdefault("cloud_map", {})
        if lab.cloud_map_namespaces:
            section["namespaces"] = {n: ns.to_dict() for n, ns in lab.cloud_map_namespaces.items()}
        if lab.cloud_map_services:
            section["services"] = {n: s.to_dict() for n, s in lab.cloud_map_services.items()}


def eni_requests(lab: Any, vpc: Any) -> list[EniRequest]:
    """None: Cloud Map is names and an API, no ENIs."""
    return []


def find_service(lab: Any, namespace: str, service: str) -> CloudMapService | None:
    """The service `service` of namespace `namespace`, or None."""
    svc = lab.cloud_map_services.get(service)
    return svc if svc is not None and svc.namespace == namespace else None


def problems_for_link_target(lab: Any, namespace: str, service: str) -> list[str]:
    """Why `cloudmap:NAMESPACE/SERVICE` cannot be an HTTP API's target over a VPC link
    (sentences; [] when it can): it must exist, and API Gateway reaches each instance
    on its AWS_INSTANCE_PORT, so every instance needs a port."""
    svc = find_service(lab, namespace, service)
    if svc is None:
        known = ", ".join(f"{s.namespace}/{s.name}" for s in lab.cloud_map_services.values())
        return [f"no Cloud Map service {namespace}/{service} (services: {known or 'none'})"]
    portless = [i.id for i in svc.instances if i.port is None]
    if portless:
        return [f"Cloud Map service {namespace}/{service} has instances without a port "
                f"({', '.join(portless)}); API Gateway connects to AWS_INSTANCE_PORT"]
    return []


def _vpc_cidrs(doc: dict) -> dict[str, ipaddress.IPv4Network]:
    out = {}
    for name, vpc in mapping(doc.get("vpcs")).items():
        try:
            out[name] = ipaddress.IPv4Network(mapping(vpc).get("cidr"))
        except (TypeError, ValueError):
            continue
    return out


def ip_problem(ip: str, cidrs: Mapping[str, ipaddress.IPv4Network]) -> str | None:
    """Why `ip` cannot be a registered instance's address: not IPv4, or in no VPC."""
    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError:
        return f"{ip!r} is not an IPv4 address"
    if not any(addr in net for net in cidrs.values()):
        where = ", ".join(f"{n} {c}" for n, c in cidrs.items()) or "none"
        return f"{ip} is outside every VPC of the lab (VPCs: {where})"
    return None


def instance_problems(instance_id: str, port: Any, attributes: Mapping[str, Any], path: str,
                      *, custom_health: bool, dns_namespace: bool,
                      srv: bool) -> list[Problem]:
    """Everything wrong with one instance's ID, port and attributes (AWS's limits, see
    the module docstring); its address is checked by the caller."""
    problems: list[Problem] = []
    if len(instance_id) > MAX_INSTANCE_ID:
        problems.append(Problem(path, f"instance ID is {len(instance_id)} characters; AWS "
                                f"allows {MAX_INSTANCE_ID}"))
    elif not _INSTANCE_ID.fullmatch(instance_id):
        problems.append(Problem(path, f"instance ID {instance_id!r} is not [0-9a-zA-Z_/:.@-]"))
    elif dns_namespace and not _DNS_LABEL.fullmatch(instance_id):
        problems.append(Problem(path, f"instance ID {instance_id!r} names the DNS record "
                                f"<id>.<service>.<namespace>: in a DNS namespace it is one "
                                f"label of [A-Za-z0-9_-]"))
    if port is None and srv:
        problems.append(Problem(f"{path}.port", "required: the service has SRV records, "
                                "which carry AWS_INSTANCE_PORT"))
    elif port is not None and (not isinstance(port, int) or isinstance(port, bool)
                               or not 1 <= port <= 65535):
        problems.append(Problem(f"{path}.port", f"{port!r} is not a port (1-65535)"))
    custom = 0
    for key, value in attributes.items():
        ap = f"{path}.attributes.{key}"
        if key in DERIVED:
            problems.append(Problem(ap, f"{key} is set by vpclab from the instance's "
                                    f"{'ip or instance' if key == IPV4 else 'port'}"))
            continue
        if key.startswith("AWS_") and key != INIT_HEALTH:
            problems.append(Problem(ap, f"reserved attribute {key} is not modelled by vpclab "
                                    f"(only {INIT_HEALTH} may be set)"))
            continue
        if key == INIT_HEALTH:
            if value not in HEALTH_STATES:
                problems.append(Problem(ap, f"{value!r} is not one of {', '.join(HEALTH_STATES)}"))
            elif not custom_health:
                problems.append(Problem(ap, f"{INIT_HEALTH} needs the service's custom health "
                                        f"check (health_check: {{type: custom}})"))
            continue
        custom += 1
        if len(key) > MAX_KEY or not _KEY.fullmatch(key):
            problems.append(Problem(ap, f"an attribute key is 1-{MAX_KEY} printable ASCII "
                                    f"characters without blanks"))
        if not isinstance(value, str):
            problems.append(Problem(ap, f"expected a string, got {type(value).__name__}"))
        elif len(value) > MAX_VALUE or not _VALUE.fullmatch(value):
            problems.append(Problem(ap, f"an attribute value is at most {MAX_VALUE} printable "
                                    f"ASCII characters (blanks inside only); this one is "
                                    f"{len(value)}"))
    if custom > MAX_ATTRIBUTES:
        problems.append(Problem(f"{path}.attributes", f"{custom} custom attributes; AWS allows "
                                f"{MAX_ATTRIBUTES} per instance"))
    return problems


def check(doc: dict[str, Any]) -> list[Problem]:
    section = mapping(doc.get("cloud_map"))
    vpcs = mapping(doc.get("vpcs"))
    cidrs = _vpc_cidrs(doc)
    problems: list[Problem] = []
    namespaces = mapping(section.get("namespaces"))
    if len(namespaces) > MAX_NAMESPACES:
        problems.append(Problem(f"{PATH}.namespaces", f"{len(namespaces)} namespaces; AWS "
                                f"allows {MAX_NAMESPACES} per Region"))
    for name, ns in namespaces.items():
        if isinstance(ns, dict):
            problems += _check_namespace(str(name), ns, vpcs)
    for name, svc in mapping(section.get("services")).items():
        if isinstance(svc, dict):
            problems += _check_service(str(name), svc, namespaces, vpcs, cidrs)
    return problems


def _check_namespace(name: str, ns: dict, vpcs: dict) -> list[Problem]:
    np_ = f"{PATH}.namespaces.{name}"
    vpc = ns.get("vpc")
    if ns.get("type") == "HTTP":
        return [Problem(f"{np_}.vpc", "an HTTP namespace is discovered through the API only; "
                                      "it has no VPC")] if vpc is not None else []
    if ns.get("type") != "DNS_PRIVATE":
        return []
    problems = []
    if vpc is None:
        problems.append(Problem(f"{np_}.vpc", "required: a DNS_PRIVATE namespace is answered "
                                              "by one VPC's resolver"))
    elif isinstance(vpc, str) and vpc not in vpcs:
        problems.append(Problem(f"{np_}.vpc", f"unknown VPC {vpc!r} (VPCs: "
                                f"{', '.join(vpcs) or 'none'})"))
    for domain in RESERVED_DOMAINS:
        if name == domain or name.endswith("." + domain):
            problems.append(Problem(np_, f"{name} is under {domain}, which the VPC's resolver "
                                         f"answers itself; choose another namespace name"))
    return problems


def _check_service(name: str, svc: dict, namespaces: dict, vpcs: dict,
                   cidrs: dict) -> list[Problem]:
    sp = f"{PATH}.services.{name}"
    problems: list[Problem] = []
    nsname = svc.get("namespace")
    ns = namespaces.get(nsname) if isinstance(nsname, str) else None
    if isinstance(nsname, str) and not isinstance(ns, dict):
        problems.append(Problem(f"{sp}.namespace", f"unknown namespace {nsname!r} (namespaces: "
                                f"{', '.join(namespaces) or 'none'})"))
    dns_namespace = isinstance(ns, dict) and ns.get("type") == "DNS_PRIVATE"
    dns = mapping(svc.get("dns"))
    if dns and isinstance(ns, dict) and not dns_namespace:
        problems.append(Problem(f"{sp}.dns", f"namespace {nsname} is an HTTP namespace: it has "
                                             f"no DNS records"))
    custom_health = mapping(svc.get("health_check")).get("type") == "custom"
    instances = mapping(svc.get("instances"))
    if len(instances) > MAX_INSTANCES:
        problems.append(Problem(f"{sp}.instances", f"{len(instances)} instances; AWS allows "
                                f"{MAX_INSTANCES} per service"))
    for iid, inst in instances.items():
        if not isinstance(inst, dict):
            continue
        ip_ = f"{sp}.instances.{iid}"
        problems += instance_problems(str(iid), inst.get("port"),
                                      mapping(inst.get("attributes")), ip_,
                                      custom_health=custom_health, dns_namespace=dns_namespace,
                                      srv="SRV" in dns)
        ref, ip = inst.get("instance"), inst.get("ip")
        if (ref is None) == (ip is None):
            problems.append(Problem(ip_, "an instance names exactly one of `instance` (a lab "
                                         "instance VPC/INSTANCE) and `ip`"))
        elif isinstance(ref, str):
            vname, _, iname = ref.partition("/")
            if vname not in vpcs:
                problems.append(Problem(f"{ip_}.instance", f"unknown VPC {vname!r} (VPCs: "
                                        f"{', '.join(vpcs) or 'none'})"))
            elif iname not in mapping(mapping(vpcs[vname]).get("instances")):
                problems.append(Problem(f"{ip_}.instance", f"VPC {vname} has no instance "
                                                           f"{iname!r}"))
        elif isinstance(ip, str):
            why = ip_problem(ip, cidrs)
            if why:
                problems.append(Problem(f"{ip_}.ip", why))
    return problems


def instance_address(lab: Any, inst: CloudMapInstance,
                     addresses: Mapping[tuple[str, str], str] | None = None) -> str:
    """The instance's IPv4: its `ip`, or the planned address of the lab instance it names."""
    if inst.ip is not None:
        return inst.ip
    vname, _, iname = str(inst.instance).partition("/")
    return (addresses if addresses is not None else lab.addresses())[(vname, iname)]


def registered_attributes(ip: str, port: int | None,
                          attributes: Mapping[str, str]) -> dict[str, str]:
    """An instance's attributes as Cloud Map holds them: the custom ones, then the
    reserved ones vpclab derives."""
    out = dict(attributes)
    out[IPV4] = ip
    if port is not None:
        out[PORT] = str(port)
    return out


def initial_health(custom_health: bool, attributes: Mapping[str, str]) -> str | None:
    """HEALTHY or UNHEALTHY under a custom health check (AWS_INIT_HEALTH_STATUS, HEALTHY
    by default); None without a health check."""
    return attributes.get(INIT_HEALTH, "HEALTHY") if custom_health else None

