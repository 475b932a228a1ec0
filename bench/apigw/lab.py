"""The lab scenario: a real lab (`vpclab up`), named `bgw-<pid>`, from TOPOLOGY below —
examples/api-gateway.yaml's shape with fast targets — and the two private-integration
paths through it, API Gateway's front end beside haproxy doing the same proxying:

    bgw-P.internet ── 203.0.113.1 ─ bgw-P.apigw (front end :80/:443, haproxy :8080/:8443, :8081/:8444)
      wrk, CPU 1          │  REST API → the REST link's endpoint ENIs (PrivateLink) → NLB → targets
                          │  HTTP API → from bgw-P.apigw.app-link over the V2 link → NLB nodes → targets

* Targets: two instances (one per AZ) running haproxy that answers every request itself
  (tools.backend_config), pinned to CPU 1.
* haproxy, beside the front end in `<lab>.apigw` and pinned alone with it on CPU 0:
  frontend `rest` (:8080, :8443 TLS) to the REST route's addresses (the endpoint ENIs),
  frontend `v2` (:8081, :8444 TLS) to the HTTP route's addresses (the NLB's nodes) with
  `namespace <lab>.apigw.app-link` on each server, so its sockets are made in the link's
  namespace as the front end's are. Both take their addresses, ports and Host from the
  front end's own configuration (/run/vpclab/<lab>/apigw.json).
* Pinning: the front end (the lab's `apigw` process, re-pinned with `taskset -a -p`) and
  haproxy on CPU 0; every other process of the lab — the Hyperplane forwarder that
  carries both paths, the resolvers — on CPU 1 with wrk and the targets; all at nice -20
  (tools.py says why).
* The topology raises the account's throttle quota (`api_gateway.account_throttle`),
  AWS's 10,000 requests/s, so that the front end is measured rather than the quota.

`up` and `down` run as `python -m dataplane.cli.main` children; the lab is taken down in
a `finally`, and `vpclab cleanup` takes down a `bgw-<pid>` lab whose run was killed.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Callable

from dataplane.compile.api_gateway import FRONT_END_IP
from dataplane.model import names
from netns_setup.scratch import BENCH_LAB_ROOT

from .measure import Case, Timing, run_cases
from .proxy import check_answers
from .tools import (LOAD_CPU, PROXY_CPU, BenchError, Contender, ProxyFrontend, Server,
                    backend_config, front_end_stats, pin, proxy_config, start_haproxy,
                    stop, write_pem)

REPO = pathlib.Path(__file__).resolve().parents[2]
TARGET_PORT = 8080
UP_TIMEOUT_S = 240
HEALTHY_WAIT_S = 60
HAPROXY_PORTS = {("rest", "plain"): 8080, ("rest", "tls"): 8443,
                 ("v2", "plain"): 8081, ("v2", "tls"): 8444}
FRONT_END_PORTS = {"plain": 80, "tls": 443}
PATHS = {"rest": "REST link (PrivateLink) → NLB → target",
         "v2": "V2 link (VPC-to-VPC NAT) → NLB → target"}

TOPOLOGY = """\
# bench/apigw's lab (written by the benchmark; examples/api-gateway.yaml's shape)
lab: {lab}
region: us-east-1
vpcs:
  shop:
    cidr: 10.0.0.0/16
    subnets:
      a: {{cidr: 10.0.1.0/24, az: us-east-1a}}
      b: {{cidr: 10.0.2.0/24, az: us-east-1b}}
    security_groups:
      link-sg:
        ingress: []
        egress:
          - {{protocol: tcp, ports: 80, destination: 10.0.0.0/16}}
      web-sg:
        ingress:
          - {{protocol: tcp, ports: {port}, source: 10.0.0.0/16}}
    instances:
      t1:
        subnet: a
        security_groups: [web-sg]
        run: "taskset -c {load_cpu} haproxy -db -f {target_cfg}"
      t2:
        subnet: b
        security_groups: [web-sg]
        run: "taskset -c {load_cpu} haproxy -db -f {target_cfg}"
    load_balancers:
      web-nlb:
        type: network
        subnets: [a, b]
        listeners:
          - {{port: 80, protocol: TCP, target_group: web-tg}}
    target_groups:
      web-tg:
        protocol: TCP
        port: {port}
        targets: [t1, t2]
        health_check: {{protocol: TCP, interval: 5, healthy_threshold: 2}}
api_gateway:
  account_throttle: {{rate: 1000000, burst: 1000000}}
  vpc_links:
    rest-link: {{type: REST, target: shop/web-nlb}}
    app-link: {{vpc: shop, subnets: [a, b], security_groups: [link-sg]}}
  apis:
    orders:
      type: REST
      stages: [prod]
      routes:
        "ANY /{{proxy+}}": {{vpc_link: rest-link, uri: "http://orders.shop.internal/{{proxy}}"}}
    catalog:
      type: HTTP
      stages: [$default]
      routes:
        "ANY /{{proxy+}}": {{vpc_link: app-link, target: shop/web-nlb:80}}
"""


def lab_name(pid: int | None = None) -> str:
    return f"{BENCH_LAB_ROOT}{os.getpid() if pid is None else pid}"


def vpclab(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dataplane.cli.main", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def take_down(lab: str) -> None:
    """`vpclab down`, and `vpclab cleanup LAB` if down could not finish."""
    if not os.path.isdir(os.path.join(names.RUN_DIR, lab)):
        return
    out = vpclab("down", lab, timeout=120)
    if out.returncode != 0 and os.path.isdir(os.path.join(names.RUN_DIR, lab)):
        vpclab("cleanup", lab, timeout=120)


def wait_answering(ns: str, contenders: list[Contender], say: Callable[[str], None]) -> None:
    """Every contender proxies one request (the NLB's targets pass their health checks
    a few seconds after `up`)."""
    deadline = time.monotonic() + HEALTHY_WAIT_S
    for c in contenders:
        while True:
            try:
                check_answers(ns, c)
                break
            except BenchError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    say(f"  every path answers ({len(contenders)} contenders)")


def run(workdir: str, timing: Timing, script: str, say: Callable[[str], None] = print) -> dict:
    lab = lab_name()
    target_cfg = os.path.join(workdir, "target.cfg")
    with open(target_cfg, "w") as f:
        f.write(backend_config("0.0.0.0", TARGET_PORT))
    topology = os.path.join(workdir, "lab.yaml")
    with open(topology, "w") as f:
        f.write(TOPOLOGY.format(lab=lab, port=TARGET_PORT, load_cpu=LOAD_CPU, target_cfg=target_cfg))
    haproxy = None
    try:
        say(f"lab scenario: vpclab up {topology} (lab {lab})")
        up = vpclab("up", topology, timeout=UP_TIMEOUT_S)
        if up.returncode != 0:
            raise BenchError(f"vpclab up failed ({up.returncode}): {(up.stderr or up.stdout).strip()[-600:]}")
        run_dir = os.path.join(names.RUN_DIR, lab)
        with open(os.path.join(run_dir, "state.json")) as f:
            state = json.load(f)
        with open(state["api_gateway"]["front_end"]["config"]) as f:
            config = json.load(f)
        front_end = next(p for p in state["processes"] if p["role"] == "apigw")
        for p in state["processes"]:
            pin(p["pid"], PROXY_CPU if p is front_end else LOAD_CPU)
        apigw_ns, internet = state["api_gateway"]["netns"], state["api_gateway"]["internet"]["netns"]
        apis = {a["type"]: a for a in config["apis"]}
        routes = {"rest": apis["REST"]["routes"][0], "v2": apis["HTTP"]["routes"][0]}
        hosts = {k: f"{apis[t]['id']}.execute-api.{config['region']}.amazonaws.com"
                 for k, t in (("rest", "REST"), ("v2", "HTTP"))}
        paths = {"rest": "/prod/hello", "v2": "/hello"}
        pem = write_pem(config["tls"]["cert"], config["tls"]["key"], os.path.join(workdir, "lab.pem"))
        frontends = []
        for key, route in routes.items():
            netns = config["links"][route["link"]]["netns"]
            frontends.append(ProxyFrontend(
                key, [(FRONT_END_IP, HAPROXY_PORTS[(key, p)], p == "tls") for p in ("plain", "tls")],
                [Server(a, route["port"], netns) for a in route["addresses"]], route["host"], pem))
        haproxy = start_haproxy(apigw_ns, proxy_config(frontends), os.path.join(workdir, "lab-haproxy.cfg"),
                                PROXY_CPU, os.path.join(workdir, "lab-haproxy.log"))

        def url(protocol: str, port: int, path: str) -> str:
            return f"{'https' if protocol == 'tls' else 'http'}://{FRONT_END_IP}:{port}{path}"
        cases = [Case("lab", PATHS[key], protocol, [
                    Contender("haproxy", internet, url(protocol, HAPROXY_PORTS[(key, protocol)], paths[key]),
                              hosts[key], haproxy.pid),
                    Contender("apigw", internet, url(protocol, FRONT_END_PORTS[protocol], paths[key]),
                              hosts[key], front_end["pid"])])
                 for protocol in ("plain", "tls") for key in ("rest", "v2")]
        wait_answering(internet, [c for case in cases for c in case.contenders], say)
        rows = run_cases(cases, timing, script, say)
        return {"rows": rows, "front_end_stats": front_end_stats(config["socket"]),
                "setup": {"lab": lab, "topology": open(topology).read(),
                          "haproxy_config": open(os.path.join(workdir, "lab-haproxy.cfg")).read(),
                          "routes": routes}}
    finally:
        if haproxy is not None:
            stop(haproxy)
        take_down(lab)
