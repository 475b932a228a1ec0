"""Headers: what API Gateway sends its backends, and what its clients get back
(AWS-FACTS-HTTP 1.4-1.5), with the request IDs, dates and status lines they carry.

**To the backend, REST** (a private integration is `HTTP_PROXY`): `Host` is the
integration URI's host; dropped as API Gateway does before any integration: `Connection`,
`Content-Length` (the engine writes its own), `Content-MD5`, `Expect`, `Max-Forwards`,
`Proxy-Authenticate`, `Server`, `TE`, `Transfer-Encoding`, `Trailer`, `Upgrade`,
`WWW-Authenticate`, and `Authorization` when it carries a SigV4 signature; vpclab also
drops `Keep-Alive` and `Proxy-Connection` (hop-by-hop). Added: `x-amzn-apigateway-api-id`,
`X-Forwarded-For` (the client appended to any it sent), `X-Forwarded-Port` (the
listener's), `X-Forwarded-Proto`, `X-Amzn-Trace-Id`. The caller's `User-Agent` is kept
(`HTTP_PROXY`); without one, `AmazonAPIGateway_<api-id>` is sent.

**To the backend, HTTP APIs**: `Host` is the integration's host; the hop-by-hop headers
(`Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`,
`Upgrade`) and `Content-Length` and `Expect` dropped; added `X-Forwarded-For` (appended),
`X-Forwarded-Port`, `X-Forwarded-Proto`, `Forwarded: by=<API Gateway's address>;for=<client>;
host=<the API's host>;proto=<http|https>` (appended to one the client sent, RFC 7239), and
`X-Amzn-Trace-Id`. Always HTTP/1.1.

`X-Amzn-Trace-Id`: a client's header that has a `Root=` is passed on as it came;
otherwise `Root=1-<epoch seconds, 8 hex>-<24 hex>` is made (the form in AWS's sample
events). It is not added to responses (`HTTP_PROXY` responses and gateway responses
carry none).

**To the client, REST**: the backend's `Connection`, `Content-Length`, `Date` and
`Server` come back renamed `x-amzn-Remapped-Connection` … (API Gateway then writes its own);
`Transfer-Encoding`, `Content-Encoding` and `Via` are dropped, as LocalStack's
AWS-snapshot tests show for `HTTP_PROXY` (so a compressed body arrives without its
`Content-Encoding`: that is AWS's behaviour as recorded, not a vpclab bug). Added:
`Date`, `Content-Type: application/json` when the backend sent none, `Content-Length`,
`Connection`, `x-amzn-RequestId` (the client's own `x-amzn-RequestId` if it sent one:
"clients can override this request ID") and `x-amz-apigw-id` (the extended request ID,
not overridable). **HTTP APIs**: the backend's headers but the hop-by-hop ones, its
`Date` if any (else ours), and `apigw-requestid`.

Request IDs: REST's is a UUID (v4 form), the extended one and HTTP APIs' are 16
characters of base64 ending in `=` (`Mc7UVioPPHcEKPA=`), as in AWS's captures. Each is a
random prefix drawn when the process starts and a counter: unique, cheap, not secret.
"""
from __future__ import annotations

import base64
import itertools
import random

from dataplane.services.proxy import http as proxy_http
from dataplane.services.proxy.http import HOP_BY_HOP, http_date, status_line

REST_DROPPED = HOP_BY_HOP | {"content-length", "content-md5", "expect", "max-forwards",
                             "proxy-authenticate", "server", "www-authenticate", "host",
                             "x-forwarded-port", "x-forwarded-proto"}
HTTP_DROPPED = HOP_BY_HOP | {"content-length", "expect", "host", "x-forwarded-port",
                             "x-forwarded-proto"}
REST_REMAPPED = {"connection": "x-amzn-Remapped-Connection",
                 "content-length": "x-amzn-Remapped-Content-Length",
                 "date": "x-amzn-Remapped-Date",
                 "server": "x-amzn-Remapped-Server"}
REST_RESPONSE_DROPPED = frozenset({"transfer-encoding", "content-encoding", "via", "keep-alive",
                                   "x-amzn-requestid", "x-amz-apigw-id"})
HTTP_RESPONSE_DROPPED = frozenset({"connection", "keep-alive", "proxy-connection",
                                   "transfer-encoding", "content-length", "upgrade",
                                   "apigw-requestid"})
SIGV4 = "AWS4-HMAC-SHA256"

# IDs: a random prefix per process, then a counter (unique within a process, and across
# restarts with overwhelming odds; cheaper than random bits per request).
# Always 12 hex digits (0x1…), and 6 bytes.
_ids = itertools.count(0x1000_0000_0000 + random.getrandbits(40))
_UUID_PREFIX = "%08x-%04x-4%03x-%x%03x-" % (random.getrandbits(32), random.getrandbits(16),
                                            random.getrandbits(12), 8 + random.getrandbits(2),
                                            random.getrandbits(12))
_EXTENDED_PREFIX = base64.b64encode(random.getrandbits(48).to_bytes(6, "big")).decode()[:7]


def request_id() -> str:
    """A REST request ID: a UUID of version 4's form."""
    return _UUID_PREFIX + hex(next(_ids))[2:]


def extended_id() -> str:
    """An extended request ID (REST's x-amz-apigw-id) or an HTTP API's apigw-requestid:
    15 characters of base64 and `=`."""
    return _EXTENDED_PREFIX + base64.b64encode(next(_ids).to_bytes(6, "big")).decode() + "="


def trace_id(now: float) -> str:
    """`Root=1-<epoch seconds, 8 hex>-<24 hex>`."""
    return "Root=" + proxy_http.trace_id(now)


def client_trace(value: str | None, now: float) -> str:
    return value if value and "Root=" in value else trace_id(now)


class _Passed:
    """The client's headers a backend gets, and the ones API Gateway rewrites."""
    __slots__ = ("lines", "xff", "trace", "forwarded", "agent")

    def __init__(self, headers: list[tuple[str, str]], dropped: frozenset[str],
                 drop_sigv4: bool) -> None:
        lines = self.lines = []
        self.xff = self.trace = self.forwarded = None
        self.agent = False
        for name, value in headers:
            lname = name.lower()
            if lname in dropped:
                continue
            if lname == "x-forwarded-for":
                self.xff = value
            elif lname == "x-amzn-trace-id":
                self.trace = value
            elif lname == "forwarded":
                self.forwarded = value
            elif drop_sigv4 and lname == "authorization" and value.startswith(SIGV4):
                continue
            else:
                if lname == "user-agent":
                    self.agent = True
                lines.append(f"{name}: {value}\r\n")

    def common(self, client_ip: str, port: int, proto: str, now: float) -> str:
        xff = self.xff
        return (f"X-Forwarded-For: {xff + ', ' + client_ip if xff else client_ip}\r\n"
                f"X-Forwarded-Port: {port}\r\nX-Forwarded-Proto: {proto}\r\n"
                f"X-Amzn-Trace-Id: {client_trace(self.trace, now)}\r\n")


def rest_backend_head(method: str, target: str, host: str, headers: list[tuple[str, str]],
                      api_id: str, client_ip: str, port: int, proto: str, now: float) -> bytes:
    """The request head a REST API sends its integration (see the module docstring)."""
    passed = _Passed(headers, REST_DROPPED, True)
    extra = [] if passed.agent else [f"User-Agent: AmazonAPIGateway_{api_id}\r\n"]
    if passed.forwarded:
        extra.append(f"Forwarded: {passed.forwarded}\r\n")
    return "".join([f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n", *passed.lines, *extra,
                    f"x-amzn-apigateway-api-id: {api_id}\r\n",
                    passed.common(client_ip, port, proto, now)]).encode("latin-1")


def http_backend_head(method: str, target: str, host: str, headers: list[tuple[str, str]],
                      api_host: str, client_ip: str, local_ip: str, port: int, proto: str,
                      now: float) -> bytes:
    """The request head an HTTP API sends its integration (see the module docstring)."""
    passed = _Passed(headers, HTTP_DROPPED, False)
    ours = f"by={local_ip};for={client_ip};host={api_host};proto={proto}"
    forwarded = passed.forwarded
    return "".join([f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n", *passed.lines,
                    passed.common(client_ip, port, proto, now),
                    f"Forwarded: {forwarded + ', ' + ours if forwarded else ours}\r\n"]
                   ).encode("latin-1")


def rest_response(status: int, headers: list[tuple[str, str]], body: bytes, keep_alive: bool,
                  request_id_: str, extended_id_: str, now: float) -> bytes:
    """What a REST API's client gets for an integration response."""
    out = [status_line(status)]
    content_type = False
    for name, value in headers:
        lname = name.lower()
        remapped = REST_REMAPPED.get(lname)
        if remapped is not None:
            out.append(f"{remapped}: {value}\r\n")
            continue
        if lname in REST_RESPONSE_DROPPED:
            continue
        if lname == "content-type":
            content_type = True
        out.append(f"{name}: {value}\r\n")
    if not content_type:
        out.append("Content-Type: application/json\r\n")
    out.append(f"Date: {http_date(now)}\r\nContent-Length: {len(body)}\r\n"
               f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
               f"x-amzn-RequestId: {request_id_}\r\nx-amz-apigw-id: {extended_id_}\r\n\r\n")
    return "".join(out).encode("latin-1") + body


def http_response(status: int, headers: list[tuple[str, str]], body: bytes, keep_alive: bool,
                  request_id_: str, now: float) -> bytes:
    """What an HTTP API's client gets for an integration response."""
    out = [status_line(status)]
    date = False
    for name, value in headers:
        lname = name.lower()
        if lname in HTTP_RESPONSE_DROPPED:
            continue
        if lname == "date":
            date = True
        out.append(f"{name}: {value}\r\n")
    if not date:
        out.append(f"Date: {http_date(now)}\r\n")
    out.append(f"Content-Length: {len(body)}\r\n"
               f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
               f"apigw-requestid: {request_id_}\r\n\r\n")
    return "".join(out).encode("latin-1") + body
