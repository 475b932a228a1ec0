"""The ALB's personality for the proxy engine: per request, the listener (by the local
port), the generated refusals (405 TRACE, 463), the rule (rules.py), its action —
forward through a weighted target group to a target (targets.py), a fixed response, a
redirect (errors.py) — the request head for the target and the client's response
(headers.py), every generated error, and one access-log line (accesslog.py).

Everything that can be worked out from the configuration is, once: each listener's
compiled rules and actions, each target's backend group (one pooled group per target
address, so the node picks the target and the engine keeps its keep-alive connections),
each group's candidate targets (recomputed on a health change). Per request: one pass
over the headers (the Host, X-Forwarded-For, X-Amzn-Trace-Id, User-Agent, the lines to
pass on, the bytes received), the rule walk, one pick, one head, one log line.

Redirects substitute `#{protocol}` (`HTTP`/`HTTPS`, written lower-case in the URL),
`#{host}` (the Host without its port), `#{port}` (the listener's), `#{path}` (the path
without its leading `/`, as AWS's default path `/#{path}` implies) and `#{query}`
(without `?`) in each of the action's fields, then
`Location: <protocol>://<host>:<port><path>[?<query>]`.

Timeouts: a forwarded request gets `idle_timeout` seconds for its whole exchange with the
target (504 after it; from 5 s up the engine's sweep times it, up to 0.25 s late); connecting has 10 s (504), so with an idle timeout under 10 s the
idle timeout bounds the connect too. A client connection's head, body and keep-alive
idle time are bounded by `idle_timeout` as well (408 for a stalled request).
"""
from __future__ import annotations

import random
import time
from typing import Any

from dataplane.services.proxy.backend import BackendPool
from dataplane.services.proxy.http import origin_form, trace_id
from dataplane.services.proxy.personality import Forward, Limits, Personality, Request

from . import accesslog, errors, headers
from .config import Action, AlbConfig
from .rules import RuleTable, View, host_without_port
from .targets import TargetGroupState, TargetState, WeightedGroups

MAX_BODY_BYTES = 64 * 1024 * 1024
CONNECT_TIMEOUT_S = 10.0


def limits_for(config: AlbConfig) -> Limits:
    """The engine's bounds for an ALB node: AWS's 16 K request line, 16 K header line,
    64 K of headers, 32 K of response headers (502 over it); the idle timeout for reading
    a request and for idle clients."""
    idle = float(config.idle_timeout)
    return Limits(max_head_bytes=64 * 1024, max_request_line_bytes=16 * 1024,
                  max_header_line_bytes=16 * 1024, max_response_head_bytes=32 * 1024,
                  max_body_bytes=MAX_BODY_BYTES,
                  header_timeout_s=idle, body_timeout_s=idle, idle_timeout_s=idle,
                  connect_timeout_s=CONNECT_TIMEOUT_S)


class ForwardAction:
    __slots__ = ("groups",)
    name = "forward"

    def __init__(self, groups: WeightedGroups) -> None:
        self.groups = groups


class FixedResponse:
    __slots__ = ("status", "content_type", "body")
    name = "fixed-response"

    def __init__(self, action: Action) -> None:
        self.status = action.status or 200
        self.content_type = action.content_type or "text/plain"
        self.body = (action.body or "").encode("utf-8")


class Redirect:
    __slots__ = ("status", "protocol", "host", "port", "path", "query")
    name = "redirect"

    def __init__(self, action: Action) -> None:
        self.status = action.status or 301
        self.protocol = action.protocol or "#{protocol}"
        self.host = action.host or "#{host}"
        self.port = action.port or "#{port}"
        self.path = action.path or "/#{path}"
        self.query = action.query if action.query is not None else "#{query}"

    def location(self, protocol: str, host: str, port: int, path: str, query: str) -> str:
        values = (("#{protocol}", protocol), ("#{host}", host), ("#{port}", str(port)),
                  ("#{path}", path[1:] if path.startswith("/") else path), ("#{query}", query))

        def fill(text: str) -> str:
            if "#{" in text:
                for keyword, value in values:
                    text = text.replace(keyword, value)
            return text
        new_path = fill(self.path)
        if not new_path.startswith("/"):
            new_path = "/" + new_path
        new_query = fill(self.query)
        return (f"{fill(self.protocol).lower()}://{fill(self.host)}:{fill(self.port)}{new_path}"
                + (f"?{new_query}" if new_query else ""))


class ServedListener:
    __slots__ = ("port", "proto", "rules", "hits")

    def __init__(self, port: int, proto: str, rules: RuleTable) -> None:
        self.port, self.proto, self.rules = port, proto, rules
        self.hits: dict[int, int] = {rule.priority: 0 for rule in (*rules.rules, rules.default)}


class Exchange:
    """One forwarded request's context, from route() to response(), error() or closed()."""
    __slots__ = ("listener", "priority", "group", "target", "trace", "received", "request_line",
                 "user_agent", "request_time", "routed")

    def __init__(self, listener: ServedListener, priority: int, group: TargetGroupState,
                 target: TargetState, trace: str, received: int, request_line: str,
                 user_agent: str | None, request_time: float) -> None:
        self.listener, self.priority, self.group, self.target = listener, priority, group, target
        self.trace, self.received, self.request_line = trace, received, request_line
        self.user_agent = user_agent
        self.request_time = request_time      # from the whole request to routing it, seconds
        self.routed = time.monotonic()


class Alb(Personality):
    """The personality (see the module docstring); `close()` closes the access log."""

    def __init__(self, config: AlbConfig, pool: BackendPool | None = None,
                 rng: random.Random | None = None, log: Any = None) -> None:
        self.config = config
        self.limits = limits_for(config)
        self.pool = pool or BackendPool(self.limits)
        self.rng = rng or random.Random()
        self.elb = config.elb_id
        self.idle_timeout_s = float(config.idle_timeout)
        self.xff_mode, self.xff_client_port = config.xff_mode, config.xff_client_port
        self.groups = {g.name: TargetGroupState(g, self.pool) for g in config.target_groups}
        self.listeners: dict[int, ServedListener] = {}
        for listener in config.listeners:
            table = RuleTable(listener, self._action)
            self.listeners[listener.port] = ServedListener(listener.port,
                                                           listener.protocol.lower(), table)
        self.generated: dict[str, int] = {str(code): 0 for code in errors.PHRASES
                                          if code >= 400}
        self.log = log                  # the access log (a text file), or None

    def _action(self, action: Action) -> Any:
        if action.type == "forward":
            return ForwardAction(WeightedGroups([(self.groups[ref.name], ref.weight)
                                                 for ref in action.target_groups], self.rng))
        if action.type == "fixed-response":
            return FixedResponse(action)
        return Redirect(action)

    # -- the engine's calls -----------------------------------------------------------------
    def route(self, request: Request) -> Forward | bytes:
        now = request.time
        listener = self.listeners.get(request.local_port)
        method, target = request.method, request.target
        if target[:1] != "/":
            target = origin_form(target)
        host = user_agent = trace = None
        xff: list[str] = []
        lines: list[str] = []
        received = len(method) + len(request.target) + 12
        dropped = headers.TO_TARGET_DROPPED
        for name, value in request.headers:
            received += len(name) + len(value) + 4
            lname = name.lower()
            if lname in dropped:
                if lname == "x-forwarded-for":
                    xff.append(value)
                elif lname == "x-amzn-trace-id":
                    trace = value
                continue
            if lname == "host":
                host = value
            elif lname == "user-agent":
                user_agent = value
            lines.append(f"{name}: {value}\r\n")
        received += len(request.body)
        proto = listener.proto if listener else ("https" if request.tls else "http")
        port = request.local_port
        host_name = (host if ":" not in host else host_without_port(host)) if host \
            else request.local_ip
        request_line = f"{method} {proto}://{host_name}:{port}{target} HTTP/{request.version}"
        path, _, query = target.partition("?")
        context = (listener, request_line, user_agent, received)
        if method == "TRACE":
            return self._own(request, context, None, 405, None, None, now)
        if xff and headers.xff_count(xff) > headers.MAX_XFF_ADDRESSES:
            return self._own(request, context, None, 463, None, None, now)
        if listener is None:                 # not one of ours: no rules to apply
            return self._own(request, context, None, 503, None, None, now)
        rule = listener.rules.match(View(method, host_name, path, query, request.headers,
                                         request.client_ip))
        listener.hits[rule.priority] += 1
        action = rule.action
        if action.__class__ is ForwardAction:
            group = action.groups.pick()
            chosen = group.pick() if group is not None else None
            if chosen is None:
                return self._own(request, context, rule.priority, 503, "forward", None, now,
                                 group)
            if host is None:
                lines.insert(0, f"Host: {request.local_ip}\r\n")
            trace_value = "Root=" + trace_id(now) if trace is None else \
                headers.amzn_trace(trace, now)
            if xff or self.xff_mode != "append" or self.xff_client_port:
                xff_value = headers.forwarded_for(
                    self.xff_mode, xff, headers.client_address(request.client_ip,
                                                               request.client_port,
                                                               self.xff_client_port))
            else:                            # the usual case: the client's address alone
                xff_value = request.client_ip
            head = headers.target_head(method, target, lines, xff_value, proto, port,
                                       trace_value)
            chosen.outstanding += 1
            exchange = Exchange(listener, rule.priority, group, chosen, trace_value, received,
                                request_line, user_agent, time.time() - request.time)
            return Forward(chosen.backend, head, self.idle_timeout_s, exchange)
        if action.__class__ is FixedResponse:
            data = errors.fixed(action.status, action.content_type, action.body,
                                request.keep_alive, now)
            self._log_own(request, context, rule.priority, action.status, "fixed-response",
                          None, len(data), now)
            return data
        location = action.location(proto, host_name, port, path, query)
        data = errors.redirect(action.status, location, request.keep_alive, now)
        self._log_own(request, context, rule.priority, action.status, "redirect", location,
                      len(data), now)
        return data

    def response(self, request: Request, forward: Forward, status: int, head: bytes,
                 body: bytes) -> bytes:
        exchange: Exchange = forward.context
        exchange.target.outstanding -= 1
        answered = time.monotonic()
        data = headers.client_response(status, head, body, request.keep_alive,
                                       request.method == "HEAD")
        if self.log is not None:
            tls = request.tls
            self.log.write(accesslog.forwarded(
                exchange.listener.proto, time.time(), self.elb,
                f"{request.client_ip}:{request.client_port}", exchange.target.address,
                exchange.request_time, answered - exchange.routed, time.monotonic() - answered,
                status, exchange.received, len(data), exchange.request_line,
                exchange.user_agent, tls if tls.__class__ is tuple else None,
                exchange.group.arn, exchange.trace, exchange.priority, request.time))
        return data

    def error(self, kind: str, request: Request | None, forward: Forward | None,
              detail: str) -> bytes | None:
        status = errors.ENGINE_STATUS[kind]
        now = time.time()
        if status is None:
            return None
        self.generated[str(status)] += 1
        keep_alive = request.keep_alive if request is not None else False
        data = errors.generated(status, keep_alive, now)
        if forward is not None and request is not None:
            exchange: Exchange = forward.context
            exchange.target.outstanding -= 1
            self._log_forwarded(request, exchange, status, None, len(data), None)
        else:
            self._log_refused(request, status, len(data), now)
        return data

    def closed(self, request: Request, forward: Forward | None, detail: str) -> None:
        """The client left while its request was served: a 460 in the log."""
        self.generated["460"] += 1
        if forward is not None:
            exchange: Exchange = forward.context
            exchange.target.outstanding -= 1
            self._log_forwarded(request, exchange, 460, None, 0, None)

    # -- generated answers and the log --------------------------------------------------------
    def _own(self, request: Request, context: tuple, priority: int | None, status: int,
             action: str | None, location: str | None, now: float,
             group: TargetGroupState | None = None) -> bytes:
        """A generated error in answer to a whole request (405, 463, 503)."""
        self.generated[str(status)] += 1
        data = errors.generated(status, request.keep_alive, now)
        self._log_own(request, context, priority, status, action, location, len(data), now,
                      group)
        return data

    def _log_own(self, request: Request, context: tuple, priority: int | None, status: int,
                 action: str | None, location: str | None, sent: int, now: float,
                 group: TargetGroupState | None = None) -> None:
        listener, request_line, user_agent, received = context
        taken = 0.0 if action else None
        # accesslog.line's arguments are the fields in the log's order (by position: cheaper)
        self._write(accesslog.line(
            listener.proto if listener else "http", time.time(), self.elb,
            f"{request.client_ip}:{request.client_port}", None, taken, taken, taken, status,
            None, received, sent, request_line, user_agent, _tls(request),
            group.arn if group else None, None, priority, request.time, action, location))

    def _log_forwarded(self, request: Request, exchange: Exchange, elb_status: int,
                       target_status: int | None, sent: int, answered: float | None) -> None:
        self._write(accesslog.line(
            exchange.listener.proto, time.time(), self.elb,
            f"{request.client_ip}:{request.client_port}", exchange.target.address,
            exchange.request_time, None if answered is None else answered - exchange.routed,
            None if answered is None else time.monotonic() - answered, elb_status,
            target_status, exchange.received, sent, exchange.request_line,
            exchange.user_agent, _tls(request), exchange.group.arn, exchange.trace,
            exchange.priority, request.time, "forward", None))

    def _log_refused(self, request: Request | None, status: int, sent: int,
                     now: float) -> None:
        """A request refused by the engine before routing (400, 408, 413, 501)."""
        if request is None:
            self._write(accesslog.line(
                "http", now, self.elb, "-", None, None, None, None, status, None, 0, sent,
                "- - -", None, None, None, None, None, now, None, None))
            return
        listener = self.listeners.get(request.local_port)
        proto = listener.proto if listener else "http"
        line = f"{request.method} {proto}://-:{request.local_port}{request.target} " \
            f"HTTP/{request.version}"
        self._log_own(request, (listener, line, None, 0), None, status, None, None, sent, now)

    def _write(self, line: str) -> None:
        if self.log is not None:
            self.log.write(line)

    # -- the control socket ---------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return {"listeners": {str(port): {"rules": {("default" if p == 0 else str(p)): n
                                                    for p, n in listener.hits.items()}}
                              for port, listener in self.listeners.items()},
                "generated": dict(self.generated),
                "outstanding": {name: {t.address: t.outstanding for t in group.targets}
                                for name, group in self.groups.items()}}

    def health(self) -> dict[str, Any]:
        return {"target_groups": {name: group.health() for name, group in self.groups.items()}}

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


def _tls(request: Request) -> tuple[str, str, str | None] | None:
    """The connection's (cipher, protocol, SNI name) for the log, if it is TLS and known."""
    return request.tls if request.tls.__class__ is tuple else None
