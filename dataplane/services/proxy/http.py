"""HTTP text that every personality writes the same way: status lines, `Date` values,
texts that change once a second, trace IDs, and the hop-by-hop header names.

`PerSecond` caches a text that depends only on the current second (an HTTP date, a log
timestamp), so a busy proxy formats it once a second rather than once per request.
`trace_id(now)` makes an `X-Amzn-Trace-Id` root, `1-<epoch seconds, 8 hex>-<24 hex>`:
the 24 hex digits are a random prefix drawn when the process starts and a counter, so
IDs are unique within a process (and across restarts with overwhelming odds) and cost no
random bits per request.
"""
from __future__ import annotations

import itertools
import random
from email.utils import formatdate
from http import HTTPStatus
from typing import Callable
from urllib.parse import urlsplit

# RFC 7230 6.1 and the connection-specific headers proxies drop (Proxy-Connection, Keep-Alive).
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                        "transfer-encoding", "upgrade"})

STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n" for s in HTTPStatus}
STATUS_LINES[413] = "HTTP/1.1 413 Request Entity Too Large\r\n"
STATUS_LINES_BYTES = {status: line.encode("latin-1") for status, line in STATUS_LINES.items()}


def status_line(status: int) -> str:
    return STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n"


def status_line_bytes(status: int) -> bytes:
    return STATUS_LINES_BYTES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status


def header_pairs(head: bytes) -> list[tuple[str, str]]:
    """A response head's lines (`Name: value\r\n` each, as the engine hands them to a
    personality) as (name, value) pairs, latin-1, the value without the blanks around it."""
    pairs = []
    for line in head.decode("latin-1").split("\r\n"):
        if line:
            name, _, value = line.partition(":")
            pairs.append((name, value.strip(" \t")))
    return pairs


class PerSecond:
    """A text that changes once a second (a Date header, a log time), made once a second."""
    __slots__ = ("second", "text", "format")

    def __init__(self, format: Callable[[int], str]) -> None:
        self.second = -1
        self.text = ""
        self.format = format

    def __call__(self, now: float) -> str:
        second = int(now)
        if second != self.second:
            self.second, self.text = second, self.format(second)
        return self.text


# `Thu, 03 Dec 2026 12:00:00 GMT`
http_date = PerSecond(lambda second: formatdate(second, usegmt=True))

# 12 hex digits of process prefix + 12 of counter (always 12: it starts at 0x1000_0000_0000)
_TRACE_PREFIX = "%012x" % random.getrandbits(48)
_trace_counter = itertools.count(0x1000_0000_0000 + random.getrandbits(40))
_trace_start = PerSecond(lambda second: f"1-{second:08x}-{_TRACE_PREFIX}")


def trace_id(now: float) -> str:
    """`1-<epoch seconds, 8 hex>-<24 hex>`: the value of a `Root=` or `Self=` field."""
    return _trace_start(now) + hex(next(_trace_counter))[2:]


def origin_form(target: str) -> str:
    """A request target as `/path?query`: `http://host/path?q` (absolute form, as sent to
    proxies) loses its scheme and host; `*` and authority forms become `/`."""
    if target[:1] == "/":
        return target
    split = urlsplit(target)
    return (split.path or "/") + ("?" + split.query if split.query else "")
