"""The front end's configuration: the JSON `up` writes (contract: notes/apigw-config.md),
as typed, frozen dataclasses.

`ApigwConfig.from_json(doc)` reads it once, at start, and refuses anything it cannot
serve with a `ConfigError` naming the field's path, the way the forwarder's spec does
(this module reuses dataplane/compile/spec.py's `Record` reader):

    apis[1].routes[0].link: unknown VPC link 'app-lnk'; known: app-link, rest-link
    links.bad-link.state: 'BROKEN' is not one of AVAILABLE, PENDING, DELETING, FAILED, INACTIVE
    apis[0].routes[0].timeout_ms: 30000 is outside 50-29000 for a REST API

What is checked beyond types: route keys (`METHOD /path` with whole-segment `{param}`s
and a greedy `{name+}` only last; `$default` only on HTTP APIs), REST's resource rules
(no two different `{param}` siblings; a `{proxy+}` is last, so nothing is below it), stage names
(alphanumerics, `-`, `_`, at most 128; `$default` only on HTTP APIs), the timeout ranges
(REST 50–29,000 ms, HTTP 50–30,000 ms), each route's link existing and being of the
API's type, unique API ids, and a TLS certificate when a listener wants TLS.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from dataplane.compile.spec import Address, Count, Record, SpecError
from dataplane.services.serving import read_keyed

ConfigError = SpecError

API_TYPES = ("REST", "HTTP")
LINK_STATES = ("AVAILABLE", "PENDING", "DELETING", "FAILED", "INACTIVE")
METHODS = ("ANY", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
TIMEOUT_MS = {"REST": (50, 29_000), "HTTP": (50, 30_000)}
DEFAULT_STAGE = "$default"
_STAGE = re.compile(r"[A-Za-z0-9_-]{1,128}")
# REST path parts: alphanumerics and _ - . , : (AWS-FACTS-HTTP 1.2); HTTP APIs are laxer.
_LITERAL = re.compile(r"[A-Za-z0-9_.,:~@!$&'()*+;=-]+")
_PARAM = re.compile(r"\{([A-Za-z0-9_.-]+)(\+?)\}")


def parse_route_key(key: str, api_type: str) -> tuple[str, tuple[str, ...]] | None:
    """`METHOD /a/{b}/{c+}` as (METHOD, ("a", "{b}", "{c+}")); `$default` as None.
    Raises ValueError saying what is wrong."""
    if key == "$default":
        if api_type != "HTTP":
            raise ValueError("$default is a route of HTTP APIs only")
        return None
    method, sep, path = key.partition(" ")
    if not sep or method not in METHODS:
        raise ValueError(f"{key!r} is not 'METHOD /path' with METHOD one of {', '.join(METHODS)}"
                         + (" or $default" if api_type == "HTTP" else ""))
    if not path.startswith("/"):
        raise ValueError(f"the path of {key!r} must start with /")
    segments = tuple(path[1:].split("/")) if path != "/" else ()
    for i, segment in enumerate(segments):
        param = _PARAM.fullmatch(segment)
        if param:
            if param.group(2) and i != len(segments) - 1:
                raise ValueError(f"greedy {segment} must be the last segment of {key!r}")
        elif not _LITERAL.fullmatch(segment) or "{" in segment or "}" in segment:
            raise ValueError(f"segment {segment!r} of {key!r}: a path part is letters, digits "
                             "and _ - . , : or a whole {param}")
    return method, segments


@dataclass(frozen=True)
class Listener(Record):
    address: Address
    port: int
    tls: bool = False


@dataclass(frozen=True)
class TlsFiles(Record):
    """PEM files: `cert` holds the chain, `key` the private key."""
    cert: str
    key: str


@dataclass(frozen=True)
class Throttle(Record):
    """A token bucket: `rate` tokens a second, at most `burst` in the bucket."""
    rate: Count
    burst: Count


@dataclass(frozen=True)
class Link(Record):
    """A VPC link as the front end sees it: its state (routes on a link that is not
    AVAILABLE answer 500), AWS's message for that state, and the namespace its
    connections are opened in (None: API Gateway's own, the REST links' endpoint ENIs)."""
    name: str
    id: str
    type: str
    state: str
    message: str | None = None
    netns: str | None = None

    def __post_init__(self) -> None:
        if self.type not in API_TYPES:
            raise SpecError("type", f"{self.type!r} is not one of {', '.join(API_TYPES)}")
        if self.state not in LINK_STATES:
            raise SpecError("state", f"{self.state!r} is not one of {', '.join(LINK_STATES)}")


@dataclass(frozen=True)
class Route(Record):
    """A route (HTTP API) or a resource's method (REST) and its private integration."""
    key: str
    link: str
    uri: str | None
    timeout_ms: int
    host: str
    addresses: tuple[Address, ...]
    port: int

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise SpecError("port", f"{self.port} is not a TCP port")


@dataclass(frozen=True)
class Api(Record):
    id: str
    name: str
    type: str
    stages: tuple[str, ...]
    routes: tuple[Route, ...]
    throttle: Throttle | None = None

    def __post_init__(self) -> None:
        if self.type not in API_TYPES:
            raise SpecError("type", f"{self.type!r} is not one of {', '.join(API_TYPES)}")
        if not self.stages:
            raise SpecError("stages", "an API needs at least one stage")
        for i, stage in enumerate(self.stages):
            if not (_STAGE.fullmatch(stage) or stage == DEFAULT_STAGE and self.type == "HTTP"):
                raise SpecError(f"stages[{i}]", f"{stage!r} is not a stage name (letters, digits, "
                                "- and _, at most 128" + (", or $default)" if self.type == "HTTP"
                                                          else ")"))
        if len(set(self.stages)) != len(self.stages):
            raise SpecError("stages", "a stage is listed twice")
        lo, hi = TIMEOUT_MS[self.type]
        keys: set[tuple[str, tuple[str, ...]] | None] = set()
        for i, route in enumerate(self.routes):
            try:
                parsed = parse_route_key(route.key, self.type)
            except ValueError as exc:
                raise SpecError(f"routes[{i}].key", str(exc)) from None
            if parsed in keys:
                raise SpecError(f"routes[{i}].key", f"{route.key!r} is there twice")
            keys.add(parsed)
            if not lo <= route.timeout_ms <= hi:
                raise SpecError(f"routes[{i}].timeout_ms", f"{route.timeout_ms} is outside "
                                f"{lo}-{hi} for a{'n' if self.type == 'HTTP' else ''} "
                                f"{self.type} API")
        if self.type == "REST":
            self._check_resources()

    def _check_resources(self) -> None:
        """REST resources form a tree: at most one `{param}` child per resource (a `{proxy+}`
        child may sit beside it)."""
        params: dict[tuple[str, ...], str] = {}
        for i, route in enumerate(self.routes):
            _, segments = parse_route_key(route.key, "REST")  # type: ignore[misc]
            for depth, segment in enumerate(segments):
                parent = segments[:depth]
                if segment.startswith("{") and not segment.endswith("+}"):
                    seen = params.setdefault(parent, segment)
                    if seen != segment:
                        raise SpecError(f"routes[{i}].key", f"{segment} and {seen} can't both be "
                                        f"children of /{'/'.join(parent)} (one path parameter "
                                        "per resource)")


@dataclass(frozen=True)
class ApigwConfig(Record):
    """The whole front end: where it listens, its links, its APIs (see the contract)."""
    version: int
    lab: str
    region: str
    account_id: str
    listeners: tuple[Listener, ...]
    socket: str
    log_dir: str
    links: tuple[Link, ...]
    apis: tuple[Api, ...]
    tls: TlsFiles | None = None
    account_throttle: Throttle = Throttle(10_000, 5_000)

    def __post_init__(self) -> None:
        if self.version != 1:
            raise SpecError("version", f"{self.version} is not a version this front end reads (1)")
        if any(listener.tls for listener in self.listeners) and self.tls is None:
            i = next(i for i, listener in enumerate(self.listeners) if listener.tls)
            raise SpecError(f"listeners[{i}].tls", "a TLS listener needs the 'tls' cert and key")
        links = {link.name: link for link in self.links}
        ids = [api.id for api in self.apis]
        for i, api in enumerate(self.apis):
            if api.id in ids[:i]:
                raise SpecError(f"apis[{i}].id", f"API id {api.id!r} is used twice")
            for j, route in enumerate(api.routes):
                link = links.get(route.link)
                if link is None:
                    raise SpecError(f"apis[{i}].routes[{j}].link", f"unknown VPC link "
                                    f"{route.link!r}; known: {', '.join(sorted(links)) or 'none'}")
                if link.type != api.type:
                    raise SpecError(f"apis[{i}].routes[{j}].link", f"{route.link!r} is a "
                                    f"{link.type} link; a {api.type} API's routes need a "
                                    f"{api.type} link")
                # A FAILED link has made nothing to connect to: its routes answer 500.
                if not route.addresses and link.state == "AVAILABLE":
                    raise SpecError(f"apis[{i}].routes[{j}].addresses",
                                    "a route over an available link needs at least one address")

    @classmethod
    def from_json(cls, doc: object) -> "ApigwConfig":
        """Reads the contract's JSON, whose `links` is an object keyed by link name."""
        if isinstance(doc, dict) and "links" in doc:
            return read_keyed(super().from_json, doc, "links", "link name: link")
        return super().from_json(doc)

    def link(self, name: str) -> Link:
        return next(link for link in self.links if link.name == name)
