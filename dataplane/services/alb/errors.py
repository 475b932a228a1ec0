"""Every response the load balancer makes itself: the pages of the status codes it
generates, fixed responses and redirects (AWS-FACTS-HTTP 1.11).

A generated error is `Server: awselb/2.0`, `Content-Type: text/html` and this page (the
template that fits AWS's captures byte for byte: 132 bytes for 504):

    <html>\\r\\n<head><title>502 Bad Gateway</title></head>\\r\\n<body>\\r\\n<center><h1>502 Bad Gateway</h1></center>\\r\\n</body>\\r\\n</html>\\r\\n

| code | reason phrase | when (the proxy engine's kind, or the personality's reason) |
|---|---|---|
| 400 | Bad Request | `bad_request` (not HTTP/1.x), `head_too_large` (request line > 16 K, a header > 16 K, all > 64 K) |
| 405 | Not Allowed | a `TRACE` request |
| 408 | Request Time-out | `read_timeout`: a request begun and not finished within the idle timeout |
| 413 | Request Entity Too Large | `body_too_large`: a body over vpclab's bound (64 MiB; AWS sets none) |
| 460 | (none) | `client_closed`: never sent (the client is gone), written to the access log |
| 463 | (none) | X-Forwarded-For with more than 30 addresses |
| 501 | Not Implemented | `unsupported_transfer_coding` |
| 502 | Bad Gateway | `connect_failed`, `backend_closed`, `backend_bad_response` (junk, a response head over 32 K), `response_too_large` |
| 503 | Service Temporarily Unavailable | no registered targets (or every weight 0) |
| 504 | Gateway Time-out | `connect_timeout` (10 s), `timeout` (no response within the idle timeout) |

The phrases are nginx's, as AWS's captures of 502, 503 and 504 show; 405's, 408's and
413's follow the same table (vpclab's choice: no capture read). 460 and 463 have no
phrase: the status line is `HTTP/1.1 463 ` and the page's title `463`.

Fixed responses carry `Server: awselb/2.0`, the configured `Content-Type` and body.
Redirects are 301 `Moved Permanently` or 302 `Found` with `Location` and the same
HTML page as an error.
"""
from __future__ import annotations

from dataplane.services.proxy.http import http_date
from dataplane.services.proxy.http import status_line as standard_status_line

PHRASES = {301: "Moved Permanently", 302: "Found", 400: "Bad Request", 405: "Not Allowed",
           408: "Request Time-out", 413: "Request Entity Too Large", 460: "", 463: "",
           501: "Not Implemented", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
           504: "Gateway Time-out"}

# the proxy engine's kinds -> the status the client gets (None: nothing can be sent)
ENGINE_STATUS: dict[str, int | None] = {
    "bad_request": 400,
    "head_too_large": 400,
    "unsupported_transfer_coding": 501,
    "body_too_large": 413,
    "read_timeout": 408,
    "client_closed": None,
    "connect_failed": 502,
    "backend_closed": 502,
    "backend_bad_response": 502,
    "response_too_large": 502,
    "connect_timeout": 504,
    "timeout": 504,
}


def title(status: int) -> str:
    phrase = PHRASES.get(status, "")
    return f"{status} {phrase}" if phrase else str(status)


def page(status: int) -> bytes:
    """The HTML page of a generated status."""
    t = title(status)
    return (f"<html>\r\n<head><title>{t}</title></head>\r\n<body>\r\n"
            f"<center><h1>{t}</h1></center>\r\n</body>\r\n</html>\r\n").encode()


PAGES = {status: page(status) for status in PHRASES}


def status_line(status: int) -> str:
    """nginx's phrase for the codes above, the standard one for the rest (fixed responses)."""
    phrase = PHRASES.get(status)
    return standard_status_line(status) if phrase is None else f"HTTP/1.1 {status} {phrase}\r\n"


def response(status: int, content_type: str, body: bytes, keep_alive: bool, now: float,
             extra: str = "") -> bytes:
    """A response of the load balancer's own; `extra` is more header lines (CRLF-ended)."""
    return (f"{status_line(status)}Server: awselb/2.0\r\nDate: {http_date(now)}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
            ).encode("latin-1") + body


def generated(status: int, keep_alive: bool, now: float) -> bytes:
    """A generated error (or a redirect's body) with its page."""
    return response(status, "text/html", PAGES[status], keep_alive, now)


def fixed(status: int, content_type: str, body: bytes, keep_alive: bool, now: float) -> bytes:
    return response(status, content_type, body, keep_alive, now)


def redirect(status: int, location: str, keep_alive: bool, now: float) -> bytes:
    return response(status, "text/html", PAGES[status], keep_alive, now,
                    f"Location: {location}\r\n")
