"""Interleaved rounds: every contender of every case in turn, a warm-up run (discarded)
then a measured run, round after round, so that a slow minute of the shared machine
falls on all of them alike; then medians, ranges and the ratios to haproxy.

A *case* is one question — "the REST link, TLS" — and its contenders, haproxy first
(the reference), then API Gateway's front end (one or more personalities). Each round
starts at the next contender (A B C, B C A, …), so no one always runs first.

Numbers of a run: requests/s (wrk's requests ÷ its duration), p50 and p99 of wrk's
latency histogram, and the proxy's CPU per request: Δ(utime + stime) of its process over
the measured run ÷ requests completed, in µs — the capacity figure (1e6 ÷ it = requests
per second one core would carry), since with 50 connections across two CPUs the round
trip, not the proxy's CPU, may bound requests/s. It is split into user time (the proxy's
own code, TLS included) and system time (the kernel on its behalf: system calls, TCP).
Each run also records, from /proc/stat, how the proxy's CPU spent the run: the proxy,
other processes (the noise of a shared machine: none on a quiet one), interrupts
(softirqs: the kernel's receive side of the sockets, not charged to any process), and
steal (the hypervisor's).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

from .tools import PROXY_CPU, Contender, cpu_jiffies, cpu_seconds, cpu_use, wrk

REFERENCE = "haproxy"
FIGURES = ("rps", "p50_ms", "p99_ms", "cpu_us_per_request", "user_us_per_request",
           "system_us_per_request", "proxy_cpu_share", "proxy_cpu_other",
           "proxy_cpu_interrupts", "proxy_cpu_steal")


@dataclass
class Case:
    scenario: str          # "proxy" or "lab"
    path: str              # "front end alone", "REST link (PrivateLink)", …
    protocol: str          # "plain" or "tls"
    contenders: list[Contender]


@dataclass
class Timing:
    rounds: int
    warmup_s: int
    seconds: int


def measured_run(c: Contender, timing: Timing, script: str) -> dict:
    wrk(c.client_ns, c.url, c.host, timing.warmup_s, script)           # discarded
    (user0, system0), cpus_before = cpu_seconds(c.pid), cpu_jiffies()
    run = wrk(c.client_ns, c.url, c.host, timing.seconds, script)
    (user1, system1), use = cpu_seconds(c.pid), cpu_use(cpus_before, cpu_jiffies(), PROXY_CPU)
    user, system = user1 - user0, system1 - system0
    cpu, requests = user + system, max(run["requests"], 1)
    proxy_share = cpu / max(run["duration_us"] / 1e6, 1e-3)
    run.update(p50_ms=run["p50_us"] / 1000, p99_ms=run["p99_us"] / 1000,
               proxy_cpu_s=cpu, cpu_us_per_request=cpu * 1e6 / requests,
               user_us_per_request=user * 1e6 / requests,
               system_us_per_request=system * 1e6 / requests,
               proxy_cpu_use=use, proxy_cpu_share=proxy_share,
               # other processes on the proxy's CPU: the noise of a shared machine
               proxy_cpu_other=max(0.0, use["processes"] - proxy_share),
               proxy_cpu_interrupts=use["interrupts"], proxy_cpu_steal=use["steal"])
    return run


def run_cases(cases: list[Case], timing: Timing, script: str,
              say: Callable[[str], None] = print) -> list[dict]:
    """Every case's contenders, `timing.rounds` interleaved rounds; one row per
    (case, contender) with its runs."""
    rows = {(id(case), c.name): {"scenario": case.scenario, "path": case.path,
                                 "protocol": case.protocol, "proxy": c.name, "url": c.url,
                                 "host": c.host, "runs": []}
            for case in cases for c in case.contenders}
    for r in range(timing.rounds):
        for case in cases:
            k = r % len(case.contenders)
            for c in case.contenders[k:] + case.contenders[:k]:
                started = time.time()
                run = measured_run(c, timing, script)
                run.update(round=r + 1, started=started)
                rows[(id(case), c.name)]["runs"].append(run)
                say(f"  round {r + 1}/{timing.rounds} {case.scenario} {case.path} {case.protocol} "
                    f"{c.name}: {run['rps']:,.0f} req/s, p50 {run['p50_ms']:.2f} ms, "
                    f"p99 {run['p99_ms']:.2f} ms, {run['cpu_us_per_request']:.1f} µs CPU/req"
                    + (f", {run['non_2xx']} non-2xx" if run["non_2xx"] else ""))
    out = list(rows.values())
    for row in out:
        row["median"] = {f: statistics.median(run[f] for run in row["runs"]) for f in FIGURES}
        row["min"] = {f: min(run[f] for run in row["runs"]) for f in FIGURES}
        row["max"] = {f: max(run[f] for run in row["runs"]) for f in FIGURES}
    return out


# The goals for the front end against haproxy (issue 10, "Benchmark").
RPS_GOAL = {"plain": 0.75, "tls": 0.95}
P99_GOAL = 1.5


def ratios(rows: list[dict]) -> list[dict]:
    """Each front-end row over haproxy's row of the same case, medians over medians,
    with the issue's goals marked met or not."""
    ref = {(r["scenario"], r["path"], r["protocol"]): r for r in rows if r["proxy"] == REFERENCE}
    out = []
    for row in rows:
        base = ref.get((row["scenario"], row["path"], row["protocol"]))
        if row["proxy"] == REFERENCE or base is None:
            continue
        m, b = row["median"], base["median"]
        rps, p99 = m["rps"] / b["rps"], m["p99_ms"] / b["p99_ms"]
        out.append({"scenario": row["scenario"], "path": row["path"], "protocol": row["protocol"],
                    "proxy": row["proxy"], "rps": rps, "p50": m["p50_ms"] / b["p50_ms"],
                    "p99": p99, "cpu": m["cpu_us_per_request"] / b["cpu_us_per_request"],
                    "rps_goal": RPS_GOAL[row["protocol"]],
                    "rps_goal_met": rps >= RPS_GOAL[row["protocol"]],
                    "p99_goal_met": p99 <= P99_GOAL})
    return out


def failed_requests(rows: list[dict]) -> list[str]:
    """A sentence per run whose requests did not all succeed (non-2xx, socket errors):
    such a run measured something else than proxying."""
    out = []
    for row in rows:
        for run in row["runs"]:
            bad = {k: run[k] for k in ("non_2xx", "connect_errors", "read_errors",
                                       "write_errors", "timeouts") if run[k]}
            if bad:
                out.append(f"{row['scenario']} {row['path']} {row['protocol']} {row['proxy']} "
                           f"round {run['round']}: {bad} of {run['requests']} requests")
    return out
