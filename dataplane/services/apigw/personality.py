"""API Gateway's personality for the proxy engine: a request's API (by Host), stage and
route (routing.py), its throttling (throttle.py), the backend request and the client's
response (headers.py), every error (errors.py) and the access log line (accesslog.py).

Everything that can be worked out from the configuration is worked out once, when the
personality is made: each route's backend group (its VPC link's namespace, the NLB's or
the link target's addresses, the port — routes to the same backends share one pool),
whether its link is AVAILABLE, its timeout in seconds, its URI split into literal parts
and `{param}` names; each stage's bucket and log file. Per request there are two dict
lookups (host, then the recent matches: routing.py's `MatchCache`, else the walk), one header pass for the
head, one for the response, and one log line, written to its file at the end of the
event loop's turn together with the turn's other lines (one write per file and turn,
not one per request).

What goes to the backend:

* REST: `uri`'s path with `{param}` and `{proxy}` replaced by the matched values (as
  the request spelled them), then the request's query string (appended to any the URI
  has); `Host` from the route (the URI's host).
* HTTP APIs: the request's own path and query, stage prefix included for a named stage
  (AWS-FACTS §5: "private integrations put the stage in the backend path"), not for
  `$default`; `Host` from the route. The query string is passed on as the client
  encoded it (AWS's docs say API Gateway decodes request parameters; re-encoding them the
  same way is the identity for every well-formed query, so vpclab does not touch them).
"""
from __future__ import annotations

import asyncio
import re
import time
from typing import Any
from urllib.parse import urlsplit

from dataplane.services.proxy.backend import BackendPool
from dataplane.services.proxy.http import origin_form
from dataplane.services.proxy.personality import Forward, Limits, Personality, Request

from . import accesslog, errors, headers
from .config import Api, ApigwConfig, Route
from .routing import HttpRoutes, Match, MatchCache, RestRoutes, api_host, host_of, select_stage
from .throttle import TokenBucket, admit


class RouteTarget:
    """A route's integration, prepared once (see the module docstring)."""
    __slots__ = ("key", "json_key", "host", "group", "timeout_s", "available", "message",
                 "uri_parts", "uri_query")

    def __init__(self, route: Route, config: ApigwConfig, pool: BackendPool) -> None:
        link = config.link(route.link)
        self.key = route.key
        self.json_key = accesslog.json_string(route.key)
        self.host = route.host
        self.available = link.state == "AVAILABLE"
        # A FAILED link made nothing to connect to (no addresses): its routes answer 500.
        self.group = pool.group(link.netns, route.addresses, route.port) \
            if self.available else None
        self.timeout_s = route.timeout_ms / 1000.0
        self.message = link.message or f"VPC link {link.name} is {link.state}"
        self.uri_parts: list[str] = []
        self.uri_query = ""
        if route.uri:
            split = urlsplit(route.uri)
            # literal, name, literal, name, ..., literal
            self.uri_parts = re.split(r"\{([^}]+?)\+?\}", split.path or "/")
            self.uri_query = split.query

    def backend_path(self, params: dict[str, str]) -> str:
        """The URI's path with the path parameters put in."""
        parts = self.uri_parts
        path = parts[0]
        for i in range(1, len(parts), 2):
            path += params.get(parts[i], "") + parts[i + 1]
        return path

    def backend_target(self, match: Match, query: str) -> str:
        path = match.backend_path
        if path is None:
            path = match.backend_path = self.backend_path(match.params)
        if self.uri_query:
            query = self.uri_query + ("&" + query if query else "")
        return path + "?" + query if query else path


class Stage:
    """One stage of one API: its bucket, its log file (and whether it has lines to flush),
    its request count."""
    __slots__ = ("name", "bucket", "log", "dirty", "requests")

    def __init__(self, api: Api, name: str, log_dir: str) -> None:
        self.name = name
        self.bucket = (TokenBucket(api.throttle.rate, api.throttle.burst, time.monotonic())
                       if api.throttle else None)
        self.log = accesslog.open_log(log_dir, api.name, name)
        self.dirty = False
        self.requests = 0


class ServedApi:
    __slots__ = ("id", "name", "rest", "host", "stages", "stage_names", "routes")

    def __init__(self, api: Api, config: ApigwConfig, pool: BackendPool) -> None:
        self.id, self.name, self.rest = api.id, api.name, api.type == "REST"
        self.host = api_host(api.id, config.region)
        self.stages = {name: Stage(api, name, config.log_dir) for name in api.stages}
        self.stage_names = frozenset(api.stages)
        targets = [(r.key, RouteTarget(r, config, pool)) for r in api.routes]
        self.routes = MatchCache(RestRoutes(targets) if self.rest else HttpRoutes(targets))


class Exchange:
    """One request's context from route() to response() or error()."""
    __slots__ = ("api", "stage", "match", "request_id", "extended_id", "t0")

    def __init__(self, api: ServedApi, stage: Stage, request_id: str, extended_id: str) -> None:
        self.api, self.stage = api, stage
        self.match: Match | None = None
        self.request_id, self.extended_id = request_id, extended_id
        self.t0 = 0.0


class ApiGateway(Personality):
    """The personality (see the module docstring); `close()` closes the log files."""

    def __init__(self, config: ApigwConfig, pool: BackendPool | None = None,
                 limits: Limits = Limits()) -> None:
        self.limits = limits
        self.config = config
        self.pool = pool or BackendPool(limits)
        self.apis = {api.host: api for api in
                     (ServedApi(a, config, self.pool) for a in config.apis)}
        self.account = TokenBucket(config.account_throttle.rate, config.account_throttle.burst,
                                   time.monotonic())
        self.gateway_errors: dict[str, int] = dict.fromkeys(errors.GATEWAY_ERRORS, 0)
        self._unflushed: list[Stage] = []

    # -- the engine's calls -----------------------------------------------------------------
    def route(self, request: Request) -> Forward | bytes:
        host = client_request_id = None
        for name, value in request.headers:
            n = len(name)
            if n == 4 and name.lower() == "host":
                host = value
            elif n == 16 and name.lower() == "x-amzn-requestid":
                client_request_id = value
        api = self.apis.get(host_of(host))
        now = request.time
        if api is None:
            self.gateway_errors["forbidden"] += 1
            return errors.rest_error("forbidden", request.keep_alive, headers.request_id(),
                                     headers.extended_id(), now)[1]
        target = request.target
        if target[:1] != "/":
            target = origin_form(target)
        path, _, query = target.partition("?")
        selected = select_stage("REST" if api.rest else "HTTP", api.stage_names, path)
        if selected is None:             # no stage: no log line (AWS writes none either)
            self.gateway_errors["missing_token"] += 1
            if api.rest:
                return errors.rest_error("missing_token", request.keep_alive,
                                         client_request_id or headers.request_id(),
                                         headers.extended_id(), now)[1]
            return errors.http_error("missing_token", request.keep_alive, headers.extended_id(),
                                     now)[1]
        stage = api.stages[selected[0]]
        stage.requests += 1
        if api.rest:
            exchange = Exchange(api, stage, client_request_id or headers.request_id(),
                                headers.extended_id())
        else:
            rid = headers.extended_id()
            exchange = Exchange(api, stage, rid, rid)
        match = exchange.match = api.routes.match(request.method, selected[1])
        if match is None:
            return self._gateway(exchange, request, "missing_token", None, None)
        if not admit(stage.bucket, self.account, time.monotonic()):
            return self._gateway(exchange, request, "throttled", None, None)
        route: RouteTarget = match.target
        if not route.available:
            return self._gateway(exchange, request, "link_failed", route.message, None)
        proto = "https" if request.tls else "http"
        if api.rest:
            head = headers.rest_backend_head(request.method, route.backend_target(match,
                                                                                   query),
                                             route.host, request.headers, api.id,
                                             request.client_ip, request.local_port, proto, now)
        else:
            head = headers.http_backend_head(request.method, target, route.host, request.headers,
                                             api.host, request.client_ip, request.local_ip,
                                             request.local_port, proto, now)
        exchange.t0 = time.monotonic()
        return Forward(route.group, head, route.timeout_s, exchange)

    def response(self, request: Request, forward: Forward, status: int,
                 response_headers: list[tuple[str, str]], body: bytes) -> bytes:
        exchange: Exchange = forward.context
        now = time.time()
        if exchange.api.rest:
            data = headers.rest_response(status, response_headers, body, request.keep_alive,
                                         exchange.request_id, exchange.extended_id, now)
        else:
            data = headers.http_response(status, response_headers, body, request.keep_alive,
                                         exchange.request_id, now)
        self._log(exchange, request, status, len(body),
                  int((time.monotonic() - exchange.t0) * 1000), None)
        return data

    def error(self, kind: str, request: Request | None, forward: Forward | None,
              detail: str) -> bytes | None:
        if forward is None or request is None:
            return errors.front_door(kind, time.time())
        exchange: Exchange = forward.context
        return self._gateway(exchange, request, errors.ENGINE_ERRORS[kind], detail,
                             int((time.monotonic() - exchange.t0) * 1000))

    # -- the rest ---------------------------------------------------------------------------
    def _gateway(self, exchange: Exchange, request: Request, error: str, detail: str | None,
                 latency_ms: int | None) -> bytes:
        self.gateway_errors[error] += 1
        now = time.time()
        if exchange.api.rest:
            status, data = errors.rest_error(error, request.keep_alive, exchange.request_id,
                                             exchange.extended_id, now)
        else:
            status, data = errors.http_error(error, request.keep_alive, exchange.request_id, now)
        body_length = len(errors.GATEWAY_ERRORS[error][0 if exchange.api.rest else 1][1])
        self._log(exchange, request, status, body_length, latency_ms, detail)
        return data

    def _log(self, exchange: Exchange, request: Request, status: int, length: int,
             latency_ms: int | None, error: str | None) -> None:
        match = exchange.match
        if exchange.api.rest:
            line = accesslog.rest_line(request.client_ip, request.time, request.method,
                                       match.resource if match else "-", status, length,
                                       exchange.request_id, exchange.extended_id)
        else:
            line = accesslog.http_line(exchange.request_id, request.client_ip, request.time,
                                       request.method, match.target.json_key if match else '"-"',
                                       status, length, latency_ms, error)
        stage = exchange.stage
        stage.log.write(line)
        if not stage.dirty:
            stage.dirty = True
            if not self._unflushed:
                try:
                    asyncio.get_running_loop().call_soon(self.flush)
                except RuntimeError:          # no event loop (the unit tests): at once
                    self._unflushed.append(stage)
                    self.flush()
                    return
            self._unflushed.append(stage)

    def flush(self) -> None:
        """Writes the log lines of this turn of the event loop, one write per file."""
        for stage in self._unflushed:
            stage.log.flush()
            stage.dirty = False
        self._unflushed.clear()

    def stats(self) -> dict[str, Any]:
        return {"stages": {f"{api.name}/{stage.name}": stage.requests
                           for api in self.apis.values() for stage in api.stages.values()},
                "gateway_errors": dict(self.gateway_errors)}

    def close(self) -> None:
        self.flush()
        for api in self.apis.values():
            for stage in api.stages.values():
                stage.log.close()

