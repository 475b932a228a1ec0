"""NLB target health: the state machine, the probes, and which targets get new flows.

States and reasons as ELB reports them (AWS-FACTS §2):

    initial    Elb.InitialHealthChecking      registered, not yet passed the healthy threshold
    healthy    -                              passed `healthy_threshold` checks in a row
    unhealthy  Target.FailedHealthChecks      failed `unhealthy_threshold` checks in a row
    draining   Target.DeregistrationInProgress  deregistered, its flows go on until the delay

A target moves initial → healthy after `healthy_threshold` passes in a row, healthy →
unhealthy after `unhealthy_threshold` failures in a row, and back after
`healthy_threshold` passes; an initial target that fails `unhealthy_threshold` times is
unhealthy. New flows go to healthy targets only; when none is healthy the NLB fails
open and uses every registered target (draining ones excepted). When a target turns
unhealthy its existing connections are reset (the caller does it with
Engine.reset_backend).

A target group with PROXY protocol v2 gets a header on its health-check connections too,
as on AWS, with no client information: the LOCAL command (`PROXY_V2_LOCAL`, 16 bytes:
signature, `20`, family `00`, length 0; AWS does not document the bytes, this is the
spec's natural encoding). The checker writes it itself, first thing on its connection,
rather than the engine: a check is the checker's own connection to the target (the
engine only translates it), it has no client to describe, and writing it here keeps the
engine's PROXY path to one kind of header. A TCP check still passes on the connection
alone: a target that closes after reading the header is healthy.

The checker is driven by explicit time (`due(now)`, `record(target, ok, now)`), so its
logic is tested without sleeping; `probe_tcp` and `probe_http` are the real checks,
run by the forwarder from the NLB's ENI address.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

# The settings (ELB's defaults and ranges) are part of the spec the forwarder gets.
from dataplane.compile.spec import HealthCheck
from dataplane.http_probe import probe_request, status_of

REASONS = {"initial": "Elb.InitialHealthChecking", "healthy": None,
           "unhealthy": "Target.FailedHealthChecks", "draining": "Target.DeregistrationInProgress"}


@dataclass
class TargetHealth:
    state: str = "initial"
    passes: int = 0                  # in a row
    failures: int = 0                # in a row
    next_check: float = 0.0
    last_error: str = ""

    @property
    def reason(self) -> str | None:
        return REASONS[self.state]


@dataclass
class TargetGroupHealth:
    """The health of one target group's targets, as seen by one NLB."""
    check: HealthCheck
    targets: dict[tuple[str, int], TargetHealth] = field(default_factory=dict)

    def register(self, target: tuple[str, int], now: float) -> None:
        self.targets.setdefault(target, TargetHealth(next_check=now))

    def deregister(self, target: tuple[str, int]) -> None:
        if target in self.targets:
            self.targets[target].state = "draining"

    def due(self, now: float) -> list[tuple[str, int]]:
        """Targets whose next check is due (draining ones are not checked)."""
        return [t for t, h in self.targets.items() if h.state != "draining" and h.next_check <= now]

    def record(self, target: tuple[str, int], ok: bool, now: float, error: str = "") -> str | None:
        """Counts one check's result; returns the new state if it changed, else None."""
        h = self.targets[target]
        h.next_check = now + self.check.interval
        h.last_error = "" if ok else error
        if ok:
            h.passes, h.failures = h.passes + 1, 0
            new = "healthy" if h.passes >= self.check.healthy_threshold else h.state
        else:
            h.passes, h.failures = 0, h.failures + 1
            new = "unhealthy" if h.failures >= self.check.unhealthy_threshold else h.state
        if new == h.state:
            return None
        h.state = new
        return new

    def routable(self) -> list[tuple[str, int]]:
        """Targets new flows may go to: the healthy ones, or, failing open when none is
        healthy, every registered target that is not draining."""
        healthy = [t for t, h in self.targets.items() if h.state == "healthy"]
        if healthy:
            return healthy
        return [t for t, h in self.targets.items() if h.state != "draining"]


def _os_error(exc: OSError) -> str:
    """'Connection refused', not asyncio's 'Connect call failed (…)'."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


USER_AGENT = "ELB-HealthChecker/2.0"
PROXY_V2_LOCAL = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00, 0x00, 0x00])


async def probe_tcp(host: str, port: int, timeout: float,
                    proxy_v2: bool = False) -> tuple[bool, str]:
    """A TCP health check: the connection opens within the timeout (with `proxy_v2`, a
    LOCAL header is written on it first; whether the target reads it does not matter)."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return False, "timed out"
    except OSError as exc:
        return False, _os_error(exc)
    if proxy_v2:
        try:
            writer.write(PROXY_V2_LOCAL)
            async with asyncio.timeout(timeout):
                await writer.drain()
        except (OSError, TimeoutError):
            pass   # the connection opened: that is the check
    writer.close()
    return True, ""


async def probe_http(host: str, port: int, timeout: float, check: HealthCheck,
                     host_header: str, proxy_v2: bool = False) -> tuple[bool, str]:
    """An HTTP health check: GET `path`, status within the matcher. ELB sends
    `Host: <nlb-node-ip>:<listener-port>`, which the caller passes as `host_header`;
    with `proxy_v2` a LOCAL header goes before the request."""
    async def get() -> tuple[bool, str]:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write((PROXY_V2_LOCAL if proxy_v2 else b"")
                         + probe_request(check.path, host_header, USER_AGENT))
            await writer.drain()
            status = status_of(await reader.readline())
        finally:
            writer.close()
        if status is None:
            return False, "no HTTP status line"
        return (True, "") if check.matches(status) else (False, f"HTTP {status}")

    try:
        async with asyncio.timeout(timeout):
            return await get()
    except TimeoutError:
        return False, "timed out"
    except OSError as exc:
        return False, _os_error(exc)
