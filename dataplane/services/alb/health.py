"""Health checks from this node to every target of every target group it serves, as
each ALB node checks each target (AWS-FACTS-HTTP 1.11).

One asyncio task per target and group. The first check starts at once when the node
starts; the next starts `interval` seconds after the previous one started. A check is:
connect to the target's address on the check's port (the traffic port by default),
send

    GET <path> HTTP/1.1
    Host: <ip>:<port>
    User-Agent: ELB-HealthChecker/2.0
    Accept: */*
    Connection: close

read the status line, close the connection — all within `timeout` seconds. The status
in the matcher's codes is a pass; another status is `Target.ResponseCodeMismatch`
("Health checks failed with these codes: [500]"); no status line in time is
`Target.Timeout` ("Request timed out"); a refused or reset connection, or an answer that
is not HTTP, is `Target.FailedHealthChecks` ("Health checks failed"). The outcome goes
to `TargetGroupState.record()` (targets.py), which owns the states.

A group whose check is disabled gets no task: its targets stay `unavailable`
(`Target.HealthCheckDisabled`) and take traffic.
"""
from __future__ import annotations

import asyncio
import logging

from dataplane.http_probe import status_of

from .targets import TargetGroupState, TargetState

log = logging.getLogger("vpclab.alb")

USER_AGENT = "ELB-HealthChecker/2.0"
MISMATCH = "Target.ResponseCodeMismatch"
TIMEOUT = ("Target.Timeout", "Request timed out")
FAILED = ("Target.FailedHealthChecks", "Health checks failed")
STOP_WAIT_S = 0.5        # bounded: the node must be gone within a second of SIGTERM


def check_request(path: str, ip: str, port: int) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: {USER_AGENT}\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n").encode("latin-1")


async def check_once(ip: str, port: int, path: str, timeout: float) -> int | None:
    """The status one check got: the connection closed after the status line. Raises
    TimeoutError (nothing in time) or OSError (refused, reset).

    `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` can swallow a
    cancellation that arrives as the inner call finishes, and a check task cancelled at
    shutdown would then run on (and keep the node from exiting)."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(ip, port)
        try:
            writer.write(check_request(path, ip, port))
            return status_of(await reader.readline())
        finally:
            writer.close()


class HealthChecker:
    """The check tasks of every group (see the module docstring)."""

    def __init__(self, groups: list[TargetGroupState]) -> None:
        self.groups = groups
        self.tasks: list[asyncio.Task] = []
        self.checks = 0
        self.stopping = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for group in self.groups:
            if group.check.enabled:
                for target in group.targets:
                    self.tasks.append(loop.create_task(self._run(group, target)))

    async def _run(self, group: TargetGroupState, target: TargetState) -> None:
        check = group.check
        codes = check.codes
        port = check.port or target.port
        loop = asyncio.get_running_loop()
        while not self.stopping:
            started = loop.time()
            try:
                status = await check_once(target.ip, port, check.path, check.timeout)
            except TimeoutError:
                group.record(target, False, *TIMEOUT)
            except OSError:
                group.record(target, False, *FAILED)
            else:
                if status is None:
                    group.record(target, False, *FAILED)
                elif status in codes:
                    group.record(target, True)
                else:
                    group.record(target, False, MISMATCH,
                                 f"Health checks failed with these codes: [{status}]")
            self.checks += 1
            await asyncio.sleep(max(0.0, started + check.interval - loop.time()))

    async def stop(self) -> None:
        """Ends every check task (a check in flight is abandoned, its socket closed)."""
        self.stopping = True
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=STOP_WAIT_S)
        self.tasks.clear()
