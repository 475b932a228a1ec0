"""Application Load Balancers and their (HTTP) target groups: the model floor of the ALB
kind (AWS-FACTS-HTTP 1.11 is the reference for every rule below).

An ALB is written in a VPC's `load_balancers` beside the NLBs, with `type: application`;
its target groups in `target_groups` with `protocol: HTTP`:

    load_balancers:
      web-alb:
        type: application
        subnets: [a, b]                   # one node per subnet; one subnet per AZ, ≥ 2 AZs
        security_groups: [alb-sg]         # on every node's ENI (the VPC's default if none)
        idle_timeout: 60                  # 1-4000 s, front and back connections
        xff_header_processing: append     # or preserve, remove
        listeners:
          - port: 80
            protocol: HTTP                # or HTTPS (the lab's CA signs the ALB's name)
            default: {forward: web-tg}
            rules:
              - {priority: 10, path: ["/api/*"], forward: {api-tg: 3, canary-tg: 1}}
              - {priority: 20, host: ["admin.*"], fixed_response: {status: 403, body: "no"}}
              - {priority: 30, header: {x-debug: ["1"]}, method: [POST],
                 redirect: {path: "/debug", status: 301}}
    target_groups:
      web-tg: {protocol: HTTP, port: 8080, targets: [web1, web2],
               algorithm: round_robin,     # or least_outstanding_requests
               health_check: {path: /healthz, interval: 5, healthy_threshold: 2}}

Conditions: `host`, `path`, `header` ({name: [values]}), `method`, `query` (`key=value`,
`value`, or {key, value}), `source_ip` (CIDRs); actions: `forward` (a group, or
{group: weight}), `fixed_response` ({status, content_type, body}), `redirect`
({protocol, host, port, path, query, status}, each defaulting to AWS's `#{…}`).

**Nodes.** Each subnet of an ALB gets a node: an instance-like namespace of the VPC
(`<lab>.<vpc>.<alb>.<subnet>`, model instance name `<alb>.<subnet>` — a dot, so it can't
collide with a user's instance), whose ENI carries the ALB's security groups and takes the
lowest free address after the user's instances (the builder adds the node as an
`Instance` with `managed_by`, so addresses, `sg:` membership, nftables, DNS and `exec`
treat it as the ENI it is; it is never written back to the file). The node's process is
the ALB itself (dataplane/services/alb, started by lab/realise_alb.py); targets see the
node's address.

IDs: the ALB's `arn:…:loadbalancer/app/<name>/<16 hex>`, its DNS name
`internal-<name>-<10 digits>.<region>.elb.amazonaws.com` (compile/alb.py), a target
group's `arn:…:targetgroup/<name>/<16 hex>`; stable hashes as every other ID.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .checks import known_groups, mapping, one_subnet_per_az
from .constants import DEFAULT_SG
from .enis import EniRequest, stable_hex
from .problems import Problem, TopologyError, add_unique

__all__ = ["AlbAction", "AlbCondition", "AlbRule", "AlbListener", "ApplicationLoadBalancer",
           "HttpTargetGroup", "VpcBuilder", "read", "write", "check", "eni_requests",
           "node_name", "is_alb", "HEALTH_CHECK_DEFAULTS"]

TYPE = "application"
DEFAULT_IDLE_TIMEOUT = 60
MAX_PRIORITY = 50_000
MAX_EVALUATIONS_PER_CONDITION = 3
MAX_EVALUATIONS_PER_RULE = 5
MAX_WILDCARDS_PER_RULE = 5
MAX_TARGET_GROUPS_PER_FORWARD = 5
MAX_HOST, MAX_PATH, MAX_HEADER_NAME, MAX_VALUE, MAX_METHOD = 128, 128, 40, 128, 40
# One-per-rule condition fields (http-header and query-string may repeat).
SINGLE = ("host", "path", "method", "source_ip")
FIELD_NAMES = {"host": "host-header", "path": "path-pattern", "header": "http-header",
               "method": "http-request-method", "query": "query-string",
               "source_ip": "source-ip"}
ACTIONS = ("forward", "fixed_response", "redirect")
# AWS's defaults for an ALB target group's health check (target-group-health-checks.md).
HEALTH_CHECK_DEFAULTS = {"protocol": "HTTP", "path": "/", "interval": 30, "timeout": 5,
                         "healthy_threshold": 5, "unhealthy_threshold": 2, "matcher": "200"}
REDIRECT_DEFAULTS = {"protocol": "#{protocol}", "host": "#{host}", "port": "#{port}",
                     "path": "/#{path}", "query": "#{query}"}
_HOST_CHARS = re.compile(r"^[A-Za-z0-9.*?-]+$")
_METHOD_CHARS = re.compile(r"^[A-Z_-]+$")
_VISIBLE = re.compile(r"^[!-~]+$")        # visible ASCII: what ALB conditions match


def node_name(alb: str, subnet: str) -> str:
    """The model name of an ALB node (an instance of the VPC, see the module docstring)."""
    return f"{alb}.{subnet}"


def is_alb(doc_lb: Any) -> bool:
    return isinstance(doc_lb, dict) and doc_lb.get("type") == TYPE


def is_http_group(doc_tg: Any) -> bool:
    return isinstance(doc_tg, dict) and doc_tg.get("protocol") in ("HTTP", "HTTPS")


@dataclass
class AlbCondition:
    """One condition: `field` in FIELD_NAMES' keys; `values` (strings, or for `query`
    (key | None, value) pairs); `name` for a header condition."""
    field: str
    values: list[Any]
    name: str | None = None

    def to_config(self) -> dict[str, Any]:
        d: dict[str, Any] = {"field": FIELD_NAMES[self.field]}
        if self.name is not None:
            d["name"] = self.name
        d["values"] = ([{"key": k, "value": v} for k, v in self.values]
                       if self.field == "query" else list(self.values))
        return d


@dataclass
class AlbAction:
    """forward ({group: weight}), fixed_response or redirect (their fields in `spec`)."""
    type: str
    forward: dict[str, int] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> "AlbAction":
        (kind, value), = doc.items()
        if kind == "forward":
            return cls(kind, {value: 1} if isinstance(value, str) else dict(value))
        return cls(kind, spec=dict(value))

    def to_doc(self) -> dict[str, Any]:
        if self.type == "forward":
            (name, w), = self.forward.items() if len(self.forward) == 1 else ((None, None),)
            return {"forward": name if name is not None and w == 1 else dict(self.forward)}
        return {self.type: dict(self.spec)}

    def to_config(self) -> dict[str, Any]:
        """The node's form (notes/alb-config.md), defaults filled in."""
        if self.type == "forward":
            return {"type": "forward", "target_groups": [{"name": n, "weight": w}
                                                         for n, w in self.forward.items()]}
        if self.type == "fixed_response":
            return {"type": "fixed-response", "status": self.spec["status"],
                    "content_type": self.spec.get("content_type", "text/plain"),
                    "body": self.spec.get("body", "")}
        return {"type": "redirect", **{k: str(self.spec.get(k, d))
                                       for k, d in REDIRECT_DEFAULTS.items()},
                "status": self.spec.get("status", 301)}


@dataclass
class AlbRule:
    priority: int
    conditions: list[AlbCondition]
    action: AlbAction

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> "AlbRule":
        conditions = []
        for key in FIELD_NAMES:
            if key not in doc:
                continue
            if key == "header":
                conditions += [AlbCondition("header", list(v), n) for n, v in doc[key].items()]
            elif key == "query":
                conditions.append(AlbCondition("query", [_query_pair(q) for q in doc[key]]))
            else:
                conditions.append(AlbCondition(key, list(doc[key])))
        action = AlbAction.from_doc({k: doc[k] for k in ACTIONS if k in doc})
        return cls(doc["priority"], conditions, action)

    def to_doc(self) -> dict[str, Any]:
        d: dict[str, Any] = {"priority": self.priority}
        for c in self.conditions:
            if c.field == "header":
                d.setdefault("header", {})[c.name] = list(c.values)
            elif c.field == "query":
                d["query"] = [{"key": k, "value": v} if k is not None else {"value": v}
                              for k, v in c.values]
            else:
                d[c.field] = list(c.values)
        d.update(self.action.to_doc())
        return d


def _query_pair(q: Any) -> tuple[str | None, str]:
    """`key=value` / `value` / {key, value} → (key or None, value)."""
    if isinstance(q, str):
        key, eq, value = q.partition("=")
        return (key, value) if eq else (None, q)
    return q.get("key"), q["value"]


@dataclass
class AlbListener:
    port: int
    default: AlbAction
    rules: list[AlbRule] = field(default_factory=list)
    protocol: str = "HTTP"

    def target_groups(self) -> list[str]:
        actions = [self.default] + [r.action for r in self.rules]
        return list(dict.fromkeys(g for a in actions for g in a.forward))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"port": self.port, "protocol": self.protocol,
                             "default": self.default.to_doc()}
        if self.rules:
            d["rules"] = [r.to_doc() for r in self.rules]
        return d


@dataclass
class ApplicationLoadBalancer:
    name: str
    subnets: list[str]
    listeners: list[AlbListener] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT
    xff_header_processing: str = "append"
    xff_client_port: bool = False
    type = TYPE

    @property
    def effective_security_groups(self) -> list[str]:
        """None named: the VPC's default group, as on AWS."""
        return list(self.security_groups) or [DEFAULT_SG]

    def nodes(self) -> list[str]:
        """The model names of its nodes, one per subnet."""
        return [node_name(self.name, s) for s in self.subnets]

    def target_groups(self) -> list[str]:
        return list(dict.fromkeys(g for l in self.listeners for g in l.target_groups()))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": TYPE, "subnets": list(self.subnets)}
        if self.security_groups:
            d["security_groups"] = list(self.security_groups)
        if self.idle_timeout != DEFAULT_IDLE_TIMEOUT:
            d["idle_timeout"] = self.idle_timeout
        if self.xff_header_processing != "append":
            d["xff_header_processing"] = self.xff_header_processing
        if self.xff_client_port:
            d["xff_client_port"] = True
        d["listeners"] = [l.to_dict() for l in self.listeners]
        return d


@dataclass
class HttpTargetGroup:
    name: str
    port: int
    targets: list[str] = field(default_factory=list)    # instance name, or ip / ip:port
    algorithm: str = "round_robin"
    health_check: dict[str, Any] = field(default_factory=dict)
    protocol: str = "HTTP"

    def target_addresses(self, instance_ips: Mapping[str, str]) -> list[tuple[str, str, int]]:
        """(id, ip, port) of every target: an instance's address, or the one written."""
        out = []
        for t in self.targets:
            host, _, port = t.partition(":")
            out.append((t, instance_ips.get(host, host), int(port) if port else self.port))
        return out

    def effective_health_check(self) -> dict[str, Any]:
        """AWS's defaults under what the file says; a timeout left out stays below the
        interval (AWS requires timeout < interval: the issue's `interval: 5` gets 4 s)."""
        hc = {**HEALTH_CHECK_DEFAULTS, "port": self.port, **self.health_check}
        if "timeout" not in self.health_check:
            hc["timeout"] = min(HEALTH_CHECK_DEFAULTS["timeout"], hc["interval"] - 1)
        return hc

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"protocol": self.protocol, "port": self.port,
                             "targets": list(self.targets)}
        if self.algorithm != "round_robin":
            d["algorithm"] = self.algorithm
        if self.health_check:
            d["health_check"] = dict(self.health_check)
        return d


@dataclass(kw_only=True)
class VpcBuilder:
    """The ALB kind's part of `Vpc` (`Vpc` inherits it)."""
    albs: dict[str, ApplicationLoadBalancer] = field(default_factory=dict)
    http_target_groups: dict[str, HttpTargetGroup] = field(default_factory=dict)

    def add_application_load_balancer(
            self, name: str, subnets: Iterable[str], listeners: Iterable[Mapping | AlbListener],
            security_groups: Iterable[str] = (), idle_timeout: int = DEFAULT_IDLE_TIMEOUT,
            xff_header_processing: str = "append",
            xff_client_port: bool = False) -> ApplicationLoadBalancer:
        """An ALB and its nodes (one instance-like ENI per subnet; the subnets must exist).
        Listeners as in the file: {port, protocol, default, rules}."""
        where = f"{self._path}.load_balancers"
        ls = [l if isinstance(l, AlbListener) else
              AlbListener(l["port"], AlbAction.from_doc(l["default"]),
                          [AlbRule.from_doc(r) for r in l.get("rules") or []],
                          l.get("protocol", "HTTP")) for l in listeners]
        missing = [s for s in subnets if s not in self.subnets]
        if missing:
            raise TopologyError([Problem(f"{where}.{name}.subnets", f"unknown subnet "
                                         f"{missing[0]!r} (add it first)")])
        alb = add_unique(self.albs, name, ApplicationLoadBalancer(
            name, list(subnets), ls, list(security_groups), idle_timeout,
            xff_header_processing, xff_client_port), "load balancer", where,
            shares_names_with=(self.load_balancers,))
        for s in alb.subnets:
            self.add_instance(node_name(name, s), s,
                              security_groups=alb.effective_security_groups,
                              managed_by=f"ALB {name}")
        return alb

    def add_http_target_group(self, name: str, port: int, targets: Iterable[str] = (),
                              algorithm: str = "round_robin",
                              health_check: Mapping[str, Any] | None = None,
                              protocol: str = "HTTP") -> HttpTargetGroup:
        return add_unique(self.http_target_groups, name, HttpTargetGroup(
            name, port, list(targets), algorithm, dict(health_check or {}), protocol),
            "target group", f"{self._path}.target_groups",
            shares_names_with=(self.target_groups,))


def read(lab: Any, doc: Mapping[str, Any]) -> None:
    for vname, v in doc["vpcs"].items():
        vpc = lab.vpcs[vname]
        for n, tg in (v.get("target_groups") or {}).items():
            if is_http_group(tg):
                vpc.add_http_target_group(n, tg["port"], tg.get("targets") or [],
                                          tg.get("algorithm", "round_robin"),
                                          tg.get("health_check"), tg["protocol"])
        for n, lb in (v.get("load_balancers") or {}).items():
            if is_alb(lb):
                vpc.add_application_load_balancer(
                    n, lb["subnets"], lb["listeners"], lb.get("security_groups") or [],
                    lb.get("idle_timeout", DEFAULT_IDLE_TIMEOUT),
                    lb.get("xff_header_processing", "append"), lb.get("xff_client_port", False))


def write(lab: Any, doc: dict[str, Any]) -> None:
    """ALBs and HTTP target groups into their VPCs' shared sections (PrivateLink's kind
    writes the NLBs and TCP groups there)."""
    for vname, vpc in lab.vpcs.items():
        if vname not in doc["vpcs"]:
            continue
        for key, table in (("load_balancers", vpc.albs), ("target_groups", vpc.http_target_groups)):
            for n, obj in table.items():
                doc["vpcs"][vname].setdefault(key, {})[n] = obj.to_dict()


def eni_requests(lab: Any, vpc: Any) -> list[EniRequest]:
    """None: an ALB's nodes are instance-like ENIs (see the module docstring)."""
    return []


def alb_arn(region: str, account: str, lab: str, vpc: str, name: str) -> str:
    return (f"arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/app/{name}/"
            f"{stable_hex(lab, vpc, 'alb', name, n=16)}")


def target_group_arn(region: str, account: str, lab: str, vpc: str, name: str) -> str:
    return (f"arn:aws:elasticloadbalancing:{region}:{account}:targetgroup/{name}/"
            f"{stable_hex(lab, vpc, 'tg', name, n=16)}")


# -- checks --------------------------------------------------------------------------------
def check(doc: dict[str, Any]) -> list[Problem]:
    """The meaning of every VPC's ALBs and HTTP target groups (the schema has their shape)."""
    problems: list[Problem] = []
    for vname, vpc in mapping(doc.get("vpcs")).items():
        if not isinstance(vpc, dict):
            continue
        vp = f"vpcs.{vname}"
        lbs, tgs = mapping(vpc.get("load_balancers")), mapping(vpc.get("target_groups"))
        for tname, tg in tgs.items():
            if is_http_group(tg) and tg.get("protocol") == "HTTPS":
                problems.append(Problem(f"{vp}.target_groups.{tname}.protocol",
                                        "HTTPS target groups are not carried by vpclab (its "
                                        "ALB speaks HTTP to targets); use HTTP"))
        for tname, tg in tgs.items():
            if not is_http_group(tg):
                continue
            hc = mapping(tg.get("health_check"))
            hp = f"{vp}.target_groups.{tname}.health_check"
            if hc.get("protocol", "HTTP") != "HTTP":
                problems.append(Problem(f"{hp}.protocol", "an HTTP target group's health "
                                                          "check is HTTP"))
            interval = hc.get("interval", HEALTH_CHECK_DEFAULTS["interval"])
            if isinstance(hc.get("timeout"), int) and isinstance(interval, int) \
                    and hc["timeout"] >= interval:
                problems.append(Problem(f"{hp}.timeout", f"{hc['timeout']} s; the timeout "
                                                         f"must be below the interval ({interval} s)"))
            matcher = hc.get("matcher")
            if isinstance(matcher, str) and any(
                    not 200 <= int(code) <= 499 for code in re.split(r"[,-]", matcher)
                    if code.isdigit()):
                problems.append(Problem(f"{hp}.matcher", f"{matcher}: an ALB's matcher codes "
                                                         f"are 200-499"))
        used_by_alb: dict[str, str] = {}
        for lname, lb in lbs.items():
            lp = f"{vp}.load_balancers.{lname}"
            if is_alb(lb):
                problems += _check_alb(str(vname), vpc, lb, lp, tgs, used_by_alb, str(lname))
            elif isinstance(lb, dict):
                for k, ls in enumerate(lb.get("listeners") or []):
                    tg = mapping(ls).get("target_group")
                    if isinstance(tg, str) and is_http_group(tgs.get(tg)):
                        problems.append(Problem(f"{lp}.listeners[{k}].target_group",
                                                f"{tg} is an HTTP target group (an ALB's); an "
                                                f"NLB listener forwards to a TCP group"))
        for sname, es in mapping(vpc.get("endpoint_services")).items():
            for k, lname in enumerate(mapping(es).get("load_balancers") or []):
                if isinstance(lname, str) and is_alb(lbs.get(lname)):
                    problems.append(Problem(f"{vp}.endpoint_services.{sname}.load_balancers[{k}]",
                                            f"{lname} is an Application Load Balancer; an "
                                            f"endpoint service is backed by NLBs"))
    return problems


def _check_alb(vname: str, vpc: dict, lb: dict, lp: str, tgs: dict,
               used_by_alb: dict[str, str], lname: str) -> list[Problem]:
    problems = one_subnet_per_az(lb.get("subnets"), vpc, f"{lp}.subnets", "an ALB", vname)
    subnets = lb.get("subnets")
    if isinstance(subnets, list) and not problems and len(subnets) < 2:
        problems.append(Problem(f"{lp}.subnets", "an Application Load Balancer needs subnets "
                                                 "in at least two availability zones"))
    problems += known_groups(lb.get("security_groups"), vpc, vname, f"{lp}.security_groups")
    ports: set[Any] = set()
    for k, ls in enumerate(lb.get("listeners") or []):
        if not isinstance(ls, dict):
            continue
        sp = f"{lp}.listeners[{k}]"
        if ls.get("port") in ports:
            problems.append(Problem(f"{sp}.port", f"port {ls.get('port')} has a listener already"))
        ports.add(ls.get("port"))
        problems += _check_action(ls.get("default"), f"{sp}.default", tgs, vname)
        priorities: dict[Any, int] = {}
        for j, rule in enumerate(ls.get("rules") or []):
            if not isinstance(rule, dict):
                continue
            rp = f"{sp}.rules[{j}]"
            pr = rule.get("priority")
            if pr in priorities:
                problems.append(Problem(f"{rp}.priority", f"priority {pr} is taken by rules"
                                                          f"[{priorities[pr]}] of this listener"))
            priorities.setdefault(pr, j)
            actions = [a for a in ACTIONS if a in rule]
            if len(actions) != 1:
                problems.append(Problem(rp, f"a rule has exactly one action (forward, "
                                            f"fixed_response or redirect); found "
                                            f"{', '.join(actions) or 'none'}"))
            else:
                problems += _check_action({actions[0]: rule[actions[0]]}, rp, tgs, vname)
            problems += check_conditions(rule, rp)
    for g in _forwarded_groups(lb):
        if g in tgs and is_http_group(tgs[g]):
            used_by_alb.setdefault(g, lname)
    return problems


def _forwarded_groups(lb: dict) -> list[str]:
    out = []
    for ls in lb.get("listeners") or []:
        for a in [mapping(ls).get("default")] + list(mapping(ls).get("rules") or []):
            fwd = mapping(a).get("forward")
            out += [fwd] if isinstance(fwd, str) else list(mapping(fwd))
    return out


def _check_action(action: Any, path: str, tgs: dict, vname: str) -> list[Problem]:
    problems: list[Problem] = []
    action = mapping(action)
    fwd = action.get("forward")
    if fwd is not None:
        groups = [fwd] if isinstance(fwd, str) else list(mapping(fwd))
        for g in groups:
            if not isinstance(g, str):
                continue
            if g not in tgs:
                problems.append(Problem(f"{path}.forward", f"unknown target group {g!r} in VPC "
                                                           f"{vname}"))
            elif not is_http_group(tgs[g]):
                problems.append(Problem(f"{path}.forward", f"{g} is a {mapping(tgs[g]).get('protocol', 'TCP')} "
                                                           f"target group (an NLB's); an ALB "
                                                           f"forwards to HTTP groups"))
        if isinstance(fwd, dict) and fwd and not any(isinstance(w, int) and w > 0
                                                     for w in fwd.values()):
            problems.append(Problem(f"{path}.forward", "every weight is 0: no request could be "
                                                       "forwarded"))
    fixed = action.get("fixed_response")
    if isinstance(fixed, dict) and isinstance(fixed.get("status"), int):
        if fixed["status"] // 100 not in (2, 4, 5):
            problems.append(Problem(f"{path}.fixed_response.status",
                                    f"{fixed['status']}: a fixed response is 2XX, 4XX or 5XX"))
    red = action.get("redirect")
    if isinstance(red, dict):
        port = red.get("port")
        if isinstance(port, str) and port.isdigit() and not 1 <= int(port) <= 65535:
            problems.append(Problem(f"{path}.redirect.port", f"{port} is not 1-65535"))
        if all(red.get(k, d) == d for k, d in REDIRECT_DEFAULTS.items()):
            problems.append(Problem(f"{path}.redirect", "a redirect that changes nothing "
                                                        "would redirect to itself (AWS refuses it)"))
    return problems


def _wildcards(s: str) -> int:
    return s.count("*") + s.count("?")


def check_conditions(rule: dict, rp: str) -> list[Problem]:
    """AWS's limits on a rule's conditions: values per condition and per rule, wildcards
    per rule, the characters and lengths each field takes."""
    problems: list[Problem] = []
    evaluations = wildcards = 0
    for key in FIELD_NAMES:
        if key not in rule:
            continue
        cp = f"{rp}.{key}"
        groups: list[tuple[str, list]] = (
            [(f"{cp}.{n}", v) for n, v in mapping(rule[key]).items()] if key == "header"
            else [(cp, rule[key] if isinstance(rule[key], list) else [])])
        for gp, values in groups:
            if len(values) > MAX_EVALUATIONS_PER_CONDITION:
                problems.append(Problem(gp, f"{len(values)} values; a condition takes at most "
                                            f"{MAX_EVALUATIONS_PER_CONDITION}"))
            evaluations += len(values)
            for k, v in enumerate(values):
                vp = f"{gp}[{k}]"
                if key == "query":
                    kq, vq = _query_pair(v) if isinstance(v, (str, dict)) else (None, "")
                    texts = [t for t in (kq, vq) if t is not None]
                else:
                    texts = [v] if isinstance(v, str) else []
                for t in texts:
                    if key != "source_ip":
                        wildcards += _wildcards(t)
                    problems += _check_value(key, t, vp)
        if key == "header":
            for n in mapping(rule[key]):
                if len(n) > MAX_HEADER_NAME or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", n):
                    problems.append(Problem(f"{cp}.{n}", f"{n!r} is not a header name of at most "
                                                         f"{MAX_HEADER_NAME} token characters "
                                                         f"(no wildcards in the name)"))
    if evaluations > MAX_EVALUATIONS_PER_RULE:
        problems.append(Problem(rp, f"{evaluations} match evaluations; a rule takes at most "
                                    f"{MAX_EVALUATIONS_PER_RULE}"))
    if wildcards > MAX_WILDCARDS_PER_RULE:
        problems.append(Problem(rp, f"{wildcards} wildcards; a rule takes at most "
                                    f"{MAX_WILDCARDS_PER_RULE}"))
    return problems


def _check_value(key: str, v: str, vp: str) -> list[Problem]:
    if key == "source_ip":
        try:
            net = ipaddress.ip_network(v, strict=True)
        except ValueError:
            return [Problem(vp, f"{v!r} is not a CIDR (e.g. 10.0.0.0/16)")]
        if str(net) == "255.255.255.255/32":
            return [Problem(vp, "255.255.255.255/32 is not accepted as a source-ip condition")]
        return []
    if key == "method":
        if len(v) > MAX_METHOD or not _METHOD_CHARS.match(v):
            return [Problem(vp, f"{v!r}: a method is at most {MAX_METHOD} of A-Z, '-', '_' "
                                f"(case-sensitive, no wildcards)")]
        return []
    limit = MAX_HOST if key == "host" else MAX_PATH if key == "path" else MAX_VALUE
    if len(v) > limit:
        return [Problem(vp, f"{len(v)} characters, at most {limit}")]
    if not _VISIBLE.match(v):
        return [Problem(vp, f"{v!r}: conditions match visible ASCII only (no spaces or "
                            f"control characters)")]
    if key == "host":
        if not _HOST_CHARS.match(v):
            return [Problem(vp, f"{v!r}: a host condition takes A-Z a-z 0-9 - . * ?")]
        if "." not in v:
            return [Problem(vp, f"{v!r}: a host condition has at least one '.'")]
        if not re.fullmatch(r"[A-Za-z*?]+", v.rsplit(".", 1)[1]):
            return [Problem(vp, f"{v!r}: only letters (or wildcards) may follow the last '.'")]
    if key == "path" and not v.startswith(("/", "*", "?")):
        return [Problem(vp, f"{v!r}: a path pattern starts with / (or a wildcard)")]
    return []

