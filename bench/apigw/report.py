"""results.json and report.md of one run of bench/apigw: the machine, the method, the
ratios of API Gateway's front end and of the ALB node to haproxy with the issues' goals
marked, every number with its range, the profiles, where the ALB scenario's haproxy
differs from the node's rule set, and the services' own counters."""
from __future__ import annotations

import json
import os
import time

from bench.e2e.report import host, tool_version

from .alb_rules import DIFFERENCES
from .measure import P99_GOAL, RPS_GOAL, failed_requests, ratios
from .tools import CONNECTIONS, LOAD_CPU, NICE, PROXY_CPU


def build(scenarios: dict, settings: dict, started: float, errors: list[str]) -> dict:
    rows = [row for s in scenarios.values() for row in s.get("rows", [])]
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "settings": settings,
        "machine": {**host(), "haproxy": tool_version(["haproxy", "-v"]),
                    "wrk": tool_version(["wrk", "-v"]), "proxy_cpu": PROXY_CPU,
                    "load_cpu": LOAD_CPU},
        "rows": rows,
        "ratios": ratios(rows),
        "profiles": {k: v for s in scenarios.values() for k, v in s.get("profiles", {}).items()},
        "front_end_stats": {name: s.get("front_end_stats") for name, s in scenarios.items()},
        "setup": {name: s.get("setup") for name, s in scenarios.items()},
        "errors": errors + failed_requests(rows),
    }


def _n(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _range(row: dict, key: str) -> str:
    return f"{_n(row['median'][key])} [{_n(row['min'][key])}–{_n(row['max'][key])}]"


def readme_lines(res: dict) -> list[str]:
    """One line per (scenario, path, proxy): the README's ratios."""
    lines = []
    for r in res["ratios"]:
        if r["protocol"] != "plain":
            continue
        tls = next((t for t in res["ratios"] if t["protocol"] == "tls" and
                    (t["scenario"], t["path"], t["proxy"]) == (r["scenario"], r["path"], r["proxy"])), None)
        line = (f"* {r['proxy']} / haproxy, {r['path']}: {r['rps']:.2f}× req/s plain "
                f"(p99 {r['p99']:.2f}×, CPU/request {r['cpu']:.2f}×)")
        if tls:
            line += f", {tls['rps']:.2f}× with TLS 1.2 (p99 {tls['p99']:.2f}×, CPU/request {tls['cpu']:.2f}×)"
        lines.append(line)
    return lines


def markdown(res: dict) -> str:
    m, st = res["machine"], res["settings"]
    out = [
        "# API Gateway's front end and the ALB node against haproxy (bench/apigw)", "",
        f"Run {res['started']}, {res['duration_s'] / 60:.1f} min; {m['cpus']} × {m['cpu']}, "
        f"{m['memory_gb']} GB, kernel {m['kernel']}, Python {m['python']}, commit {m['commit']}; "
        f"{m['haproxy']}; {m['wrk']}; load average at the end {' '.join(m['loadavg'])}.", "",
        f"Each proxy alone on CPU {m['proxy_cpu']} (`taskset`), wrk and the backend on CPU "
        f"{m['load_cpu']}, all at nice {NICE}; wrk `-t1 -c{CONNECTIONS}`, keep-alive, a {st['warmup_s']} s warm-up "
        f"(discarded) then a {st['seconds']} s measured run, {st['rounds']} interleaved round(s); "
        f"medians [min–max]. Ratios: the front end's (the node's) median over haproxy's of the same case. "
        f"Goals (issue 10, and issue 11 for the ALB alike): req/s ≥ {RPS_GOAL['plain']}× plain, ≥ {RPS_GOAL['tls']}× TLS; "
        f"p99 ≤ {P99_GOAL}×.", "",
        "## Ratios to haproxy", "",
        "| scenario | path | protocol | proxy | req/s | p50 | p99 | CPU µs/request | req/s goal | p99 goal |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["ratios"]:
        out.append(f"| {r['scenario']} | {r['path']} | {r['protocol']} | {r['proxy']} | "
                   f"**{r['rps']:.2f}** | {r['p50']:.2f} | {r['p99']:.2f} | {r['cpu']:.2f} | "
                   f"≥ {r['rps_goal']}: {'met' if r['rps_goal_met'] else '**not met**'} | "
                   f"≤ {P99_GOAL}: {'met' if r['p99_goal_met'] else '**not met**'} |")
    out += ["", "## Numbers", "",
            "| scenario | path | protocol | proxy | req/s | p50 ms | p99 ms | proxy CPU µs/request "
            f"| of which user / system | CPU {m['proxy_cpu']}: proxy / other processes / softirq / steal |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for row in res["rows"]:
        out.append(f"| {row['scenario']} | {row['path']} | {row['protocol']} | {row['proxy']} | "
                   f"{_range(row, 'rps')} | {_range(row, 'p50_ms')} | {_range(row, 'p99_ms')} | "
                   f"{_range(row, 'cpu_us_per_request')} | {row['median']['user_us_per_request']:.0f} / "
                   f"{row['median']['system_us_per_request']:.0f} | {row['median']['proxy_cpu_share']:.0%} / "
                   f"{row['median']['proxy_cpu_other']:.0%} / {row['median']['proxy_cpu_interrupts']:.0%} / "
                   f"{row['median']['proxy_cpu_steal']:.0%} |")
    for name, p in res["profiles"].items():
        out += ["", f"## Profile: {name} ({p['samples']:,} samples, py-spy --native, "
                    f"{p['rate_hz']} Hz, {p['seconds']} s)", "",
                "| where (innermost frame) | share |", "|---|---|"]
        out += [f"| {layer} | {share:.1%} |" for layer, share in p["by_layer"]]
        out += ["", "| for which of our functions (innermost dataplane/ frame) | share |", "|---|---|"]
        out += [f"| `{fn}` | {share:.1%} |" for fn, share in p["by_function"]]
        out += ["", "| leaf (self time) | share |", "|---|---|"]
        out += [f"| `{fn}` | {share:.1%} |" for fn, share in p["by_leaf"]]
    if "alb" in res["setup"]:
        out += ["", "## The ALB scenario's haproxy: where it differs from the node's rule set", ""]
        out += [f"* {d}" for d in DIFFERENCES]
    out += ["", "## README lines", ""] + readme_lines(res)
    for name, stats in res["front_end_stats"].items():
        if stats:
            who = "The ALB node's" if name == "alb" else "The front end's"
            out += ["", f"## {who} counters after the {name} scenario", "", "```",
                    json.dumps(stats, indent=1, sort_keys=True)[:3000], "```"]
    if res["errors"]:
        out += ["", "## Errors", ""] + [f"* {e}" for e in res["errors"]]
    return "\n".join(out) + "\n"


def write(res: dict, out: str) -> None:
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(markdown(res))
