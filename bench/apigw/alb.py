"""The ALB scenario: one ALB node (`python -m dataplane.services.alb --config FILE`,
notes/alb-config.md) alone against haproxy configured for the same rule set
(alb_rules.py), on three scratch namespaces (netns_setup/scratch.py, names `bal-<pid>-…`):

    bal-P-cli                   bal-P-alb                           bal-P-back
    eth0 10.0.1.10/24 ──── cli0 10.0.1.5   [node, CPU 0]   back0 10.0.2.1 ──── eth0 10.0.2.20–.24/24
    wrk (CPU 1)             ALB node :80/:443                                 haproxy answering 200
                            haproxy :8080/:8443                               itself on :8080 (CPU 1)

Both load balancers run all along, each pinned alone on CPU 0, and take load in turn;
wrk and the backend share CPU 1 (the proxy scenario's budget, AWS-FACTS-HTTP Part 3's
method). The backend namespace holds the five targets' addresses (api-tg ×2, canary-tg,
web-tg ×2) on one haproxy. TLS listeners: one P-256 certificate from a scratch CA; wrk
speaks TLS 1.2 to both (tools.py: the node accepts TLS 1.2 and later, haproxy only 1.2).

Before any load: the node's health checks must find every target healthy (its `health`
command; each check is `interval` 5 s apart, the shortest AWS allows), and PROBES — one
request per rule of the set — must get from each load balancer what the rule says: the
two forwards 200 and the backend's body, `admin.*` 403 "no", the POST with `x-debug: 1`
a 301 to `/debug` with the query kept; otherwise the run stops, naming the difference.

Measured, each plain and TLS 1.2: `GET /api/hello` (rule 10 matches first: the weighted
choice between two target groups) and `GET /hello` with the ALB's own DNS name as Host
(rules 10, 20 and 30 miss: the default, web-tg). Afterwards the node's `stats` and
`health` replies go into results.json, with the requests each load balancer's access log
shows per target group (api-tg : canary-tg should be 3 : 1 on both).
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable

from dataplane.forwarder import control
from dataplane.lab import ca
from netns_setup.scratch import Scratch

from . import profile as profiling
from .alb_rules import DNS_NAME, TARGET_PORT, TARGETS, haproxy_config, node_config
from .measure import Case, Timing, run_cases
from .proxy import chain
from .tools import (LOAD_CPU, PROXY_CPU, BenchError, Contender, backend_config, curl,
                    front_end_stats, start_haproxy, start_service, stop, tail, write_pem)

RUN_ROOT = "bal-"
CLIENT_IP, NODE_IP, NODE_BACKEND_SIDE = "10.0.1.10", "10.0.1.5", "10.0.2.1"
NODE_PORTS = {"plain": 80, "tls": 443}
BASELINE_PORTS = {"plain": 81, "tls": 444}      # --baseline's node
HAPROXY_PORTS = {"plain": 8080, "tls": 8443}
HEALTHY_WAIT_S = 30
PATHS = {"/api/hello": "rule 10: /api/* → api-tg 3 : canary-tg 1",
         "/hello": "default (rules 10–30 miss) → web-tg"}
NODE = "ALB node"
BASELINE = "ALB node (baseline)"
# (what, method, path?query, Host, extra headers, status, body contains, Location after host:port)
PROBES = [
    ("rule 10, weighted forward", "GET", "/api/x", DNS_NAME, (), 200, "hello from backend", None),
    ("rule 10 before rule 20", "GET", "/api/x", "admin.example.com", (), 200, "hello from backend", None),
    ("rule 20, fixed-response", "GET", "/x", "Admin.Example.com:8080", (), 403, "no", None),
    ("rule 30, redirect", "POST", "/x?a=1", "shop.example.com", ("X-Debug: 1",), 301, "", "/debug?a=1"),
    ("rule 30 needs POST", "GET", "/x", DNS_NAME, ("X-Debug: 1",), 200, "hello from backend", None),
    ("default forward", "GET", "/hello", DNS_NAME, (), 200, "hello from backend", None),
]


def probe(ns: str, scheme: str, address: str, port: int) -> list[str]:
    """PROBES against one load balancer: a sentence per answer that is not the rule's."""
    wrong = []
    for what, method, target, host, headers, status, body, location in PROBES:
        a = curl(ns, f"{scheme}://{address}:{port}{target}", host, method, headers)
        expected = (f"{scheme}://{host.split(':')[0]}:{port}{location}" if location else None)
        if a.status != status or body not in a.body or a.headers.get("location") != expected:
            wrong.append(f"{what}: {method} {target} Host {host} → {a.status or a.error} "
                         f"{a.body.strip()[:80]!r} Location {a.headers.get('location')!r}; "
                         f"the rule says {status} {body!r} Location {expected!r}")
    return wrong


def served_by_group(access_log: str) -> dict[str, int]:
    """Requests per target group, counted from an access log's target field (the 5th in
    the ALB's format and in haproxy's translation of it): the weighted split as served."""
    group_of = {f"{ip}:{TARGET_PORT}": tg for tg, ips in TARGETS.items() for ip in ips}
    counts = dict.fromkeys(TARGETS, 0)
    with open(access_log, errors="replace") as f:
        for line in f:
            fields = line.split(" ", 5)
            if len(fields) > 5 and fields[4] in group_of:
                counts[group_of[fields[4]]] += 1
    return counts


def wait_healthy(socket: str, log: str) -> dict:
    """The node's `health` once every target of every target group is healthy."""
    deadline = time.monotonic() + HEALTHY_WAIT_S
    while True:
        try:
            reply = front_end_stats(socket, "health")
        except (control.ControlError, OSError) as exc:
            raise BenchError(f"the ALB node's `health` failed: {exc}; its log: {tail(log)}") from None
        states = {f"{tg}/{t.get('id')}": t.get("state") for tg, targets in
                  (reply.get("target_groups") or {}).items() for t in targets}
        want = {f"{tg}/{tg}-{j}" for tg, ips in TARGETS.items() for j in range(len(ips))}
        if set(states) >= want and all(states[k] == "healthy" for k in want):
            return reply
        if time.monotonic() > deadline:
            raise BenchError(f"the ALB node's targets were not all healthy after {HEALTHY_WAIT_S} s: "
                             f"{states or reply}")
        time.sleep(0.5)


def run(workdir: str, out: str, timing: Timing, script: str, profile_s: int,
        say: Callable[[str], None] = print, baseline: str | None = None) -> dict:
    """Builds the namespaces, checks both load balancers against PROBES, runs the
    cases, profiles the node; removes it all. With `baseline` (a directory holding
    another checkout of vpclab), a second node runs that code on BASELINE_PORTS, checked
    and measured like the first, in the same rounds: before and after in one run."""
    scratch = Scratch(RUN_ROOT)
    procs = []
    try:
        cli, node_ns, back = chain(scratch, "alb", CLIENT_IP, NODE_IP, NODE_BACKEND_SIDE,
                                   [ip for ips in TARGETS.values() for ip in ips])
        say(f"alb scenario: namespaces {cli}, {node_ns}, {back}")
        certs = ca.make(workdir, "bench", "alb", [DNS_NAME, "*.example.com"])
        pem = write_pem(certs["cert"], certs["key"], os.path.join(workdir, "alb-haproxy.pem"))
        procs.append(start_haproxy(back, backend_config("0.0.0.0", TARGET_PORT),
                                   os.path.join(workdir, "alb-backend.cfg"), LOAD_CPU,
                                   os.path.join(workdir, "alb-backend.log")))
        config = node_config(workdir, NODE_IP, NODE_PORTS, certs["cert"], certs["key"])
        haproxy_cfg = haproxy_config(config, {NODE_PORTS[p]: (NODE_IP, HAPROXY_PORTS[p])
                                              for p in NODE_PORTS}, pem)
        # haproxy's stdout is its access log (alb_rules.LOG_FORMAT), as the node writes its own
        haproxy = start_haproxy(node_ns, haproxy_cfg, os.path.join(workdir, "alb-haproxy.cfg"),
                                PROXY_CPU, os.path.join(workdir, "alb-haproxy.log"))
        procs.append(haproxy)
        config_path = os.path.join(workdir, "alb.json")
        with open(config_path, "w") as f:
            json.dump(config, f, indent=1)
        node_log = os.path.join(workdir, "alb-node.log")
        node = start_service(node_ns, "dataplane.services.alb", config_path, config["socket"],
                             PROXY_CPU, node_log, "the ALB node")
        procs.append(node)
        base = None
        if baseline is not None:
            base_dir = os.path.join(workdir, "baseline")
            os.makedirs(base_dir, exist_ok=True)
            base_config = node_config(base_dir, NODE_IP, BASELINE_PORTS, certs["cert"], certs["key"])
            base_path = os.path.join(base_dir, "alb.json")
            with open(base_path, "w") as f:
                json.dump(base_config, f, indent=1)
            base = start_service(node_ns, "dataplane.services.alb", base_path, base_config["socket"],
                                 PROXY_CPU, os.path.join(base_dir, "alb-node.log"), BASELINE,
                                 source=baseline)
            procs.append(base)
            wait_healthy(base_config["socket"], os.path.join(base_dir, "alb-node.log"))
        health = wait_healthy(config["socket"], node_log)
        wrong = []
        for protocol in ("plain", "tls"):
            scheme = "https" if protocol == "tls" else "http"
            wrong += [f"haproxy {protocol}: {w}" for w in probe(cli, scheme, NODE_IP, HAPROXY_PORTS[protocol])]
            wrong += [f"{NODE} {protocol}: {w}" for w in probe(cli, scheme, NODE_IP, NODE_PORTS[protocol])]
            if base is not None:
                wrong += [f"{BASELINE} {protocol}: {w}"
                          for w in probe(cli, scheme, NODE_IP, BASELINE_PORTS[protocol])]
        if wrong:
            raise BenchError("the load balancers do not answer as the rule set says: " + "; ".join(wrong))

        def url(protocol: str, port: int, path: str) -> str:
            return f"{'https' if protocol == 'tls' else 'http'}://{NODE_IP}:{port}{path}"
        cases = [Case("alb", label, protocol, [
                    Contender("haproxy", cli, url(protocol, HAPROXY_PORTS[protocol], path), DNS_NAME,
                              haproxy.pid),
                    Contender(NODE, cli, url(protocol, NODE_PORTS[protocol], path), DNS_NAME, node.pid),
                    *([Contender(BASELINE, cli, url(protocol, BASELINE_PORTS[protocol], path), DNS_NAME,
                                 base.pid)] if base is not None else [])])
                 for path, label in PATHS.items() for protocol in ("plain", "tls")]
        rows = run_cases(cases, timing, script, say)
        stats = front_end_stats(config["socket"])
        stats["health"] = front_end_stats(config["socket"], "health")
        stats["served_by_target_group"] = {
            "haproxy": served_by_group(os.path.join(workdir, "alb-haproxy.log")),
            NODE: served_by_group(config["access_log"])}
        profiles = profiling.record_cases(cases[:2], profile_s, script, out, "profile-alb", say) \
            if profile_s else {}                # rule 10, plain and TLS
        return {"rows": rows, "front_end_stats": stats, "profiles": profiles,
                "setup": {"namespaces": [cli, node_ns, back], "node_config": config,
                          "health_before": health, "haproxy_config": haproxy_cfg,
                          "backend_config": open(os.path.join(workdir, "alb-backend.cfg")).read()}}
    finally:
        for p in reversed(procs):
            stop(p)
        scratch.remove()
