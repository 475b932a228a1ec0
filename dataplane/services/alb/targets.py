"""Target groups at run time: each target's health as this node sees it, the targets a
request may go to, and the choice among them (AWS-FACTS-HTTP 1.11).

**Health states** (the `health` control command shows them, with AWS's reason codes):

| state | reason | description | gets traffic |
|---|---|---|---|
| `initial` | `Elb.InitialHealthChecking` | Initial health checks in progress | only if no target is healthy |
| `healthy` | — | — | yes |
| `unhealthy` | `Target.ResponseCodeMismatch` | Health checks failed with these codes: [500] | only if all are unhealthy (fail open) |
| `unhealthy` | `Target.Timeout` | Request timed out | 〃 |
| `unhealthy` | `Target.FailedHealthChecks` | Health checks failed | 〃 (refused, reset, not HTTP) |
| `unavailable` | `Target.HealthCheckDisabled` | Health checks are disabled | yes (counts healthy) |

Transitions (health.py feeds `record()`): a new target leaves `initial` on its first
passed check (AWS: "a new target must pass one check"), or after `unhealthy_threshold`
failed ones in a row; a healthy target becomes unhealthy after `unhealthy_threshold`
failures in a row, an unhealthy one healthy after `healthy_threshold` passes in a row.

**Candidates**: the healthy targets (and those whose checks are disabled); if there are
none, every registered target — all unhealthy or still initial, the group fails open,
as AWS does, and the dead targets answer 502/504 rather than the load balancer 503. A
group with no registered targets has no candidates: 503. The tuple is recomputed when a
state changes, not per request.

**Algorithms**: `round_robin` takes the candidates in turn; `least_outstanding_requests`
the candidate with the fewest requests in flight from this node, ties broken in turn.
"""
from __future__ import annotations

import bisect
import random
from typing import Any

from dataplane.services.proxy.backend import BackendPool

from .config import TargetGroup

INITIAL = ("initial", "Elb.InitialHealthChecking", "Initial health checks in progress")
DISABLED = ("unavailable", "Target.HealthCheckDisabled", "Health checks are disabled")
ROUTABLE = frozenset({"healthy", "unavailable"})


class TargetState:
    """One registered target of one group: its pool, its health, its requests in flight."""
    __slots__ = ("id", "ip", "port", "address", "backend", "state", "reason", "description",
                 "outstanding", "passes", "failures")

    def __init__(self, id: str, ip: str, port: int, backend: Any, checked: bool) -> None:
        self.id, self.ip, self.port = id, ip, port
        self.address = f"{ip}:{port}"
        self.backend = backend          # the engine's BackendGroup of this one address
        self.state, self.reason, self.description = INITIAL if checked else DISABLED
        self.outstanding = 0
        self.passes = self.failures = 0

    def health(self) -> dict[str, Any]:
        return {"id": self.id, "ip": self.ip, "port": self.port, "state": self.state,
                "reason": self.reason, "description": self.description}


class TargetGroupState:
    """A target group as this node serves it (see the module docstring)."""

    def __init__(self, group: TargetGroup, pool: BackendPool) -> None:
        self.name, self.arn, self.algorithm = group.name, group.arn, group.algorithm
        self.check = group.health_check
        checked = group.health_check.enabled
        self.targets = [TargetState(t.id, t.ip, t.port, pool.group(None, (t.ip,), t.port),
                                    checked) for t in group.targets]
        self.candidates: tuple[TargetState, ...] = ()
        self._turn = 0
        self.refresh()

    def refresh(self) -> None:
        routable = tuple(t for t in self.targets if t.state in ROUTABLE)
        self.candidates = routable or tuple(self.targets)

    def pick(self) -> TargetState | None:
        """The target for one request, or None: no registered targets (503)."""
        candidates = self.candidates
        n = len(candidates)
        if n == 0:
            return None
        turn = self._turn
        self._turn = turn + 1
        if n == 1:
            return candidates[0]
        if self.algorithm == "round_robin":
            return candidates[turn % n]
        start = turn % n
        best = candidates[start]
        for i in range(1, n):
            target = candidates[(start + i) % n]
            if target.outstanding < best.outstanding:
                best = target
        return best

    def record(self, target: TargetState, passed: bool, reason: str | None = None,
               description: str | None = None) -> None:
        """One health check's outcome (see the module docstring's transitions)."""
        check = self.check
        before = target.state
        if passed:
            target.failures = 0
            target.passes += 1
            if before == "initial" or (before == "unhealthy"
                                       and target.passes >= check.healthy_threshold):
                target.state, target.reason, target.description = "healthy", None, None
        else:
            target.passes = 0
            target.failures += 1
            if before == "unhealthy" or target.failures >= check.unhealthy_threshold:
                target.state, target.reason, target.description = "unhealthy", reason, \
                    description
        if target.state != before:
            self.refresh()

    def health(self) -> list[dict[str, Any]]:
        return [t.health() for t in self.targets]


class WeightedGroups:
    """A forward action's target groups and weights: `pick()` draws one in proportion to
    its weight (weight 0: never), from the personality's random generator."""
    __slots__ = ("groups", "cumulative", "total", "rng")

    def __init__(self, weighted: list[tuple[TargetGroupState, int]], rng: random.Random) -> None:
        chosen = [(group, weight) for group, weight in weighted if weight > 0]
        self.groups = [group for group, _ in chosen]
        self.cumulative: list[int] = []
        total = 0
        for _, weight in chosen:
            total += weight
            self.cumulative.append(total)
        self.total = total
        self.rng = rng

    def pick(self) -> TargetGroupState | None:
        """The group for one request; None if every weight is 0."""
        groups = self.groups
        if len(groups) <= 1:
            return groups[0] if groups else None
        return groups[bisect.bisect_right(self.cumulative, self.rng.random() * self.total)]
