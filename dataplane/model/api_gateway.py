"""API Gateway in a lab: REST-API (V1) VPC links, and REST and HTTP APIs whose routes
are private integrations over VPC links (AWS-FACTS §4–5, AWS-FACTS-HTTP Part 1).

The topology file's section, beside `vpcs` (HTTP-API links are model/vpc_link.py's):

    api_gateway:
      vpc_links:
        rest-link: {type: REST, target: shop/web-nlb}          # V1: PrivateLink to one NLB
        app-link:  {vpc: shop, subnets: [a, b]}                # V2 (model/vpc_link.py)
      apis:
        orders:
          type: REST
          stages: [prod]
          routes:
            "ANY /orders/{proxy+}": {vpc_link: rest-link, uri: "http://orders.shop.internal/{proxy}"}
        catalog:
          type: HTTP
          stages: [$default, test]
          routes:
            "GET /items/{id}": {vpc_link: app-link, target: shop/web-nlb:80}
          throttle: {rate: 100, burst: 50}

From Python: `lab.add_rest_vpc_link("rest-link", "shop/web-nlb")` (after the NLB exists),
`lab.add_api("orders", "REST", ["prod"], {"ANY /orders/{proxy+}": {...}})`.

What the model derives, as AWS does:

* **API Gateway's VPC** (`Vpc.service == "API Gateway"`, named `apigw`, 10.0.0.0/16, never
  written in the file): its front end runs there, and a REST link's interface endpoint
  has one ENI per AZ in it. Its subnets are one /20 per AZ letter (`us-east-1a` is
  10.0.0.0/20, `…b` 10.0.16.0/20, …), made for the AZs of each REST link's NLB.
* A **REST link** is PrivateLink, made of the existing resources: on the customer's
  NLB an endpoint service `apigw.<link>` owned by the customer, its allowed principal
  API Gateway's account, acceptance not required; in API Gateway's VPC an interface
  endpoint `<link>` in the AZs of the NLB's nodes. Both are marked `managed_by` and are
  not written back. An NLB backs one endpoint service: a link on an NLB that already
  backs one (the file's `endpoint_services` come first, then links in file order) is
  `FAILED` with AWS's message and makes nothing; its routes answer 500.
* **API IDs**: 10 characters of [a-z0-9], a stable hash of the lab and the API's name.
  Invoke URLs: REST `https://<id>.execute-api.<region>.amazonaws.com/<stage>/`, HTTP the
  same without the stage for `$default`.
* A route's **integration**: REST routes name a REST link and a `uri`, whose host
  becomes the backend's `Host` and whose port (80 for http, 443 for https) picks the
  listener of the link's NLB — the uri never decides where traffic goes. HTTP routes
  name an HTTP (V2) link and a `target` (`TARGET_KINDS`): a listener `VPC/LB:PORT` of an
  NLB or an ALB in the link's VPC, or a Cloud Map service `cloudmap:NAMESPACE/SERVICE`
  with DiscoverInstances filters as a query (`?color=blue&stage=prod`), whose instances
  must have a port and an address in the link's VPC.
* Timeouts: REST 50–29,000 ms (default 29,000), HTTP 50–30,000 ms (default 30,000).
* The **account's throttle** (`api_gateway.account_throttle: {rate, burst}`), shared by
  every API, is AWS's default quota (10,000 requests/s, burst 5,000) unless the file
  raises it, as AWS does on request (bench/apigw raises it so that it measures the
  front end, not the quota).
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit

from . import names
from .checks import mapping
from .constants import DEFAULT_SG
from .enis import EniRequest
from .problems import Problem, TopologyError, add_unique

SERVICE = "API Gateway"
API_GATEWAY_CIDR = "10.0.0.0/16"      # API Gateway's own VPC (vpclab's choice)
PATH = "api_gateway.apis"
LINKS_PATH = "api_gateway.vpc_links"
NLB_TAKEN = "NLB is already associated with another VPC Endpoint Service"
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "ANY")
REST_TIMEOUT_MS = (50, 29000)
HTTP_TIMEOUT_MS = (50, 30000)
MAX_ROUTES = 300                      # AWS quota: routes per HTTP API (limits.md)
SEGMENT = re.compile(r"^(?:[A-Za-z0-9_.,:-]+|\{[A-Za-z0-9_]+\}|\{[A-Za-z0-9_]+\+\})$")


def api_id(lab: str, name: str) -> str:
    """10 characters of [a-z0-9], as AWS's API IDs; stable across `down` and `up`."""
    n = int.from_bytes(hashlib.sha256(f"{lab}/api/{name}".encode()).digest()[:8], "big")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    for _ in range(10):
        n, r = divmod(n, 36)
        out += alphabet[r]
    return out


def invoke_host(lab: str, region: str, name: str) -> str:
    return f"{api_id(lab, name)}.execute-api.{region}.amazonaws.com"


def invoke_url(lab: str, region: str, name: str, stage: str, scheme: str = "https") -> str:
    base = f"{scheme}://{invoke_host(lab, region, name)}/"
    return base if stage == "$default" else f"{base}{stage}/"


@dataclass(frozen=True)
class LbListener:
    """An integration target: a listener of a load balancer (`VPC/LB:PORT`), an NLB's
    or an ALB's (which one is the lab's: `kind_of`)."""
    vpc: str
    load_balancer: str
    port: int

    def kind_of(self, lab: Any) -> str:
        """"alb" or "nlb" (the model's tables: model/alb.py, model/privatelink.py)."""
        return "alb" if self.load_balancer in lab.vpcs[self.vpc].albs else "nlb"

    def __str__(self) -> str:
        return f"{self.vpc}/{self.load_balancer}:{self.port}"


@dataclass(frozen=True)
class CloudMapTarget:
    """An integration target: a Cloud Map service (`cloudmap:NAMESPACE/SERVICE?k=v&…`);
    the query is DiscoverInstances' QueryParameters (model/cloud_map.py)."""
    namespace: str
    service: str
    query: tuple[tuple[str, str], ...] = ()
    PREFIX = "cloudmap:"

    def __str__(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.query)
        return f"{self.PREFIX}{self.namespace}/{self.service}{'?' + q if q else ''}"


TARGET_KINDS = {"lb": LbListener, "cloudmap": CloudMapTarget}


def parse_target(text: str) -> LbListener | CloudMapTarget:
    """An HTTP route's `target` (its shape was checked by the schema)."""
    if text.startswith(CloudMapTarget.PREFIX):
        ref, _, query = text[len(CloudMapTarget.PREFIX):].partition("?")
        ns, _, svc = ref.partition("/")
        return CloudMapTarget(ns, svc, tuple(parse_qsl(query, keep_blank_values=True)))
    ref, _, port = text.rpartition(":")
    vpc, _, lb = ref.partition("/")
    return LbListener(vpc, lb, int(port))


@dataclass
class RestVpcLink:
    """A REST-API (V1) VPC link: PrivateLink from API Gateway's VPC to one NLB."""
    name: str
    target: str                       # "VPC/NLB"
    state: str = "AVAILABLE"          # or FAILED, with `message`
    message: str | None = None

    @property
    def target_ref(self) -> tuple[str, str]:
        vpc, _, lb = self.target.partition("/")
        return vpc, lb

    @property
    def endpoint_service(self) -> str:
        """Its endpoint service on the NLB (the dot keeps it apart from the file's names)."""
        return f"apigw.{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "REST", "target": self.target}


@dataclass
class Route:
    key: str                          # "GET /items/{id}", "ANY /{proxy+}", "$default"
    vpc_link: str
    uri: str | None = None            # REST
    target: str | None = None         # HTTP: "VPC/LB:PORT" or "cloudmap:NS/SERVICE?k=v"
    timeout_ms: int | None = None

    @property
    def method(self) -> str:
        return "ANY" if self.key == "$default" else self.key.split(" ", 1)[0]

    @property
    def path(self) -> str | None:
        return None if self.key == "$default" else self.key.split(" ", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"vpc_link": self.vpc_link}
        for key in ("uri", "target", "timeout_ms"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d


@dataclass
class Throttle:
    rate: float
    burst: int


@dataclass
class Api:
    name: str
    type: str                         # "REST" or "HTTP"
    stages: list[str]
    routes: dict[str, Route] = field(default_factory=dict)
    throttle: Throttle | None = None

    def timeout_ms(self, route: Route) -> int:
        return route.timeout_ms or (REST_TIMEOUT_MS if self.type == "REST" else HTTP_TIMEOUT_MS)[1]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "stages": list(self.stages),
                             "routes": {k: r.to_dict() for k, r in self.routes.items()}}
        if self.throttle is not None:
            d["throttle"] = {"rate": self.throttle.rate, "burst": self.throttle.burst}
        return d


def uri_port(uri: str) -> int:
    u = urlsplit(uri)
    return u.port or (443 if u.scheme == "https" else 80)


def service_vpc(lab: Any) -> Any:
    """API Gateway's VPC, made on first use: 10.0.0.0/16, its `default` group admitting
    the front end (anything in the VPC) on the endpoint ENIs."""
    vpc = lab.vpcs.get(names.APIGW)
    if vpc is None:
        vpc = lab.add_vpc(names.APIGW, API_GATEWAY_CIDR)
        vpc.service = SERVICE
        vpc.add_security_group(DEFAULT_SG, ingress=[{"protocol": "tcp",
                                                     "source": API_GATEWAY_CIDR}])
    return vpc


def _service_subnet(vpc: Any, az: str) -> str:
    """API Gateway's subnet in `az`: the AZ's letter picks its /20."""
    if az not in vpc.subnets:
        k = ord(az[-1]) - ord("a")
        vpc.add_subnet(az, f"10.0.{16 * (k % 16)}.0/20", az)
    return az


@dataclass(kw_only=True)
class LabBuilder:
    """API Gateway's part of `Lab`: REST links and APIs (`Lab` inherits it)."""
    rest_vpc_links: dict[str, RestVpcLink] = field(default_factory=dict)
    apis: dict[str, Api] = field(default_factory=dict)
    account_throttle: Throttle | None = None      # None: AWS's default quota

    def add_rest_vpc_link(self, name: str, target: str) -> RestVpcLink:
        """A REST link to the NLB `target` ("VPC/NLB"), which must exist already."""
        link = add_unique(self.rest_vpc_links, name, RestVpcLink(name, target),
                          "VPC link", LINKS_PATH)
        vname, lbname = link.target_ref
        customer = self.vpcs.get(vname)            # type: ignore[attr-defined]
        lb = customer.load_balancers.get(lbname) if customer else None
        if lb is None:
            del self.rest_vpc_links[name]
            raise TopologyError([Problem(f"{LINKS_PATH}.{name}.target",
                                         f"no NLB {target!r} (add it first)")])
        if any(lbname in es.load_balancers for es in customer.endpoint_services.values()):
            link.state, link.message = "FAILED", NLB_TAKEN
            return link
        apigw = service_vpc(self)
        subnets = [_service_subnet(apigw, customer.subnets[s].az) for s in lb.subnets]
        owner = f"VPC link {name}"
        customer.add_endpoint_service(link.endpoint_service, [lbname], acceptance_required=False,
                                      managed_by=owner)
        apigw.add_endpoint(name, f"{vname}/{link.endpoint_service}", subnets, managed_by=owner)
        return link

    def add_api(self, name: str, type: str, stages: Iterable[str],
                routes: Mapping[str, Route | Mapping[str, Any]] = (),
                throttle: Throttle | Mapping[str, Any] | None = None) -> Api:
        rs = {k: r if isinstance(r, Route) else
              Route(k, r["vpc_link"], r.get("uri"), r.get("target"), r.get("timeout_ms"))
              for k, r in dict(routes).items()}
        th = throttle if throttle is None or isinstance(throttle, Throttle) else \
            Throttle(throttle["rate"], throttle["burst"])
        api = add_unique(self.apis, name, Api(name, type, list(stages), rs, th), "API", PATH)
        service_vpc(self)
        return api


def read(lab: Any, doc: Mapping[str, Any]) -> None:
    section = doc.get("api_gateway") or {}
    for name, link in (section.get("vpc_links") or {}).items():
        if link.get("type") == "REST":
            lab.add_rest_vpc_link(name, link["target"])
    for name, api in (section.get("apis") or {}).items():
        lab.add_api(name, api["type"], api["stages"], api.get("routes") or {},
                    api.get("throttle"))
    if section.get("account_throttle"):
        th = section["account_throttle"]
        lab.account_throttle = Throttle(th["rate"], th["burst"])


def write(lab: Any, doc: dict[str, Any]) -> None:
    if lab.rest_vpc_links:
        links = doc.setdefault("api_gateway", {}).setdefault("vpc_links", {})
        links.update({n: l.to_dict() for n, l in lab.rest_vpc_links.items()})
    if lab.apis:
        doc.setdefault("api_gateway", {})["apis"] = {n: a.to_dict() for n, a in lab.apis.items()}
    if lab.account_throttle is not None:
        doc.setdefault("api_gateway", {})["account_throttle"] = {
            "rate": lab.account_throttle.rate, "burst": lab.account_throttle.burst}


def targeted_nlbs(lab: Any) -> list[tuple[str, str]]:
    """(VPC, NLB) of every NLB an HTTP route reaches, once each, in file order: each
    answers on its nodes' own addresses (compile/api_gateway.py). An ALB's nodes are
    addresses of their VPC already, and a Cloud Map instance is an address."""
    return list(dict.fromkeys((t.vpc, t.load_balancer) for api in lab.apis.values()
                              for r in api.routes.values() if r.target
                              for t in [parse_target(r.target)]
                              if isinstance(t, LbListener) and t.kind_of(lab) == "nlb"))


def forwarder_services(lab: Any) -> int:
    """One per (node, listener) of each NLB an HTTP route reaches."""
    return sum(len(lb.subnets) * len(lb.listeners) for lb in
               (lab.vpcs[v].load_balancers[n] for v, n in targeted_nlbs(lab)))


def eni_requests(lab: Any, vpc: Any) -> list[EniRequest]:
    """None of its own: a REST link's ENIs are its endpoint's (PrivateLink's kind)."""
    return []


def lab_problems(lab: Any) -> list[Problem]:
    """An endpoint service added from Python after a link took its NLB: refused, as AWS
    refuses a second endpoint service on one NLB."""
    problems = []
    for link in lab.rest_vpc_links.values():
        if link.state != "AVAILABLE":
            continue
        vname, lbname = link.target_ref
        for es in lab.vpcs[vname].endpoint_services.values():
            if es.managed_by is None and lbname in es.load_balancers:
                problems.append(Problem(f"vpcs.{vname}.endpoint_services.{es.name}",
                                        f"NLB {lbname} already backs VPC link {link.name}'s "
                                        f"endpoint service (an NLB backs at most one)"))
    return problems


def check(doc: dict[str, Any]) -> list[Problem]:
    """REST links name an NLB; routes parse, name links of their API's type, and their
    integrations resolve (the shapes are the schema's)."""
    problems: list[Problem] = []
    vpcs = mapping(doc.get("vpcs"))
    section = mapping(doc.get("api_gateway"))
    links = mapping(section.get("vpc_links"))
    for name, link in links.items():
        if isinstance(link, dict) and link.get("type") == "REST":
            problems += _check_rest_link(str(name), link, vpcs)
    for name, api in mapping(section.get("apis")).items():
        if isinstance(api, dict):
            problems += _check_api(str(name), api, links, vpcs,
                                   mapping(doc.get("cloud_map")))
    return problems


def _check_rest_link(name: str, link: dict, vpcs: dict) -> list[Problem]:
    lp = f"{LINKS_PATH}.{name}"
    problems = [Problem(f"{lp}.{key}", f"a REST VPC link has no {key} (it reaches its NLB "
                                       f"over PrivateLink from API Gateway's VPC)")
                for key in ("vpc", "subnets", "security_groups") if key in link]
    target = link.get("target")
    if not isinstance(target, str):
        return problems + [Problem(f"{lp}.target", "required key is missing (a REST VPC link "
                                                   "targets exactly one NLB: VPC/NLB)")]
    vname, _, lbname = target.partition("/")
    if vname not in vpcs:
        return problems + [Problem(f"{lp}.target", f"unknown VPC {vname!r}")]
    lb = mapping(mapping(vpcs[vname]).get("load_balancers")).get(lbname)
    if not isinstance(lb, dict):
        problems.append(Problem(f"{lp}.target", f"no load balancer {lbname!r} in VPC {vname}"))
    elif lb.get("type", "network") != "network":
        problems.append(Problem(f"{lp}.target", f"{target} is an {lb.get('type')} load "
                                "balancer; a REST VPC link targets exactly one NLB"))
    return problems


def _check_api(name: str, api: dict, links: dict, vpcs: dict,
               cloud_map: dict) -> list[Problem]:
    ap = f"{PATH}.{name}"
    problems: list[Problem] = []
    kind = api.get("type")
    if kind == "REST" and "$default" in (api.get("stages") or []):
        problems.append(Problem(f"{ap}.stages", "$default is a stage of HTTP APIs only"))
    for key, route in mapping(api.get("routes")).items():
        rp = f"{ap}.routes.{key}"
        problems += _check_route_key(str(key), kind, rp)
        if not isinstance(route, dict):
            continue
        lname = route.get("vpc_link")
        link = links.get(lname) if isinstance(lname, str) else None
        if not isinstance(link, dict):
            problems.append(Problem(f"{rp}.vpc_link", f"unknown VPC link {lname!r} (VPC links: "
                                    f"{', '.join(links) or 'none'})"))
            continue
        link_type = link.get("type", "HTTP")
        lo, hi = REST_TIMEOUT_MS if kind == "REST" else HTTP_TIMEOUT_MS
        t = route.get("timeout_ms")
        if isinstance(t, int) and not lo <= t <= hi:
            problems.append(Problem(f"{rp}.timeout_ms", f"{t} ms; a {kind} API's integration "
                                    f"timeout is {lo}-{hi} ms"))
        if kind == "REST":
            problems += _check_rest_route(route, link, lname, link_type, vpcs, rp)
        elif kind == "HTTP":
            problems += _check_http_route(route, link, lname, link_type, vpcs, cloud_map, rp)
    return problems


def _check_route_key(key: str, kind: Any, rp: str) -> list[Problem]:
    if key == "$default":
        return [] if kind == "HTTP" else [Problem(rp, "$default is a route of HTTP APIs only")]
    method, _, path = key.partition(" ")
    if method not in METHODS or not path.startswith("/"):
        return [Problem(rp, f"a route is 'METHOD /path' (METHOD one of {', '.join(METHODS)})"
                            f"{' or $default' if kind == 'HTTP' else ''}")]
    segments = [s for s in path[1:].split("/")] if path != "/" else []
    for k, seg in enumerate(segments):
        if not SEGMENT.match(seg):
            return [Problem(rp, f"path segment {seg!r}: segments are A-Z a-z 0-9 _ - . , : or "
                                f"a whole {{param}} / {{param+}}")]
        if seg.endswith("+}") and k != len(segments) - 1:
            return [Problem(rp, f"{seg} is greedy: it must be the last segment")]
    return []


def _integration(route: dict, rp: str, key: str, other: str, why_key: str,
                 why_not_other: str) -> tuple[str | None, list[Problem]]:
    """A route's integration field `key` (REST: uri, HTTP: target), and the problems of
    a missing one or of the other type's field `other` written instead."""
    problems = [Problem(f"{rp}.{other}", why_not_other)] if other in route else []
    value = route.get(key)
    if not isinstance(value, str):
        problems.append(Problem(f"{rp}.{key}", f"required key is missing ({why_key})"))
        return None, problems
    return value, problems


def _check_rest_route(route: dict, link: dict, lname: str, link_type: str, vpcs: dict,
                      rp: str) -> list[Problem]:
    if link_type != "REST":
        return [Problem(f"{rp}.vpc_link", f"{lname} is an HTTP-API (V2) VPC link; a REST "
                                          f"API's private integration uses a REST link")]
    uri, problems = _integration(route, rp, "uri", "target",
                                 "http://HOST/PATH: its host is the backend's Host header",
                                 "a REST route reaches its link's NLB; it names a uri, not a "
                                 "target")
    if uri is None:
        return problems
    try:
        port = uri_port(uri)
        host = urlsplit(uri).hostname
    except ValueError as e:
        return problems + [Problem(f"{rp}.uri", f"{uri!r} is not a URL ({e})")]
    if not host:
        return problems + [Problem(f"{rp}.uri", f"{uri!r} has no host")]
    vname, _, lbname = str(link.get("target", "")).partition("/")
    lb = mapping(mapping(mapping(vpcs.get(vname)).get("load_balancers")).get(lbname))
    ports = [l.get("port") for l in lb.get("listeners") or [] if isinstance(l, dict)]
    if lb and port not in ports:
        problems.append(Problem(f"{rp}.uri", f"port {port} of {uri} picks the listener of "
                                f"{vname}/{lbname}, which listens on "
                                f"{', '.join(map(str, ports)) or 'nothing'}"))
    params = set(re.findall(r"\{([A-Za-z0-9_]+)\+?\}", route_path(rp)))
    for used in re.findall(r"\{([A-Za-z0-9_]+)\}", uri):
        if used not in params:
            problems.append(Problem(f"{rp}.uri", f"{{{used}}} is not a path parameter of "
                                    f"the route"))
    return problems


def route_path(rp: str) -> str:
    """The path of the route whose field path is `rp` (`api_gateway.apis.X.routes.KEY`)."""
    key = rp.split(".routes.", 1)[1]
    return key.partition(" ")[2]


def _check_http_route(route: dict, link: dict, lname: str, link_type: str, vpcs: dict,
                      cloud_map: dict, rp: str) -> list[Problem]:
    if link_type != "HTTP":
        return [Problem(f"{rp}.vpc_link", f"{lname} is a REST (V1) VPC link; an HTTP API's "
                                          f"private integration uses an HTTP (V2) link")]
    target, problems = _integration(route, rp, "target", "uri",
                                    "an NLB or ALB listener VPC/LB:PORT, or "
                                    "cloudmap:NAMESPACE/SERVICE",
                                    "an HTTP route names its target (VPC/LB:PORT or "
                                    "cloudmap:NAMESPACE/SERVICE), not a uri")
    if target is None:
        return problems
    t = parse_target(target)
    if isinstance(t, CloudMapTarget):
        return problems + _check_cloud_map_target(t, link, lname, vpcs, cloud_map, rp)
    if t.vpc != link.get("vpc"):
        return problems + [Problem(f"{rp}.target", f"{target} is in VPC {t.vpc}; link {lname} "
                                                   f"reaches VPC {link.get('vpc')}")]
    lb = mapping(vpcs.get(t.vpc)).get("load_balancers")
    lb = mapping(lb).get(t.load_balancer)
    if not isinstance(lb, dict):
        return problems + [Problem(f"{rp}.target", f"no load balancer {t.load_balancer!r} in "
                                                   f"VPC {t.vpc}")]
    listeners = {l.get("port"): l for l in lb.get("listeners") or [] if isinstance(l, dict)}
    if t.port not in listeners:
        problems.append(Problem(f"{rp}.target", f"{t.vpc}/{t.load_balancer} has no listener on "
                                f"{t.port} (listeners: {', '.join(map(str, listeners)) or 'none'})"))
    elif mapping(listeners[t.port]).get("protocol") == "HTTPS":
        problems.append(Problem(f"{rp}.target", f"{target} is an HTTPS listener; vpclab's API "
                                f"Gateway speaks HTTP to private integrations (target an HTTP "
                                f"listener)"))
    return problems


def _check_cloud_map_target(t: CloudMapTarget, link: dict, lname: str, vpcs: dict,
                            cloud_map: dict, rp: str) -> list[Problem]:
    """The service exists in that namespace, and each of its instances (as the file
    registers them) has a port and an address the link reaches."""
    services = {(mapping(s).get("namespace"), n): s
                for n, s in mapping(cloud_map.get("services")).items()}
    svc = services.get((t.namespace, t.service))
    if not isinstance(svc, dict):
        known = ", ".join(f"{ns}/{n}" for ns, n in services) or "none"
        return [Problem(f"{rp}.target", f"no Cloud Map service {t.service!r} in namespace "
                                        f"{t.namespace!r} (services: {known})")]
    problems = []
    vpc = mapping(vpcs.get(link.get("vpc")))
    try:
        net = ipaddress.IPv4Network(vpc.get("cidr"))
    except (TypeError, ValueError):
        net = None
    for iid, inst in mapping(svc.get("instances")).items():
        inst = mapping(inst)
        if inst.get("port") is None:
            problems.append(Problem(f"{rp}.target", f"instance {iid} of {t.namespace}/"
                                    f"{t.service} has no port: API Gateway needs "
                                    f"AWS_INSTANCE_PORT to reach it"))
        where = inst.get("instance")
        if isinstance(where, str) and where.partition("/")[0] != link.get("vpc"):
            problems.append(Problem(f"{rp}.target", f"instance {iid} of {t.namespace}/"
                                    f"{t.service} is {where}, outside VPC {link.get('vpc')} "
                                    f"that link {lname} reaches"))
        ip = inst.get("ip")
        if isinstance(ip, str) and net is not None:
            try:
                inside = ipaddress.IPv4Address(ip) in net
            except ValueError:
                continue
            if not inside:
                problems.append(Problem(f"{rp}.target", f"instance {iid} of {t.namespace}/"
                                        f"{t.service} is {ip}, outside VPC {link.get('vpc')} "
                                        f"({net}) that link {lname} reaches"))
    return problems
