"""What a personality is: the part of a proxy that decides, while the engine does I/O.

For every complete request the engine calls `personality.route(request)`, which answers
either with a `Forward` (send this request head and the body to that backend group,
within that many seconds) or with the bytes of a whole response to send now (a
routing error, a throttled request). When the backend's response is complete the engine
calls `personality.response(...)`, which returns the bytes the client gets. When
anything fails — the client's HTTP, a limit, the backend — the engine calls
`personality.error(kind, request, forward, detail)`: it returns the response bytes, or
None to close the connection without a word. A client that leaves while its request is
served gets nothing; the engine tells the personality with `closed(...)`. Each kind is one row of `ERRORS`, the one
table that feeds the engine's counters, its log lines and the personality's mapping
(VPP's habit: an error is an enum and a sentence, in one place).

A personality never touches sockets, timers or parsers; it returns bytes, so it is
tested without either (tests/unit/test_apigw_*.py). It must be quick: it runs once per
request on the event loop, and the engine's budget per request is a few tens of µs.

`Request` and `Forward` are plain `__slots__` objects, made once per request: headers
are a list of (name, value) `str` pairs as received (names in the client's case; the
bytes are decoded as latin-1, so every byte survives), the body is `bytes` (the engine
holds the whole body, bounded by `Limits.max_body_bytes`; chunked bodies arrive
de-chunked and are sent on with a Content-Length).

A backend's response reaches `response()` as its status, its *head* — the header lines
exactly as the backend sent them, `Name: value\r\n` each (the parser admits nothing
else: CRLF line ends, no folded lines), without the status line and the blank line —
and its body. Bytes, not pairs, because the usual answer copies most of them through:
a personality removes and adds what it must (the ALB: hop-by-hop names, the framing)
with a few C-level byte operations instead of a Python step per header;
`http.header_pairs(head)` gives the pairs to one that needs them (API Gateway remaps).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# kind -> sentence. The engine counts each under `errors.<kind>` and logs the sentence.
ERRORS: dict[str, str] = {
    "bad_request": "the client sent something that is not HTTP/1.x",
    "head_too_large": "the request line, a header line or the whole head exceeds its limit",
    "unsupported_transfer_coding": "the request's Transfer-Encoding is not chunked or identity",
    "body_too_large": "the request body exceeds the body limit",
    "read_timeout": "the client did not send a whole request in time (slowloris)",
    "client_closed": "the client closed its connection before its response was sent",
    "connect_failed": "the backend refused or reset the connection, or was unreachable",
    "connect_timeout": "the backend did not accept the connection within the connect timeout",
    "backend_closed": "the backend closed or reset the connection before a whole response",
    "backend_bad_response": "the backend answered with something that is not HTTP/1.x",
    "response_too_large": "the backend's response body exceeds the body limit",
    "timeout": "the backend did not answer before the route's timeout",
    "bad_proxy_header": "a PROXY-protocol listener's connection did not start with a valid "
                        "PROXY v2 header (closed without a word)",
}

# Kinds after which the engine closes the client connection, whatever the personality says:
# the rest of the stream can't be trusted (or the client is gone).
CLOSING = frozenset({"bad_request", "head_too_large", "unsupported_transfer_coding",
                     "body_too_large", "read_timeout", "client_closed"})


@dataclass(frozen=True)
class Limits:
    """The engine's bounds, chosen by the personality (each bound with its reason):

    * `max_head_bytes`: request line + header lines as sent, CRLFs included, blank line
      not — a client can't make the proxy hold more than this before it knows the request;
    * `max_request_line_bytes` / `max_header_line_bytes`: the request line's target, and
      one header's name and value, each (0: bounded only by `max_head_bytes`; an ALB
      refuses either over 16 K);
    * `max_body_bytes`: a request (or response) body held in memory;
    * `max_response_head_bytes`: a backend's status line and headers (0: unbounded, as
      API Gateway's; an ALB answers 502 to a response header over 32 K);
    * `header_timeout_s`: from a request's first byte to its last header (slowloris);
    * `body_timeout_s`: from the last header to the last body byte;
    * `idle_timeout_s`: a keep-alive client connection with no request in progress;
    * `connect_timeout_s`: a backend connection attempt (the route's timeout also bounds it);
    * `max_connections_per_group` / `max_idle_per_group`: backend connections per backend
      group, open and idle (bounded pools: one slow backend can't take every socket).
    """
    max_head_bytes: int = 10_240
    max_request_line_bytes: int = 0
    max_header_line_bytes: int = 0
    max_response_head_bytes: int = 0
    max_body_bytes: int = 10 * 1024 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    max_connections_per_group: int = 256
    max_idle_per_group: int = 64


class Request:
    """One client request, as received (see the module docstring)."""
    __slots__ = ("method", "target", "version", "headers", "body", "keep_alive",
                 "client_ip", "client_port", "local_ip", "local_port", "tls",
                 "time", "started", "context", "proxy")

    def __init__(self, method: str, target: str, version: str, headers: list[tuple[str, str]],
                 keep_alive: bool, client: tuple[str, int], local: tuple[str, int],
                 tls: bool | tuple[str, str, str | None],
                 time: float, started: float, proxy: Any = None) -> None:
        self.method = method
        self.target = target            # the request-target as sent: path and query
        self.version = version          # "1.1" or "1.0"
        self.headers = headers
        self.body = b""
        self.keep_alive = keep_alive    # the engine closes after the response if False
        self.client_ip, self.client_port = client
        self.local_ip, self.local_port = local
        # False, or (cipher, protocol, SNI name or None), cipher and protocol as OpenSSL
        # names them (ECDHE-ECDSA-AES128-GCM-SHA256, TLSv1.2)
        self.tls = tls
        self.time = time                # wall clock (time.time()) when the head was complete
        self.started = started          # the loop's clock then, for latencies
        self.context: Any = None        # the personality's own, from route() to response()
        # a PROXY-protocol listener's header (proxy_protocol.ProxyHeader: command, src,
        # src_port, dst, dst_port, vpce, tlvs), the same for every request of the
        # connection; None on a listener without PROXY protocol. client_ip/port stay the
        # TCP peer's (the balancer's).
        self.proxy = proxy


class Forward:
    """Where a request goes: `group` (a backend.BackendGroup the personality made once,
    at configuration time), the request `head` to send (request line and header lines,
    each ending in CRLF, without Content-Length and without the blank line: the engine
    frames the body), and `timeout_s` for the whole exchange (connect included)."""
    __slots__ = ("group", "head", "timeout_s", "context")

    def __init__(self, group: Any, head: bytes, timeout_s: float, context: Any = None) -> None:
        self.group = group
        self.head = head
        self.timeout_s = timeout_s
        self.context = context


class Personality:
    """The interface; dataplane/services/apigw/personality.py is one."""
    limits = Limits()

    def route(self, request: Request) -> Forward | bytes:
        raise NotImplementedError

    def response(self, request: Request, forward: Forward, status: int, head: bytes,
                 body: bytes) -> bytes:
        """The client's bytes for the backend's response (`head`: its header lines)."""
        raise NotImplementedError

    def error(self, kind: str, request: Request | None, forward: Forward | None,
              detail: str) -> bytes | None:
        raise NotImplementedError

    def closed(self, request: Request, forward: Forward | None, detail: str) -> None:
        """The client left while `request` was being served (error kind `client_closed`):
        nothing can be sent; a personality may log or count it (an ALB logs a 460)."""
