"""ALB target groups at run time (dataplane/services/alb/targets.py) and health checks
(health.py): weighted target groups, round robin, least outstanding requests, health
states and their reasons, fail open, the matcher, one real check against a local server."""
from __future__ import annotations

import asyncio
import random

import pytest

from dataplane.services.alb import health
from dataplane.services.alb.config import TargetGroup, parse_matcher
from dataplane.services.alb.targets import TargetGroupState, WeightedGroups
from dataplane.services.proxy.backend import BackendPool
from dataplane.services.proxy.personality import Limits


def group(name: str, n: int, algorithm: str = "round_robin", enabled: bool = True,
          healthy_threshold: int = 3, unhealthy_threshold: int = 2) -> TargetGroupState:
    return TargetGroupState(TargetGroup.from_json({
        "name": name, "arn": f"arn:…:targetgroup/{name}/1", "port": 8080,
        "algorithm": algorithm,
        "targets": [{"id": f"t{i}", "ip": f"10.0.0.{i + 1}", "port": 8080} for i in range(n)],
        "health_check": {"enabled": enabled, "healthy_threshold": healthy_threshold,
                         "unhealthy_threshold": unhealthy_threshold}}), BackendPool(Limits()))


def test_weighted_split_within_tolerance_and_weight_zero_never() -> None:
    a, b, c = group("a", 1), group("b", 1), group("c", 1)
    weighted = WeightedGroups([(a, 3), (b, 1), (c, 0)], random.Random(7))
    picks = [weighted.pick().name for _ in range(1000)]
    assert picks.count("c") == 0
    assert 700 <= picks.count("a") <= 800 and 200 <= picks.count("b") <= 300
    assert WeightedGroups([(a, 0)], random.Random(1)).pick() is None
    assert WeightedGroups([(a, 5), (c, 0)], random.Random(1)).pick() is a


def test_round_robin_takes_targets_in_turn() -> None:
    g = group("rr", 3)
    assert [g.pick().id for _ in range(6)] == ["t0", "t1", "t2", "t0", "t1", "t2"]


def test_least_outstanding_requests() -> None:
    g = group("lor", 3, "least_outstanding_requests")
    t0, t1, t2 = g.targets
    t0.outstanding, t1.outstanding, t2.outstanding = 2, 0, 1
    assert g.pick() is t1
    t1.outstanding = 5
    assert g.pick() is t2
    t0.outstanding = t1.outstanding = t2.outstanding = 0     # ties go in turn
    assert {g.pick().id for _ in range(3)} == {"t0", "t1", "t2"}


def test_no_registered_targets_is_none() -> None:
    assert group("empty", 0).pick() is None


def test_health_states_and_candidates() -> None:
    g = group("h", 2)
    t0, t1 = g.targets
    assert t0.health() == {"id": "t0", "ip": "10.0.0.1", "port": 8080, "state": "initial",
                           "reason": "Elb.InitialHealthChecking",
                           "description": "Initial health checks in progress"}
    assert g.candidates == (t0, t1)                 # all initial: nobody healthy, all get traffic
    g.record(t0, True)                              # one passed check leaves initial
    assert t0.state == "healthy" and t0.reason is None
    assert g.candidates == (t0,)                    # initial gets none while another is healthy
    g.record(t1, False, health.MISMATCH, "Health checks failed with these codes: [500]")
    assert t1.state == "initial"                    # one failure is not enough (threshold 2)
    g.record(t1, False, *health.TIMEOUT)
    assert (t1.state, t1.reason, t1.description) == ("unhealthy", "Target.Timeout",
                                                     "Request timed out")
    g.record(t0, False, *health.FAILED)
    assert t0.state == "healthy"
    g.record(t0, False, *health.FAILED)
    assert (t0.state, t0.reason) == ("unhealthy", "Target.FailedHealthChecks")
    assert g.candidates == (t0, t1)                 # all unhealthy: fail open
    for _ in range(2):
        g.record(t1, True)
    assert t1.state == "unhealthy"                  # healthy threshold is 3
    g.record(t1, True)
    assert t1.state == "healthy" and g.candidates == (t1,)


def test_disabled_checks_count_healthy() -> None:
    g = group("off", 1, enabled=False)
    assert g.targets[0].health()["state"] == "unavailable"
    assert g.targets[0].reason == "Target.HealthCheckDisabled"
    assert g.candidates == (g.targets[0],)


@pytest.mark.parametrize("text, codes", [
    ("200", {200}), ("200,202", {200, 202}), ("200-204", set(range(200, 205))),
    ("200, 301-302,404", {200, 301, 302, 404}), ("499", {499})])
def test_matcher(text: str, codes: set[int]) -> None:
    assert parse_matcher(text) == codes


@pytest.mark.parametrize("text", ["", "ok", "199", "500", "300-200", "200-", "2000", "200;201"])
def test_matcher_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_matcher(text)


def test_status_of() -> None:
    assert health.status_of(b"HTTP/1.1 503 Service Unavailable\r\n") == 503
    assert health.status_of(b"HTTP/1.0 200\r\n") == 200
    assert health.status_of(b"SSH-2.0-OpenSSH\r\n") is None
    assert health.status_of(b"") is None


def test_one_check_against_a_server_sends_aws_request_and_closes() -> None:
    seen: list[bytes] = []

    async def scenario() -> tuple[int | None, bytes]:
        done = asyncio.Event()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(head)
            writer.write(b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n")
            rest = await reader.read()              # EOF: the checker closed its side
            seen.append(rest)
            writer.close()
            done.set()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        status = await health.check_once("127.0.0.1", port, "/healthz", 2.0)
        await asyncio.wait_for(done.wait(), 2.0)
        server.close()
        refused_port = port
        await server.wait_closed()
        try:
            await health.check_once("127.0.0.1", refused_port, "/", 2.0)
            refused = b"answered"
        except OSError:
            refused = b"refused"
        return status, refused

    status, refused = asyncio.run(scenario())
    assert status == 418 and refused == b"refused"
    head = seen[0].decode()
    assert head.startswith("GET /healthz HTTP/1.1\r\n")
    assert "\r\nUser-Agent: ELB-HealthChecker/2.0\r\n" in head
    assert "\r\nConnection: close\r\n" in head
    assert seen[1] == b""
