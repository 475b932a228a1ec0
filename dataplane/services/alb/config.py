"""An ALB node's configuration: the JSON `up` writes (contract: notes/alb-config.md), as
typed, frozen dataclasses.

`AlbConfig.from_json(doc)` reads it once, at start, and refuses what the node cannot
serve with a `ConfigError` naming the field's path (dataplane/compile/spec.py's `Record`
reader, as API Gateway's front end does):

    listeners[0].rules[1].conditions[0].field: 'cookie' is not one of host-header, ...
    target_groups.web-tg.health_check.matcher: '600' is not a code 200-499, a list or a range
    listeners[0].default.target_groups[0].name: unknown target group 'web'; known: api-tg

The model has validated the configuration already (AWS-FACTS-HTTP 1.11's limits); the
node checks what it needs to run: types, the condition fields and their values (CIDRs,
`http-header` names), the action types and their fields, unique priorities per listener,
target groups that exist, a health check matcher it can parse, a TLS cert and key on an
HTTPS listener, an idle timeout of 1–4,000 s. Target groups speak HTTP to their targets:
an `HTTPS` target group is refused (the engine has no TLS towards backends yet).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from dataplane.compile.spec import Address, Record, SpecError
from dataplane.services.serving import read_keyed

CONDITION_FIELDS = ("host-header", "path-pattern", "http-header", "http-request-method",
                    "query-string", "source-ip")
ACTION_TYPES = ("forward", "fixed-response", "redirect")
ALGORITHMS = ("round_robin", "least_outstanding_requests")
XFF_MODES = ("append", "preserve", "remove")
_CODE_RANGE = re.compile(r"(\d{3})(?:-(\d{3}))?")


def parse_matcher(text: str) -> frozenset[int]:
    """A health check matcher — `200`, `200,202`, `200-299`, or a list mixing both — as
    the set of codes it accepts (each 200-499, as AWS allows for HTTP checks). Raises
    ValueError saying what is wrong."""
    codes: set[int] = set()
    for part in text.split(","):
        match = _CODE_RANGE.fullmatch(part.strip())
        if not match:
            raise ValueError(f"{text!r} is not a code 200-499, a list (200,202) or a range "
                             "(200-299)")
        lo = int(match.group(1))
        hi = int(match.group(2) or lo)
        if not 200 <= lo <= hi <= 499:
            raise ValueError(f"{part.strip()!r} in {text!r} is not a code or a rising range "
                             "within 200-499")
        codes.update(range(lo, hi + 1))
    return frozenset(codes)


@dataclass(frozen=True)
class Node(Record):
    az: str
    subnet: str
    address: Address


@dataclass(frozen=True)
class QueryValue(Record):
    """A query-string condition's value: `key` None matches any key."""
    value: str
    key: str | None = None


@dataclass(frozen=True)
class Condition(Record):
    """One condition of a rule: `field`, `values` (ORed), and `name` for http-header.
    A query-string condition's values are `QueryValue`s (read by `from_json`)."""
    field: str
    values: tuple[str, ...]
    name: str | None = None

    @classmethod
    def from_json(cls, doc: Any) -> Any:
        if isinstance(doc, dict) and doc.get("field") == "query-string":
            return QueryStringCondition.from_json(doc)
        return super().from_json(doc)

    def __post_init__(self) -> None:
        if self.field not in CONDITION_FIELDS:
            raise SpecError("field", f"{self.field!r} is not one of {', '.join(CONDITION_FIELDS)}")
        if not self.values:
            raise SpecError("values", "a condition needs at least one value")
        if self.field == "http-header" and not self.name:
            raise SpecError("name", "an http-header condition needs the header's name")
        if self.field == "source-ip":
            for i, value in enumerate(self.values):
                try:
                    ipaddress.ip_network(value, strict=False)
                except ValueError:
                    raise SpecError(f"values[{i}]", f"{value!r} is not a CIDR") from None


@dataclass(frozen=True)
class QueryStringCondition(Record):
    field: str
    values: tuple[QueryValue, ...]
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.values:
            raise SpecError("values", "a condition needs at least one value")


@dataclass(frozen=True)
class TargetGroupRef(Record):
    name: str
    weight: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 999:
            raise SpecError("weight", f"{self.weight} is outside 0-999")


@dataclass(frozen=True)
class Action(Record):
    """forward (`target_groups`), fixed-response (`status`, `content_type`, `body`) or
    redirect (`protocol`, `host`, `port`, `path`, `query`, `status`)."""
    type: str
    target_groups: tuple[TargetGroupRef, ...] = ()
    status: int | None = None
    content_type: str | None = None
    body: str | None = None
    protocol: str | None = None
    host: str | None = None
    port: str | None = None
    path: str | None = None
    query: str | None = None

    @classmethod
    def from_json(cls, doc: Any) -> Any:
        if isinstance(doc, dict) and isinstance(doc.get("port"), int):
            doc = {**doc, "port": str(doc["port"])}     # a redirect port may come as a number
        return super().from_json(doc)

    def __post_init__(self) -> None:
        if self.type not in ACTION_TYPES:
            raise SpecError("type", f"{self.type!r} is not one of {', '.join(ACTION_TYPES)}")
        if self.type == "forward" and not self.target_groups:
            raise SpecError("target_groups", "a forward action needs at least one target group")
        if self.type == "fixed-response":
            if self.status is None or not 200 <= self.status <= 599:
                raise SpecError("status", f"{self.status!r} is not a status code 200-599")
        if self.type == "redirect":
            if self.status not in (301, 302):
                raise SpecError("status", f"{self.status!r} is not 301 or 302")
            if self.path is not None and not self.path.startswith("/"):
                raise SpecError("path", f"{self.path!r} does not start with /")


@dataclass(frozen=True)
class Rule(Record):
    priority: int
    conditions: tuple[Condition, ...]
    action: Action

    def __post_init__(self) -> None:
        if not 1 <= self.priority <= 50_000:
            raise SpecError("priority", f"{self.priority} is outside 1-50000")


@dataclass(frozen=True)
class TlsFiles(Record):
    """PEM files: `cert` holds the chain, `key` the private key."""
    cert: str
    key: str


@dataclass(frozen=True)
class Listener(Record):
    port: int
    protocol: str
    rules: tuple[Rule, ...]
    default: Action
    tls: TlsFiles | None = None

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise SpecError("port", f"{self.port} is not a TCP port")
        if self.protocol not in ("HTTP", "HTTPS"):
            raise SpecError("protocol", f"{self.protocol!r} is not HTTP or HTTPS")
        if self.protocol == "HTTPS" and self.tls is None:
            raise SpecError("tls", "an HTTPS listener needs its cert and key")
        seen: dict[int, int] = {}
        for i, rule in enumerate(self.rules):
            if rule.priority in seen:
                raise SpecError(f"rules[{i}].priority", f"{rule.priority} is also the priority "
                                f"of rules[{seen[rule.priority]}]")
            seen[rule.priority] = i


@dataclass(frozen=True)
class Target(Record):
    id: str
    ip: Address
    port: int

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise SpecError("port", f"{self.port} is not a TCP port")


@dataclass(frozen=True)
class HealthCheck(Record):
    """AWS's defaults; `port` None is the traffic port."""
    enabled: bool = True
    protocol: str = "HTTP"
    port: int | None = None
    path: str = "/"
    interval: int = 30
    timeout: int = 5
    healthy_threshold: int = 5
    unhealthy_threshold: int = 2
    matcher: str = "200"

    @classmethod
    def from_json(cls, doc: Any) -> Any:
        if isinstance(doc, dict):
            if doc.get("port") == "traffic-port":
                doc = {**doc, "port": None}
        return super().from_json(doc)

    def __post_init__(self) -> None:
        if self.protocol != "HTTP":
            raise SpecError("protocol", f"{self.protocol!r}: this node checks over HTTP only")
        if self.port is not None and not 0 < self.port < 65536:
            raise SpecError("port", f"{self.port} is not a TCP port")
        if not self.path.startswith("/"):
            raise SpecError("path", f"{self.path!r} does not start with /")
        if not 0 < self.timeout <= self.interval:
            raise SpecError("timeout", f"{self.timeout} s is not more than 0 and at most the "
                            f"interval ({self.interval} s)")
        for name in ("healthy_threshold", "unhealthy_threshold"):
            if getattr(self, name) < 1:
                raise SpecError(name, f"{getattr(self, name)} is not at least 1")
        try:
            parse_matcher(self.matcher)
        except ValueError as exc:
            raise SpecError("matcher", str(exc)) from None

    @property
    def codes(self) -> frozenset[int]:
        return parse_matcher(self.matcher)


@dataclass(frozen=True)
class TargetGroup(Record):
    name: str
    arn: str
    port: int
    targets: tuple[Target, ...]
    protocol: str = "HTTP"
    algorithm: str = "round_robin"
    health_check: HealthCheck = HealthCheck()

    def __post_init__(self) -> None:
        if self.protocol != "HTTP":
            raise SpecError("protocol", f"{self.protocol!r}: this node speaks HTTP to its "
                            "targets only")
        if self.algorithm not in ALGORITHMS:
            raise SpecError("algorithm", f"{self.algorithm!r} is not one of "
                            f"{', '.join(ALGORITHMS)}")


@dataclass(frozen=True)
class AlbConfig(Record):
    """One ALB node: where it listens, its rules, its target groups (see the contract)."""
    version: int
    lab: str
    region: str
    account_id: str
    vpc: str
    name: str
    arn: str
    node: Node
    socket: str
    access_log: str
    listeners: tuple[Listener, ...]
    target_groups: tuple[TargetGroup, ...]
    dns_name: str = ""
    idle_timeout: int = 60
    xff_mode: str = "append"
    xff_client_port: bool = False

    def __post_init__(self) -> None:
        if self.version != 1:
            raise SpecError("version", f"{self.version} is not a version this node reads (1)")
        if not 1 <= self.idle_timeout <= 4000:
            raise SpecError("idle_timeout", f"{self.idle_timeout} is outside 1-4000 seconds")
        if self.xff_mode not in XFF_MODES:
            raise SpecError("xff_mode", f"{self.xff_mode!r} is not one of {', '.join(XFF_MODES)}")
        if ":loadbalancer/" not in self.arn:
            raise SpecError("arn", f"{self.arn!r} is not a load balancer ARN "
                            "(…:loadbalancer/app/<name>/<id>)")
        ports = [listener.port for listener in self.listeners]
        names = {group.name for group in self.target_groups}
        for i, listener in enumerate(self.listeners):
            if listener.port in ports[:i]:
                raise SpecError(f"listeners[{i}].port", f"{listener.port} is used by two "
                                "listeners")
            actions = [(f"listeners[{i}].rules[{j}].action", rule.action)
                       for j, rule in enumerate(listener.rules)]
            for where, action in [*actions, (f"listeners[{i}].default", listener.default)]:
                for k, ref in enumerate(action.target_groups):
                    if ref.name not in names:
                        raise SpecError(f"{where}.target_groups[{k}].name", f"unknown target "
                                        f"group {ref.name!r}; known: "
                                        f"{', '.join(sorted(names)) or 'none'}")

    @classmethod
    def from_json(cls, doc: Any) -> "AlbConfig":
        """Reads the contract's JSON, whose `target_groups` is an object keyed by name."""
        if not isinstance(doc, dict):
            raise SpecError("", f"{doc!r} is not an object")
        return read_keyed(super().from_json, doc, "target_groups", "name: target group")

    def group(self, name: str) -> TargetGroup:
        return next(group for group in self.target_groups if group.name == name)

    @property
    def elb_id(self) -> str:
        """`app/<name>/<id>`, as the access log's `elb` field writes it."""
        return self.arn.split(":loadbalancer/", 1)[1]
