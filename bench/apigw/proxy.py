"""The proxy scenario: API Gateway's front end alone against haproxy, on three scratch
namespaces (netns_setup/scratch.py, names `vg-<pid>-…`):

    vg-P-cli                     vg-P-proxy                        vg-P-back
    eth0 10.0.1.10/24 ──── cli0 10.0.1.1   [proxy, CPU 0]   back0 10.0.2.1 ──── eth0 10.0.2.20/24
    wrk (CPU 1)                 haproxy :8080/:8443                          haproxy answering
                                front end :80/:443                           200 itself (CPU 1)

Both proxies run all along, each pinned alone on CPU 0 (`taskset -c 0`), and take load
in turn; wrk and the backend share CPU 1 (AWS-FACTS-HTTP Part 3's method). The front end
serves two APIs on one integration, the backend: a REST API (stage `prod`, `ANY
/{proxy+}` over a REST link: sockets from its own namespace) and an HTTP API (`$default`,
`ANY /{proxy+}` over an HTTP link whose namespace is the proxy's own, so its backend
sockets are made through netns_setup's NetnsSockets as in a lab). haproxy does the same
proxying: the integration's Host, X-Forwarded-For/-Proto/-Port, a keep-alive pool.
TLS listeners are TLS 1.2 only on both, with one P-256 certificate from a scratch CA
(dataplane/lab/ca.py). The account's throttle is lifted (a quota, not the front end).
"""
from __future__ import annotations

import json
import os
from typing import Callable

from dataplane.lab import ca
from netns_setup.scratch import Scratch

from . import profile as profiling
from .measure import Case, Timing, run_cases
from .tools import (LOAD_CPU, PROXY_CPU, BenchError, Contender, ProxyFrontend, Server,
                    backend_config, curl, front_end_stats, proxy_config, start_front_end,
                    start_haproxy, stop, write_pem)

RUN_ROOT = "vg-"
CLIENT_IP, PROXY_CLIENT_SIDE, PROXY_BACKEND_SIDE, BACKEND_IP = (
    "10.0.1.10", "10.0.1.1", "10.0.2.1", "10.0.2.20")
REGION = "us-east-1"
REST_ID, HTTP_ID = "benchrest0", "benchhttp0"
BACKEND_HOST = "backend.bench.internal"
HAPROXY_PORTS = {"plain": 8080, "tls": 8443}
FRONT_END_PORTS = {"plain": 80, "tls": 443}
UNTHROTTLED = {"rate": 1_000_000, "burst": 1_000_000}


def api_host(api_id: str) -> str:
    return f"{api_id}.execute-api.{REGION}.amazonaws.com"


def front_end_config(workdir: str, proxy_ns: str, cert: str, key: str) -> dict:
    """notes/apigw-config.md's contract, for one backend reached by both kinds of API."""
    route = {"timeout_ms": 29000, "host": BACKEND_HOST, "addresses": [BACKEND_IP], "port": 80}
    return {
        "version": 1, "lab": "bench", "region": REGION, "account_id": "123456789012",
        "listeners": [{"address": PROXY_CLIENT_SIDE, "port": FRONT_END_PORTS["plain"], "tls": False},
                      {"address": PROXY_CLIENT_SIDE, "port": FRONT_END_PORTS["tls"], "tls": True}],
        "tls": {"cert": cert, "key": key},
        "socket": os.path.join(workdir, "apigw.sock"),
        "log_dir": os.path.join(workdir, "apigw"),
        "account_throttle": dict(UNTHROTTLED),
        "links": {
            "rest-link": {"id": "vpclink-rest0", "type": "REST", "state": "AVAILABLE",
                          "message": None, "netns": None},
            "http-link": {"id": "vpclink-http0", "type": "HTTP", "state": "AVAILABLE",
                          "message": None, "netns": proxy_ns}},
        "apis": [
            {"id": REST_ID, "name": "rest", "type": "REST", "stages": ["prod"], "throttle": None,
             "routes": [{"key": "ANY /{proxy+}", "link": "rest-link",
                         "uri": f"http://{BACKEND_HOST}/{{proxy}}", **route}]},
            {"id": HTTP_ID, "name": "http", "type": "HTTP", "stages": ["$default"],
             "throttle": None,
             "routes": [{"key": "ANY /{proxy+}", "link": "http-link", "uri": None,
                         **route, "timeout_ms": 30000}]}]}


def check_answers(ns: str, c: Contender) -> None:
    """One request with curl before any load: 200 and the backend's body, or a clear error."""
    answer = curl(ns, c.url, c.host)
    if answer.status != 200 or "hello from backend" not in answer.body:
        raise BenchError(f"{c.name} did not proxy {c.url} (Host {c.host}): HTTP "
                         f"{answer.status or '-'} {answer.body.strip()[:200]!r} {answer.error}")


def chain(scratch: Scratch, middle: str, client_ip: str, middle_client_side: str,
          middle_backend_side: str, backend_ips: list[str]) -> tuple[str, str, str]:
    """Namespaces `cli` → `middle` → `back` (all /24s): the client's eth0 to the middle's
    cli0, the backend's eth0 (holding every address of `backend_ips`) to its back0."""
    cli, mid, back = (scratch.namespace(r) for r in ("cli", middle, "back"))
    scratch.veth(cli, "eth0", mid, "cli0")
    scratch.veth(back, "eth0", mid, "back0")
    scratch.address(cli, "eth0", client_ip, 24)
    scratch.address(mid, "cli0", middle_client_side, 24)
    scratch.address(mid, "back0", middle_backend_side, 24)
    for ip in backend_ips:
        scratch.address(back, "eth0", ip, 24)
    return cli, mid, back


def run(workdir: str, out: str, timing: Timing, script: str, profile_s: int,
        say: Callable[[str], None] = print) -> dict:
    """Builds the namespaces, runs the cases, profiles the front end (py-spy's raw
    samples go to `out`); removes it all."""
    scratch = Scratch(RUN_ROOT)
    procs = []
    try:
        cli, proxy, back = chain(scratch, "proxy", CLIENT_IP, PROXY_CLIENT_SIDE,
                                 PROXY_BACKEND_SIDE, [BACKEND_IP])
        say(f"proxy scenario: namespaces {cli}, {proxy}, {back}")
        certs = ca.make(workdir, "bench", "apigw", [f"*.execute-api.{REGION}.amazonaws.com"])
        pem = write_pem(certs["cert"], certs["key"], os.path.join(workdir, "haproxy.pem"))
        procs.append(start_haproxy(back, backend_config(BACKEND_IP, 80),
                                   os.path.join(workdir, "backend.cfg"), LOAD_CPU,
                                   os.path.join(workdir, "backend.log")))
        binds = [(PROXY_CLIENT_SIDE, HAPROXY_PORTS[p], p == "tls") for p in ("plain", "tls")]
        haproxy = start_haproxy(proxy, proxy_config([ProxyFrontend(
            "bench", binds, [Server(BACKEND_IP, 80)], BACKEND_HOST, pem)]),
            os.path.join(workdir, "proxy.cfg"), PROXY_CPU, os.path.join(workdir, "proxy.log"))
        procs.append(haproxy)
        config = front_end_config(workdir, proxy, certs["cert"], certs["key"])
        os.makedirs(config["log_dir"], exist_ok=True)
        config_path = os.path.join(workdir, "apigw.json")
        with open(config_path, "w") as f:
            json.dump(config, f, indent=1)
        front_end = start_front_end(proxy, config_path, config["socket"], PROXY_CPU,
                                    os.path.join(workdir, "apigw.log"))
        procs.append(front_end)

        def url(protocol: str, port: int, path: str) -> str:
            scheme = "https" if protocol == "tls" else "http"
            return f"{scheme}://{PROXY_CLIENT_SIDE}:{port}{path}"
        cases = []
        for protocol in ("plain", "tls"):
            cases.append(Case("proxy", "front end alone", protocol, [
                Contender("haproxy", cli, url(protocol, HAPROXY_PORTS[protocol], "/prod/hello"),
                          api_host(REST_ID), haproxy.pid),
                Contender("apigw REST API", cli, url(protocol, FRONT_END_PORTS[protocol], "/prod/hello"),
                          api_host(REST_ID), front_end.pid),
                Contender("apigw HTTP API", cli, url(protocol, FRONT_END_PORTS[protocol], "/hello"),
                          api_host(HTTP_ID), front_end.pid)]))
        for case in cases:
            for c in case.contenders:
                check_answers(cli, c)
        rows = run_cases(cases, timing, script, say)
        stats = front_end_stats(config["socket"])
        profiles = profiling.record_cases(cases, profile_s, script, out, "profile", say) \
            if profile_s else {}
        return {"rows": rows, "front_end_stats": stats, "profiles": profiles,
                "setup": {"namespaces": [cli, proxy, back], "front_end_config": config,
                          "haproxy_config": open(os.path.join(workdir, "proxy.cfg")).read(),
                          "backend_config": open(os.path.join(workdir, "backend.cfg")).read()}}
    finally:
        for p in reversed(procs):
            stop(p)
        scratch.remove()
