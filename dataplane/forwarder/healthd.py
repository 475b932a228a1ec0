"""NLB health checks, run inside the forwarder process.

The checks of a lab's spec (`health_checks`, compiled by dataplane/compile/privatelink.py) are
probed from the namespace `<lab>.hyperplane.health`, through the forwarder's health
services, so each leaves from its NLB node's address. A thread enters that namespace and
runs an asyncio loop there: every check due (per its interval) is probed concurrently,
each result goes into that group's state machine (dataplane/health.py), and a change is
handed to `on_change(group, target, new_state)`, which updates the forwarder's tables.
"""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Callable, Sequence

from dataplane.compile.spec import Backend, TargetCheck
from dataplane.forwarder.health import TargetGroupHealth, probe_http, probe_tcp
from netns_setup import nsenter

Target = tuple[str, int]


def choose_backends(backends: Sequence[Backend], preferred: Sequence[tuple[str, int]],
                    healthy: Callable[[Backend], bool]) -> list[Backend]:
    """The backends a service's new flows may use, in NLB's order of preference:
    1. the healthy targets of the node's own AZ (`preferred`; cross-zone is off);
    2. else the healthy targets of other AZs (vpclab's choice: AWS does not say what an
       endpoint's AZ with no healthy target does);
    3. else the node's own targets, healthy or not (NLB fails open).
    `preferred` empty means every backend is the node's own."""
    pref = {tuple(p) for p in preferred}
    local = [b for b in backends if (b.ip, b.port) in pref] or list(backends)
    return ([b for b in local if healthy(b)] or [b for b in backends if healthy(b)] or local)


class HealthRunner:
    def __init__(self, netns: str, checks: Sequence[TargetCheck],
                 on_change: Callable[[str, Target, str], None]) -> None:
        self.netns = netns
        self.on_change = on_change
        self.groups: dict[str, TargetGroupHealth] = {}
        self.checks: dict[tuple[str, Target], TargetCheck] = {}
        self.spec_checks: tuple[TargetCheck, ...] = ()
        self.reconfigure(checks)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vpclab-health", daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def reconfigure(self, checks: Sequence[TargetCheck]) -> None:
        """The checks of a new spec: a target checked before, the same way, keeps its
        state (a healthy one is not checked back up from scratch); a new one starts as a
        new target does; one no longer in the spec is no longer checked. The loop sees
        the new tables at its next round (they are swapped whole)."""
        now = time.monotonic()
        groups: dict[str, TargetGroupHealth] = {}
        table: dict[tuple[str, Target], TargetCheck] = {}
        for c in checks:
            if c.group not in groups:
                groups[c.group] = TargetGroupHealth(c.check)
            old = self.groups.get(c.group)
            if old is not None and old.check == c.check and c.target in old.targets:
                groups[c.group].targets[c.target] = old.targets[c.target]
            else:
                groups[c.group].register(c.target, now)
            table[(c.group, c.target)] = c
        self.groups, self.checks, self.spec_checks = groups, table, tuple(checks)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def report(self) -> dict[str, dict[str, dict]]:
        """{group: {"ip:port": {state, reason, last_error}}}, for `vpclab status`."""
        return {g: {f"{t[0]}:{t[1]}": {"state": h.state, "reason": h.reason, "last_error": h.last_error}
                    for t, h in grp.targets.items()}
                for g, grp in self.groups.items()}

    def is_healthy(self, group: str | None, backend: Backend) -> bool:
        grp = self.groups.get(group or "")
        h = grp.targets.get((backend.ip, backend.port)) if grp else None
        return h is None or h.state == "healthy"

    # -- the loop, in the health namespace ------------------------------------------------

    def _run(self) -> None:
        try:
            nsenter.setns(self.netns)
            asyncio.run(self._loop())
        except Exception as exc:  # reported by `vpclab status` through the control socket
            self.error = f"{exc.__class__.__name__}: {exc}"

    async def _loop(self) -> None:
        running: set[tuple[str, Target]] = set()
        while not self._stop.is_set():
            now = time.monotonic()
            for gname, grp in self.groups.items():
                for target in grp.due(now):
                    key = (gname, target)
                    if key not in running:
                        running.add(key)
                        asyncio.create_task(self._probe(key, running))
            await asyncio.sleep(0.1)

    async def _probe(self, key: tuple[str, Target], running: set) -> None:
        gname, target = key
        grp, c = self.groups.get(gname), self.checks.get(key)
        if grp is None or c is None:       # gone with a new spec meanwhile
            running.discard(key)
            return
        check = grp.check
        try:
            if check.protocol == "HTTP":
                ok, error = await probe_http(c.vip, c.vport, check.effective_timeout, check,
                                             c.host_header, c.proxy_protocol_v2)
            else:
                ok, error = await probe_tcp(c.vip, c.vport, check.effective_timeout,
                                            c.proxy_protocol_v2)
            changed = grp.record(target, ok, time.monotonic(), error)
            if changed:
                self.on_change(gname, target, changed)
        finally:
            running.discard(key)
