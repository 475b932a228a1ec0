"""bench/apigw's pure parts: py-spy's samples summed by layer, by our function and by
leaf; the ratios to haproxy with the issue's goals; haproxy's proxy configuration; and
which `bgw-<pid>` labs `vpclab cleanup` takes for a killed run's."""
from __future__ import annotations

import os

import pytest

from bench.apigw.measure import ratios
from bench.apigw.profile import LOOP, RUNTIME, summarise
from bench.apigw.tools import ProxyFrontend, Server, proxy_config
from netns_setup.scratch import dead_bench_lab

MAIN = "main (dataplane/services/apigw/__main__.py:40);run (uvloop/__init__.py:82)"
SAMPLES = [
    f"{MAIN};data_received (dataplane/services/proxy/engine.py:200);send (dataplane/services/proxy/backend.py:90);write (libc.so.6) 50",
    f"{MAIN};data_received (dataplane/services/proxy/engine.py:200);route (dataplane/services/apigw/personality.py:120) 20",
    f"{MAIN};data_received (dataplane/services/proxy/engine.py:200);route (dataplane/services/apigw/personality.py:120);"
    f"PyLong_FromLong (longobject.c:300) 5",
    f"{MAIN};TimerHandle___cinit__ (loop.c) 10",
    f"{MAIN};_send (dataplane/services/proxy/engine.py:300);SSL_write (libssl.so.3) 15",
]


def test_samples_are_summed_by_layer_function_and_leaf() -> None:
    s = summarise(SAMPLES)
    assert s["samples"] == 100
    layers = dict(s["by_layer"])
    assert layers == {"libc (system calls, memcpy)": 0.5,
                      "API Gateway's logic (services/apigw, Python)": 0.2,
                      "TLS (OpenSSL: libssl, libcrypto)": 0.15,
                      "uvloop's event loop and libuv (C)": 0.1, RUNTIME: 0.05}
    functions = dict(s["by_function"])
    assert functions["send (dataplane/services/proxy/backend.py)"] == 0.5
    assert functions["route (dataplane/services/apigw/personality.py)"] == 0.25     # with the C it called
    assert functions[LOOP] == 0.1
    assert dict(s["by_leaf"])["write (libc.so.6)"] == 0.5


def test_no_samples_is_an_error_not_an_empty_profile() -> None:
    with pytest.raises(RuntimeError, match="no samples"):
        summarise([])


def row(proxy: str, protocol: str, rps: float, p99: float, cpu: float) -> dict:
    return {"scenario": "proxy", "path": "p", "protocol": protocol, "proxy": proxy,
            "median": {"rps": rps, "p50_ms": 1.0, "p99_ms": p99, "cpu_us_per_request": cpu}}


def test_ratios_are_of_medians_to_haproxy_of_the_same_case_with_the_goals() -> None:
    rows = [row("haproxy", "plain", 1000, 10, 20), row("apigw", "plain", 800, 16, 30),
            row("haproxy", "tls", 1000, 10, 20), row("apigw", "tls", 940, 15, 25)]
    plain, tls = ratios(rows)
    assert (plain["rps"], plain["p99"], plain["cpu"]) == (0.8, 1.6, 1.5)
    assert plain["rps_goal_met"] and not plain["p99_goal_met"]
    assert tls["rps"] == 0.94 and not tls["rps_goal_met"] and tls["p99_goal_met"]


def test_haproxy_proxies_like_the_front_end() -> None:
    cfg = proxy_config([ProxyFrontend("v2", [("203.0.113.1", 8081, False), ("203.0.113.1", 8444, True)],
                                      [Server("10.0.1.6", 80, "lab.apigw.app-link")],
                                      "nlb.example", "/x/lab.pem")])
    assert "bind 203.0.113.1:8444 ssl crt /x/lab.pem ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2" in cfg
    assert "server s0 10.0.1.6:80 maxconn 200 namespace lab.apigw.app-link" in cfg
    assert "http-request set-header Host nlb.example" in cfg and "http-reuse always" in cfg


def test_a_bench_lab_is_a_killed_runs_only_when_its_process_is_gone() -> None:
    assert dead_bench_lab("bgw-5000000")              # above PID_MAX_LIMIT
    assert not dead_bench_lab(f"bgw-{os.getpid()}")
    assert not dead_bench_lab("demo") and not dead_bench_lab("bgw-x1")
