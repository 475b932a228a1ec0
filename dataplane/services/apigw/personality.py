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

**Private APIs** (AWS-FACTS §6, AWS-FACTS-HTTP 1.9). A request on a listener with PROXY
protocol (`request.proxy` set) came through an execute-api interface endpoint: the
endpoint is the header's vpce ID (an unknown one, or none — a LOCAL health check — is
403 Forbidden), and the API is named by one of three Host forms:

* `<api-id>.execute-api.<region>.amazonaws.com` (private DNS, or a Host override);
* one of the endpoint's own DNS names, the API in an `x-apigw-api-id` header (neither: 403);
* `<api-id>-<vpce-id>.execute-api.<region>.amazonaws.com`, only for an endpoint
  associated with the API (`vpc_endpoints`) and the one the call came through.

Only PRIVATE APIs are served there: a REGIONAL API (or an HTTP API) through an endpoint
is 403 `{"message":"Forbidden"}`, as AWS answers calls to public APIs from a VPC with
private DNS; so is a PRIVATE API on the public listener. Once stage and route are found
(routing misses answer first, as on AWS), the resource policy is evaluated
(dataplane/model/resource_policy.py) with the call's ARN and, from the PROXY header only,
`aws:SourceVpce` (the vpce ID), `aws:SourceVpc` (its VPC's ID), `aws:VpcSourceIp` (the
client's private address) and `aws:SourceIp` (the endpoint ENI's address, the header's
destination: "the VPC endpoint re-writes the original source IP"), plus
`aws:SecureTransport`, `aws:UserAgent`, `aws:Referer`, `aws:CurrentTime`, `aws:EpochTime`.
No policy is an implicit deny. A denied call is 403 AccessDeniedException (errors.py),
before throttling (vpclab's choice: a denied call takes no token). A call whose method
ARN is over 1,600 bytes is 414 there (AWS's quota; for a private API it caps the URL).
A REGIONAL API with a policy has it evaluated too, on the public listener, with
`aws:SourceIp` the client's.
The access log's source IP of a private API's call is the client's private address.

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

import re
import time
from typing import Any
from urllib.parse import urlsplit

from dataplane.model.resource_policy import ALLOW, EXPLICIT_DENY, IMPLICIT_DENY, api_arn
from dataplane.services.proxy.backend import BackendPool
from dataplane.services.proxy.http import header_pairs, origin_form
from dataplane.services.proxy.personality import Forward, Limits, Personality, Request
from dataplane.services.proxy.proxy_protocol import ProxyHeader

from . import accesslog, errors, headers
from .cloudmap import CloudMapBackends
from .config import Api, ApigwConfig, Route, VpcEndpoint
from .routing import HttpRoutes, Match, MatchCache, RestRoutes, api_host, host_of, select_stage
from .throttle import TokenBucket, admit


# AWS-FACTS-HTTP 1.3: a method ARN over this, where a resource policy applies, is 414
MAX_METHOD_ARN_BYTES = 1600


class RouteTarget:
    """A route's integration, prepared once (see the module docstring)."""
    __slots__ = ("key", "json_key", "host", "group", "cloudmap", "timeout_s", "available",
                 "message", "uri_parts", "uri_query")

    def __init__(self, route: Route, config: ApigwConfig, pool: BackendPool) -> None:
        link = config.link(route.link)
        self.key = route.key
        self.json_key = accesslog.json_string(route.key)
        self.host = route.host
        self.available = link.state == "AVAILABLE"
        # A FAILED link made nothing to connect to (no addresses): its routes answer 500.
        # A Cloud Map route's backend is chosen per request (cloudmap.py).
        self.cloudmap = CloudMapBackends(route.cloudmap, link.netns, pool) \
            if self.available and route.cloudmap is not None else None
        self.group = pool.group(link.netns, route.addresses, route.port) \
            if self.available and route.cloudmap is None else None
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
    """One stage of one API: its bucket, its log file (serving.TurnLog: written once per
    turn of the event loop), its request count."""
    __slots__ = ("name", "bucket", "log", "requests")

    def __init__(self, api: Api, name: str, log_dir: str) -> None:
        self.name = name
        self.bucket = (TokenBucket(api.throttle.rate, api.throttle.burst, time.monotonic())
                       if api.throttle else None)
        self.log = accesslog.open_log(log_dir, api.name, name)
        self.requests = 0


class ServedApi:
    __slots__ = ("id", "name", "rest", "host", "stages", "stage_names", "routes", "private",
                 "vpc_endpoints", "policy", "arn", "masked_arn")

    def __init__(self, api: Api, config: ApigwConfig, pool: BackendPool) -> None:
        self.id, self.name, self.rest = api.id, api.name, api.type == "REST"
        self.host = api_host(api.id, config.region)
        self.private = api.endpoint == "PRIVATE"
        self.vpc_endpoints = frozenset(api.vpc_endpoints)
        self.policy = api.policy
        self.arn = api_arn(config.region, config.account_id, api.id)
        self.masked_arn = api_arn(config.region, errors.masked_account(config.account_id), api.id)
        self.stages = {name: Stage(api, name, config.log_dir) for name in api.stages}
        self.stage_names = frozenset(api.stages)
        targets = [(r.key, RouteTarget(r, config, pool)) for r in api.routes]
        self.routes = MatchCache(RestRoutes(targets) if self.rest else HttpRoutes(targets))


class Endpoint:
    """An execute-api endpoint as the private listener sees it: its ID, its VPC's ID, its
    own DNS names (lower case)."""
    __slots__ = ("id", "vpc_id", "names")

    def __init__(self, endpoint: VpcEndpoint) -> None:
        self.id, self.vpc_id = endpoint.id, endpoint.vpc_id
        self.names = frozenset(name.lower() for name in endpoint.dns_names)


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
        self.by_id = {api.id: api for api in self.apis.values()}
        self.endpoints = {e.id: Endpoint(e) for e in config.vpc_endpoints}
        self.api_suffix = api_host("", config.region)        # .execute-api.<region>.amazonaws.com
        self.account = TokenBucket(config.account_throttle.rate, config.account_throttle.burst,
                                   time.monotonic())
        self.gateway_errors: dict[str, int] = dict.fromkeys([*errors.GATEWAY_ERRORS,
                                                             "access_denied"], 0)

    # -- the engine's calls -----------------------------------------------------------------
    def route(self, request: Request) -> Forward | bytes:
        host = client_request_id = api_id = None
        for name, value in request.headers:
            n = len(name)
            if n == 4 and name.lower() == "host":
                host = value
            elif n == 16 and name.lower() == "x-amzn-requestid":
                client_request_id = value
            elif n == 14 and name.lower() == "x-apigw-api-id":
                api_id = value
        endpoint = None
        if request.proxy is None:                    # the public listener
            api = self.apis.get(host_of(host))
            if api is not None and api.private:      # private APIs only through an endpoint
                api = None
        else:
            api, endpoint = self._through_endpoint(request.proxy, host_of(host), api_id)
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
        if api.private or api.policy is not None:
            call = f"/{selected[0]}/{request.method}/{selected[1][1:]}"   # root: /prod/GET/
            if len(api.arn) + len(call) > MAX_METHOD_ARN_BYTES:
                return self._gateway(exchange, request, "uri_too_long", None, None)
            denied = self._authorize(api, endpoint, request, call, now)
            if denied is not None:
                return self._denied(exchange, request, call, denied)
        if not admit(stage.bucket, self.account, time.monotonic()):
            return self._gateway(exchange, request, "throttled", None, None)
        route: RouteTarget = match.target
        if not route.available:
            return self._gateway(exchange, request, "link_failed", route.message, None)
        group = route.group
        if route.cloudmap is not None:
            group, why = route.cloudmap.choose()
            if group is None:
                return self._gateway(exchange, request, "integration_failure", why, None)
        proto = "https" if request.tls else "http"
        if endpoint is not None:
            head = headers.rest_backend_head(request.method, route.backend_target(match, query),
                                             route.host, request.headers, api.id,
                                             request.proxy.src, request.local_port, proto, now,
                                             headers.private_lines(endpoint.vpc_id, endpoint.id,
                                                                   request.tls))
        elif api.rest:
            head = headers.rest_backend_head(request.method, route.backend_target(match,
                                                                                   query),
                                             route.host, request.headers, api.id,
                                             request.client_ip, request.local_port, proto, now)
        else:
            head = headers.http_backend_head(request.method, target, route.host, request.headers,
                                             api.host, request.client_ip, request.local_ip,
                                             request.local_port, proto, now)
        exchange.t0 = time.monotonic()
        return Forward(group, head, route.timeout_s, exchange)

    def response(self, request: Request, forward: Forward, status: int, head: bytes,
                 body: bytes) -> bytes:
        exchange: Exchange = forward.context
        now = time.time()
        response_headers = header_pairs(head)
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

    # -- private APIs and resource policies -------------------------------------------------
    def _through_endpoint(self, proxy: ProxyHeader, host: str, api_id: str | None
                          ) -> tuple[ServedApi | None, Endpoint | None]:
        """The private API a call through an execute-api endpoint is for, by the three
        names of AWS-FACTS §6 (see the module docstring), and the endpoint; (None, None):
        403 Forbidden."""
        endpoint = self.endpoints.get(proxy.vpce) if proxy.vpce else None
        if endpoint is None:                 # LOCAL (a health check), or not an endpoint's
            return None, None
        if host.endswith(self.api_suffix):
            name = host[:-len(self.api_suffix)]
            api = self.by_id.get(name)
            if api is None:                  # <api-id>-<vpce-id>: associated endpoints only
                api_part, dash, vpce = name.partition("-vpce-")
                api = self.by_id.get(api_part) if dash else None
                if api is None or "vpce-" + vpce != endpoint.id or \
                        endpoint.id not in api.vpc_endpoints:
                    return None, None
        elif host in endpoint.names:         # the endpoint's own name: x-apigw-api-id says
            api = self.by_id.get(api_id.strip().lower()) if api_id else None
        else:
            return None, None
        if api is None or not api.private:   # public APIs are not served through endpoints
            return None, None
        return api, endpoint

    def _authorize(self, api: ServedApi, endpoint: Endpoint | None, request: Request,
                   call: str, now: float) -> str | None:
        """None if the API's resource policy allows `call` (`/<stage>/<VERB>/<path>`), else
        the outcome (`explicit_deny`, `implicit_deny`: also a private API without policy)."""
        if api.policy is None:
            return IMPLICIT_DENY
        ctx = {"resource": api.arn + call,
               "aws:SecureTransport": "true" if request.tls else "false",
               "aws:EpochTime": str(int(now)),
               "aws:CurrentTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
        if endpoint is not None:
            proxy = request.proxy
            ctx["aws:SourceVpce"] = endpoint.id
            ctx["aws:SourceVpc"] = endpoint.vpc_id
            ctx["aws:VpcSourceIp"] = proxy.src
            ctx["aws:SourceIp"] = proxy.dst          # rewritten by the endpoint, as on AWS
        else:
            ctx["aws:SourceIp"] = request.client_ip
        for name, value in request.headers:
            lname = name.lower()
            if lname == "user-agent":
                ctx["aws:UserAgent"] = value
            elif lname == "referer":
                ctx["aws:Referer"] = value
        outcome = api.policy.evaluate(ctx)
        return None if outcome == ALLOW else outcome

    def _denied(self, exchange: Exchange, request: Request, call: str, outcome: str) -> bytes:
        self.gateway_errors["access_denied"] += 1
        status, data, length = errors.access_denied(
            exchange.api.masked_arn + call, outcome == EXPLICIT_DENY, request.keep_alive,
            exchange.request_id, exchange.extended_id, request.time)
        self._log(exchange, request, status, length, None, None)
        return data

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
        proxy = request.proxy
        # a private API's caller is the client in its VPC ($context.identity.sourceIp)
        ip = proxy.src if proxy is not None and proxy.src else request.client_ip
        if exchange.api.rest:
            line = accesslog.rest_line(ip, request.time, request.method,
                                       match.resource if match else "-", status, length,
                                       exchange.request_id, exchange.extended_id)
        else:
            line = accesslog.http_line(exchange.request_id, ip, request.time,
                                       request.method, match.target.json_key if match else '"-"',
                                       status, length, latency_ms, error)
        exchange.stage.log.write(line)

    def stats(self) -> dict[str, Any]:
        return {"stages": {f"{api.name}/{stage.name}": stage.requests
                           for api in self.apis.values() for stage in api.stages.values()},
                "gateway_errors": dict(self.gateway_errors)}

    def close(self) -> None:
        for api in self.apis.values():
            for stage in api.stages.values():
                stage.log.close()

