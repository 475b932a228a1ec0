"""The text of an HTTP probe: the request a health check or a readiness check sends,
and the status code read back from the first line of the answer.

Three probes send it: the NLB health checker (forwarder/health.py, asyncio, `User-Agent:
ELB-HealthChecker/2.0` as ELB sends), `up`'s wait for a `run:` command's `ready: {http:
…}` (lab/processes.py, a blocking socket in the instance's namespace), and the ALB node's
checks. Their I/O differs (asyncio or blocking, with or without a PROXY v2 header
first), so only the bytes are shared here: a `GET` with `Connection: close`, and the
status of a line `HTTP/1.x NNN …` — anything else is no status at all, which each probe
reports in its own words.
"""
from __future__ import annotations


def probe_request(path: str, host: str, user_agent: str) -> bytes:
    """`GET path` for `Host: host`, asking the server to close after answering."""
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\n"
            f"Connection: close\r\n\r\n").encode("latin-1")


def status_of(line: bytes) -> int | None:
    """The status code of an HTTP/1.x status line, else None."""
    parts = line.split(None, 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1].isdigit() \
            and len(parts[1]) == 3:
        return int(parts[1])
    return None
