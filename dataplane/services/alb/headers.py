"""Headers: what the load balancer sends its targets and its clients (AWS-FACTS-HTTP 1.11).

**To the target**: the request line as the client sent it (the path forwarded
unchanged), always HTTP/1.1; `Host` as the client sent it; every header but the
hop-by-hop ones (`Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
`Transfer-Encoding`, `Upgrade`), `Content-Length` (the engine frames the body) and
`Expect` (the engine answered it); then

* `X-Forwarded-For` by the `xff_mode` attribute: `append` (default) — the client's
  address appended to what the client sent (`<old>, <client>`), or alone; with
  `xff_client_port`, `<client>:<port>` (IPv6 `[addr]:port`); `preserve` — the client's
  header as it came, none if it sent none; `remove` — none at all. Several
  X-Forwarded-For lines from the client count as one list, joined with `, `;
* `X-Forwarded-Proto` (`http` | `https`) and `X-Forwarded-Port` (the listener's port):
  the client's own are dropped;
* `X-Amzn-Trace-Id`: absent → `Root=1-<epoch 8 hex>-<24 hex>`; with a `Self=` field →
  that field's value renewed; with a `Root=` but no `Self=` → `Self=1-…;` put in front;
  with neither (only custom fields) → `Root=1-…;` put in front; custom fields are kept;
  a header over 7 KB is replaced by a fresh `Root=` (AWS's rule for oversized headers).

`xff_count(values)` counts the addresses a client's X-Forwarded-For lists: more than 30
is a 463.

**To the client**: the target's status (with the standard reason phrase) and headers
but the hop-by-hop ones and `Content-Length`; then `Content-Length` (the engine holds the
whole body; for a HEAD request the target's own) and `Connection`. The target's header
lines are copied through as bytes, byte for byte; one regular expression takes out the
dropped ones (a response that has none, the usual case, costs one search).
"""
from __future__ import annotations

import re

from dataplane.services.proxy.http import HOP_BY_HOP, status_line_bytes, trace_id

TO_TARGET_DROPPED = HOP_BY_HOP | {"content-length", "expect", "x-forwarded-proto",
                                  "x-forwarded-port", "x-forwarded-for", "x-amzn-trace-id"}
TO_CLIENT_DROPPED = HOP_BY_HOP | {"content-length"}
# a whole header line of a name in TO_CLIENT_DROPPED, in a head of "Name: value\r\n" lines
_TO_CLIENT_DROPPED_LINE = re.compile(
    rb"^(?:" + b"|".join(re.escape(n.encode()) for n in sorted(TO_CLIENT_DROPPED)) +
    rb"):[^\n]*\n", re.IGNORECASE | re.MULTILINE)
_CONTENT_LENGTH = re.compile(rb"^content-length:[ \t]*([^\r]*?)[ \t]*\r", re.IGNORECASE |
                             re.MULTILINE)
_CLIENT_TAIL = {True: b"Content-Length: %d\r\nConnection: keep-alive\r\n\r\n",
                False: b"Content-Length: %d\r\nConnection: close\r\n\r\n"}
MAX_XFF_ADDRESSES = 30
MAX_TRACE_BYTES = 7 * 1024


def xff_count(values: list[str]) -> int:
    """How many addresses the client's X-Forwarded-For lines list."""
    return sum(value.count(",") + 1 for value in values if value.strip())


def client_address(ip: str, port: int, with_port: bool) -> str:
    if not with_port:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def forwarded_for(mode: str, values: list[str], client: str) -> str | None:
    """The X-Forwarded-For value a target gets (None: no header)."""
    if mode == "remove":
        return None
    old = ", ".join(values) if values else None
    if mode == "preserve":
        return old
    return f"{old}, {client}" if old else client


def amzn_trace(value: str | None, now: float) -> str:
    """The X-Amzn-Trace-Id value a target gets (see the module docstring)."""
    if not value or len(value) > MAX_TRACE_BYTES:
        return "Root=" + trace_id(now)
    fields = value.split(";")
    for i, field in enumerate(fields):
        if field.strip().startswith("Self="):
            fields[i] = "Self=" + trace_id(now)
            return ";".join(fields)
    if any(field.strip().startswith("Root=") for field in fields):
        return f"Self={trace_id(now)};{value}"
    return f"Root={trace_id(now)};{value}"


def target_head(method: str, target: str, lines: list[str], xff: str | None, proto: str,
                port: int, trace: str) -> bytes:
    """The request head for the target: request line, the kept header `lines` (each
    `Name: value\\r\\n`), then the load balancer's own; no blank line (the engine ends it)."""
    ours = (f"X-Forwarded-For: {xff}\r\n" if xff is not None else "") + \
        f"X-Forwarded-Proto: {proto}\r\nX-Forwarded-Port: {port}\r\nX-Amzn-Trace-Id: {trace}\r\n"
    return "".join([f"{method} {target} HTTP/1.1\r\n", *lines, ours]).encode("latin-1")


def client_response(status: int, head: bytes, body: bytes, keep_alive: bool,
                    head_request: bool) -> bytes:
    """What the client gets for a target's response (`head`: its header lines as sent)."""
    length = len(body)
    if head_request:                     # the target's own length, if it gave one
        found = _CONTENT_LENGTH.search(head)
        if found is not None and found.group(1).isdigit():
            length = int(found.group(1))
    kept = _TO_CLIENT_DROPPED_LINE.sub(b"", head) if head else head
    return b"".join((status_line_bytes(status), kept, _CLIENT_TAIL[keep_alive] % length, body))
