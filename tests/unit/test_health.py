"""NLB target health: state machine driven by explicit time, fail-open, validation, and
the real TCP/HTTP probes against servers on loopback."""
from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from dataplane.forwarder.health import HealthCheck, TargetGroupHealth, probe_http, probe_tcp

A, B = ("10.0.2.20", 8080), ("10.0.2.21", 8080)


def group(**check) -> TargetGroupHealth:
    g = TargetGroupHealth(HealthCheck(**{"interval": 5, "healthy_threshold": 2,
                                         "unhealthy_threshold": 2, **check}))
    g.register(A, now=0)
    g.register(B, now=0)
    return g


def test_initial_to_healthy_after_the_threshold_and_checks_every_interval() -> None:
    g = group()
    assert g.targets[A].state == "initial" and g.targets[A].reason == "Elb.InitialHealthChecking"
    assert g.due(0) == [A, B]
    assert g.record(A, True, 0) is None
    assert g.due(4.9) == [B] and g.due(5) == [A, B]
    assert g.record(A, True, 5) == "healthy"
    assert g.targets[A].reason is None


def test_unhealthy_after_failures_in_a_row_and_back() -> None:
    g = group()
    for t in (0, 5):
        g.record(A, True, t)
    assert g.record(A, False, 10, "timed out") is None      # one failure: still healthy
    assert g.record(A, True, 15) is None                     # the run is broken
    assert g.record(A, False, 20) is None
    assert g.record(A, False, 25, "Connection refused") == "unhealthy"
    assert g.targets[A].reason == "Target.FailedHealthChecks"
    assert g.targets[A].last_error == "Connection refused"
    assert g.record(A, True, 30) is None
    assert g.record(A, True, 35) == "healthy"


def test_new_flows_go_to_healthy_targets_and_fail_open_when_none_is() -> None:
    g = group()
    assert sorted(g.routable()) == [A, B]                    # none healthy yet: fail open
    g.record(A, True, 0), g.record(A, True, 5)
    assert g.routable() == [A]
    g.record(A, False, 10), g.record(A, False, 15)
    assert sorted(g.routable()) == [A, B]                    # all unhealthy: fail open again
    g.deregister(B)
    assert g.routable() == [A] and g.due(100) == [A]         # draining: neither routed nor checked
    assert g.targets[B].reason == "Target.DeregistrationInProgress"


@pytest.mark.parametrize("kwargs, message", [
    ({"protocol": "UDP"}, "protocol: 'UDP' is not one of TCP, HTTP, HTTPS"),
    ({"interval": 4}, "interval: 4 is outside 5-300"),
    ({"healthy_threshold": 11}, "healthy_threshold: 11 is outside 2-10"),
    ({"unhealthy_threshold": 1}, "unhealthy_threshold: 1 is outside 2-10"),
    ({"timeout": 1}, "timeout: 1 is outside 2-120"),
    ({"protocol": "HTTP", "matcher": "ok"}, "matcher: 'ok' is not like"),
])
def test_health_check_settings_are_checked(kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HealthCheck(**kwargs)


def test_defaults_follow_elb() -> None:
    assert HealthCheck().effective_timeout == 10 and HealthCheck(protocol="HTTP").effective_timeout == 6
    hc = HealthCheck(protocol="HTTP", matcher="200,302-304")
    assert [hc.matches(s) for s in (200, 301, 303, 500)] == [True, False, True, False]


@pytest.fixture
def http_server():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers["Host"]))
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_probes_against_real_servers(http_server) -> None:
    port, seen = http_server
    ok = HealthCheck(protocol="HTTP", path="/ok")
    bad = HealthCheck(protocol="HTTP", path="/down")

    async def run():
        return (await probe_tcp("127.0.0.1", port, 2),
                await probe_http("127.0.0.1", port, 2, ok, "10.0.1.100:80"),
                await probe_http("127.0.0.1", port, 2, bad, "10.0.1.100:80"))

    tcp, http_ok, http_bad = asyncio.run(run())
    assert tcp == (True, "") and http_ok == (True, "") and http_bad == (False, "HTTP 503")
    assert seen == [("/ok", "10.0.1.100:80"), ("/down", "10.0.1.100:80")]


def test_probe_of_a_closed_port_fails() -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # bound, not listening: refused
        ok, error = asyncio.run(probe_tcp("127.0.0.1", port, 2))
    assert not ok and "refused" in error.lower()


def test_backend_choice_prefers_own_az_then_other_azs_then_fails_open() -> None:
    from dataplane.forwarder.healthd import choose_backends
    from dataplane.compile.spec import Backend
    a1, a2, b1 = Backend("10.0.1.4", 80), Backend("10.0.1.5", 80), Backend("10.0.2.4", 80)
    backends, own = [a1, a2, b1], [("10.0.1.4", 80), ("10.0.1.5", 80)]
    everyone = choose_backends(backends, own, lambda b: True)
    assert everyone == [a1, a2]                                         # cross-zone off
    assert choose_backends(backends, own, lambda b: b is not a1) == [a2]
    assert choose_backends(backends, own, lambda b: b is b1) == [b1]    # own AZ all down
    assert choose_backends(backends, own, lambda b: False) == [a1, a2]  # fail open
    assert choose_backends(backends, [], lambda b: b is b1) == [b1]     # no AZ preference
