"""Which API, stage and route a request is for: API Gateway's matching, per AWS-FACTS-HTTP
1.1-1.2, on the request's Host and path.

**API**: the Host header, port stripped, case-insensitive, must be
`<api-id>.execute-api.<region>.amazonaws.com` for an API of the configuration; anything
else (another host, an unknown id, no Host) is 403 Forbidden — vpclab's choice where
the sources disagree (a third-party page puts unknown ids with the Missing
Authentication Token causes).

**Stage**: REST — the first path segment must be a stage, else 403 Missing Authentication
Token; the rest is the resource path (`/prod` alone is `/`). HTTP — a first segment that
is a stage's name selects it and is stripped; otherwise the `$default` stage, if there
is one, takes the whole path; otherwise 404 Not Found (and no access log line: AWS writes
none either).

**REST resources** form a tree, walked segment by segment: at each level a literal child
that matches wins and is never gone back on — "non-proxy siblings are excluded from what
the proxy resource represents", so with `/orders` (GET) and `/{proxy+}`, `POST /orders`
and `GET /orders/7` are misses (the well-known Missing Authentication Token surprise).
Otherwise the one `{param}` child is tried, and if nothing under it has the method, the
`{proxy+}` sibling, which takes the rest of the path: so AWS's own example of
`/parent/{proxy+}` beside `/parent/{child}/{proxy+}` serves `/parent/q` (vpclab's reading;
AWS documents no algorithm). An explicit method wins over `ANY` on the same resource.
A miss is 403 Missing Authentication Token.

**HTTP API routes**, by AWS's priority: routes without a greedy variable whose every
segment matches (`{id}` counts as a full match), then routes with `{proxy+}`, then
`$default`. Within each class the most specific path pattern comes first — compared
segment by segment from the left, literal before `{param}` before `{proxy+}` — and on a
path, an explicit method before `ANY` (`ANY` "matches every method not defined for that
path"); a path without the method gives way to the next one. A miss is 404 Not Found.

Choices where the sources are silent: a greedy variable needs at least one segment
(`/{proxy+}` does not match `/`, as on REST, where the root is its own resource); a
trailing slash is ignored (`/items/` is `/items`); literal segments are compared after
percent-decoding, while parameter values keep the request's encoding (they are put back
into a URI as they came).
"""
from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from .config import DEFAULT_STAGE, parse_route_key

# segment kinds, in order of precedence
LITERAL, PARAM, GREEDY = 0, 1, 2


def split_path(path: str) -> list[str]:
    """`/a/b/` as ['a', 'b']; `/` as []."""
    segments = path.split("/")[1:]
    if segments and segments[-1] == "":
        segments.pop()
    return segments


def _kind(segment: str) -> tuple[int, str]:
    if segment.startswith("{"):
        if segment.endswith("+}"):
            return GREEDY, segment[1:-2]
        return PARAM, segment[1:-1]
    return LITERAL, segment


def _decoded(segment: str) -> str:
    return unquote(segment) if "%" in segment else segment


class Match:
    """A matched route: the route's target, its key (`GET /items/{id}`, `$default`), the
    path parameters (raw), and for REST the resource path (`/orders/{proxy+}`)."""
    __slots__ = ("target", "key", "params", "resource", "backend_path")

    def __init__(self, target: Any, key: str, params: dict[str, str], resource: str) -> None:
        self.target, self.key, self.params, self.resource = target, key, params, resource
        self.backend_path: str | None = None    # the personality's, computed once per match


class MatchCache:
    """The last matches of an API's routes by (method, path): a request for a path seen
    recently costs one dict lookup instead of a walk. Bounded: emptied at `SIZE` entries
    (so a scan of random paths costs a walk each, and memory stays small)."""
    SIZE = 4096
    __slots__ = ("routes", "seen")

    def __init__(self, routes: "RestRoutes | HttpRoutes") -> None:
        self.routes = routes
        self.seen: dict[tuple[str, str], Match | None] = {}

    def match(self, method: str, path: str) -> Match | None:
        key = (method, path)
        try:
            return self.seen[key]
        except KeyError:
            pass
        found = self.routes.match(method, path)
        if len(self.seen) >= self.SIZE:
            self.seen.clear()
        self.seen[key] = found
        return found


class _Resource:
    __slots__ = ("path", "children", "param", "greedy", "methods")

    def __init__(self, path: str) -> None:
        self.path = path
        self.children: dict[str, _Resource] = {}
        self.param: tuple[str, _Resource] | None = None
        self.greedy: tuple[str, _Resource] | None = None
        self.methods: dict[str, tuple[str, Any]] = {}


class RestRoutes:
    """A REST API's resource tree (see the module docstring)."""

    def __init__(self, routes: list[tuple[str, Any]]) -> None:
        self.root = _Resource("/")
        for key, target in routes:
            method, segments = parse_route_key(key, "REST")  # type: ignore[misc]
            node = self.root
            for segment in segments:
                kind, name = _kind(segment)
                path = node.path.rstrip("/") + "/" + segment
                if kind == LITERAL:
                    node = node.children.setdefault(segment, _Resource(path))
                else:
                    slot = "param" if kind == PARAM else "greedy"
                    if getattr(node, slot) is None:
                        setattr(node, slot, (name, _Resource(path)))
                    node = getattr(node, slot)[1]
            node.methods[method] = (key, target)

    def match(self, method: str, path: str) -> Match | None:
        params: dict[str, str] = {}
        found = self._walk(self.root, split_path(path), 0, method, params)
        if found is None:
            return None
        node, (key, target) = found
        return Match(target, key, params, node.path)

    def _walk(self, node: _Resource, segments: list[str], i: int, method: str,
              params: dict[str, str]) -> tuple[_Resource, tuple[str, Any]] | None:
        if i == len(segments):
            found = node.methods.get(method) or node.methods.get("ANY")
            return None if found is None else (node, found)
        segment = segments[i]
        child = node.children.get(_decoded(segment))
        if child is not None:            # a literal child excludes its generic siblings
            return self._walk(child, segments, i + 1, method, params)
        if node.param is not None:
            name, child = node.param
            params[name] = segment
            found = self._walk(child, segments, i + 1, method, params)
            if found is not None:
                return found
            del params[name]
        if node.greedy is not None:
            name, child = node.greedy
            found = child.methods.get(method) or child.methods.get("ANY")
            if found is not None:
                params[name] = "/".join(segments[i:])
                return child, found
        return None


class _Pattern:
    __slots__ = ("kinds", "names", "methods", "greedy")

    def __init__(self, segments: tuple[str, ...]) -> None:
        parts = [_kind(s) for s in segments]
        self.kinds = tuple(k for k, _ in parts)
        self.names = tuple(n for _, n in parts)
        self.greedy = bool(parts) and parts[-1][0] == GREEDY
        self.methods: dict[str, tuple[str, Any]] = {}

    def match(self, segments: list[str]) -> dict[str, str] | None:
        n = len(self.kinds)
        if self.greedy:
            if len(segments) < n:
                return None
            n -= 1
        elif len(segments) != n:
            return None
        params = {}
        for i in range(n):
            kind, name, segment = self.kinds[i], self.names[i], segments[i]
            if kind == LITERAL:
                if _decoded(segment) != name:
                    return None
            else:
                params[name] = segment
        if self.greedy:
            params[self.names[n]] = "/".join(segments[n:])
        return params


class HttpRoutes:
    """An HTTP API's routes by priority (see the module docstring)."""

    def __init__(self, routes: list[tuple[str, Any]]) -> None:
        self.literal: dict[tuple[str, ...], dict[str, tuple[str, Any]]] = {}
        patterns: dict[tuple[str, ...], _Pattern] = {}
        self.default: tuple[str, Any] | None = None
        for key, target in routes:
            parsed = parse_route_key(key, "HTTP")
            if parsed is None:
                self.default = (key, target)
                continue
            method, segments = parsed
            if not any(s.startswith("{") for s in segments):
                self.literal.setdefault(segments, {})[method] = (key, target)
            else:
                pattern = patterns.setdefault(segments, _Pattern(segments))
                pattern.methods[method] = (key, target)
        ordered = sorted(patterns.values(), key=lambda p: p.kinds)
        self.exact = [p for p in ordered if not p.greedy]
        self.greedy = [p for p in ordered if p.greedy]

    def match(self, method: str, path: str) -> Match | None:
        segments = split_path(path)
        methods = self.literal.get(tuple(map(_decoded, segments)))
        if methods is not None:
            found = methods.get(method) or methods.get("ANY")
            if found is not None:
                return Match(found[1], found[0], {}, "")
        for patterns in (self.exact, self.greedy):
            for pattern in patterns:
                found = pattern.methods.get(method) or pattern.methods.get("ANY")
                if found is None:
                    continue
                params = pattern.match(segments)
                if params is not None:
                    return Match(found[1], found[0], params, "")
        if self.default is not None:
            return Match(self.default[1], self.default[0], {}, "")
        return None


def select_stage(api_type: str, stages: frozenset[str], path: str) -> tuple[str, str] | None:
    """(stage, the path the routes see) for a request path (no query), or None: no stage.
    REST needs the stage as the first segment; HTTP APIs fall back to `$default`."""
    end = path.find("/", 1)
    first = path[1:] if end < 0 else path[1:end]
    if first in stages and first != DEFAULT_STAGE:
        return first, (path[end:] if end >= 0 else "/")
    if api_type == "HTTP" and DEFAULT_STAGE in stages:
        return DEFAULT_STAGE, path
    return None


def api_host(api_id: str, region: str) -> str:
    """The execute-api host name of an API: what its requests carry in Host."""
    return f"{api_id}.execute-api.{region}.amazonaws.com"


def host_of(host_header: str | None) -> str:
    """The Host header without its port, lower-cased ('' when absent)."""
    if not host_header:
        return ""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[:host.find("]") + 1]
    colon = host.rfind(":")
    return host[:colon] if colon >= 0 else host
