"""Application Load Balancers end to end in a lab (issue 11): a client in the VPC calls the
ALB by its DNS name, the nodes route by rule to target groups whose targets admit only the
ALB's security group, every generated status code the lab can produce is produced for real,
HTTPS with the lab's CA, access logs, health in `vpclab status`, a supervised node that
comes back, and an HTTP API that reaches the ALB over its VPC link. The lab is named
`lab_name("t11alb")` (the run's token in front) and is removed whatever happens.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from dataplane import lab as labmod

from dataplane.pytest_plugin import lab_fixture, lab_name

from .conftest import vpclab
from .test_api_gateway import Reply

LAB = lab_name("t11alb")
IDLE_TIMEOUT = 3          # s: the 504 row without a long wait


def echo(tag: str, port: int = 8080) -> str:
    return f"{sys.executable} -m dataplane.services.echo {tag} {port}"


def topology() -> dict:
    fwd = lambda tg: {"forward": tg}       # noqa: E731
    return {
        "lab": LAB, "region": "us-east-1",
        "vpcs": {"shop": {
            "cidr": "10.1.0.0/16",
            "subnets": {"a": {"cidr": "10.1.1.0/24", "az": "us-east-1a"},
                        "b": {"cidr": "10.1.2.0/24", "az": "us-east-1b"}},
            "security_groups": {
                "alb-sg": {"ingress": [{"protocol": "tcp", "ports": "80", "source": "10.1.0.0/16"},
                                       {"protocol": "tcp", "ports": "443", "source": "10.1.0.0/16"}]},
                # targets admit the ALB's nodes only: a client can't reach them directly
                "web-sg": {"ingress": [{"protocol": "tcp", "ports": "8080-8081",
                                        "source": "sg:alb-sg"}]},
                "link-sg": {"ingress": [], "egress": [
                    {"protocol": "tcp", "ports": 80, "destination": "10.1.0.0/16"}]}},
            "instances": {
                "client": {"subnet": "a"},
                "web1": {"subnet": "a", "security_groups": ["web-sg"], "run": echo("web1")},
                "web2": {"subnet": "b", "security_groups": ["web-sg"], "run": echo("web2")},
                "api1": {"subnet": "b", "security_groups": ["web-sg"], "run": echo("api1")}},
            "load_balancers": {"web-alb": {
                "type": "application", "subnets": ["a", "b"], "security_groups": ["alb-sg"],
                "idle_timeout": IDLE_TIMEOUT,
                "listeners": [
                    {"port": 80, "protocol": "HTTP", "default": fwd("web-tg"), "rules": [
                        {"priority": 10, "path": ["/api/*"], "forward": {"api-tg": 3, "web-tg": 1}},
                        {"priority": 20, "host": ["admin.*"],
                         "fixed_response": {"status": 403, "body": "no"}},
                        {"priority": 30, "header": {"x-debug": ["1"]}, "method": ["POST"],
                         "redirect": {"path": "/debug", "status": 301}},
                        {"priority": 40, "path": ["/empty*"], "forward": "empty-tg"},
                        {"priority": 50, "path": ["/dead*"], "forward": "dead-tg"},
                        {"priority": 60, "query": ["canary=yes"], "forward": "api-tg"}]},
                    {"port": 443, "protocol": "HTTPS", "default": fwd("web-tg")}]}},
            "target_groups": {
                "web-tg": {"protocol": "HTTP", "port": 8080, "targets": ["web1", "web2"],
                           "health_check": {"path": "/healthz", "interval": 5,
                                            "healthy_threshold": 2}},
                "api-tg": {"protocol": "HTTP", "port": 8080, "targets": ["api1"],
                           "health_check": {"interval": 5, "healthy_threshold": 2}},
                "empty-tg": {"protocol": "HTTP", "port": 8080, "targets": []},
                # nothing listens on 8081: unhealthy, then fail open → refused → 502
                "dead-tg": {"protocol": "HTTP", "port": 8081, "targets": ["web1"],
                            "health_check": {"interval": 5, "healthy_threshold": 2,
                                             "unhealthy_threshold": 2}}}}},
        "api_gateway": {
            "vpc_links": {"app-link": {"vpc": "shop", "subnets": ["a", "b"],
                                       "security_groups": ["link-sg"]}},
            "apis": {"web": {"type": "HTTP", "stages": ["$default"], "routes": {
                "ANY /{proxy+}": {"vpc_link": "app-link", "target": "shop/web-alb:80"}}}}}}


# The lab for the module (vpclab's pytest plugin: down at the end must leave nothing).
running = lab_fixture(topology, scope="module")


@pytest.fixture(scope="module")
def alb(running):
    """The lab's status once its target groups' health has settled."""
    _wait_health(lambda states: states.get("web-tg") == {"healthy"}
                 and states.get("api-tg") == {"healthy"}
                 and states.get("dead-tg") == {"unhealthy"})
    return running.status()


def _health() -> dict[str, set[str]]:
    """{target group: the states every node sees for its targets}."""
    out: dict[str, set[str]] = {}
    for node in labmod.status(LAB)["albs"]["shop/web-alb"]["nodes"]:
        for tg, targets in (node["target_groups"] or {}).items():
            out.setdefault(tg, set()).update(t["state"] for t in targets)
    return out


def _wait_health(done, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done(_health()):
            return
        time.sleep(0.5)
    raise AssertionError(f"target health never settled: {_health()}")


def dns_name(st: dict) -> str:
    return st["albs"]["shop/web-alb"]["dns_name"]


def node_ips(st: dict) -> set[str]:
    return {n["address"] for n in st["albs"]["shop/web-alb"]["nodes"]}


def client_ip(st: dict) -> str:
    return st["vpcs"]["shop"]["instances"]["client"]["ip"]


def curl(where: str, url: str, *args: str, timeout: float = 30) -> Reply:
    proc = vpclab("exec", "-l", LAB, where, "--", "curl", "-sS", "-i", "--max-time",
                  str(int(timeout - 5)), *args, url, timeout=timeout)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    return Reply(proc.stdout)


def test_status_shows_nodes_dns_name_and_health(alb) -> None:
    rec = alb["albs"]["shop/web-alb"]
    assert rec["dns_name"].startswith("internal-web-alb-")
    assert len(rec["nodes"]) == 2 and all(n["running"] for n in rec["nodes"])
    # each node's address is the lowest free after the instances of its subnet
    assert {n["subnet"]: n["address"] for n in rec["nodes"]} == {"a": "10.1.1.6", "b": "10.1.2.6"}
    out = vpclab("status", LAB)
    assert out.returncode == 0, out.stdout
    assert rec["dns_name"] in out.stdout and "web-tg target web1" in out.stdout
    assert "dead-tg target web1" in out.stdout and "unhealthy" in out.stdout


def test_the_dns_name_resolves_to_every_node(alb) -> None:
    proc = vpclab("exec", "-l", LAB, "shop/client", "--", "getent", "ahostsv4", dns_name(alb),
                  check=True)
    assert {line.split()[0] for line in proc.stdout.splitlines()} == node_ips(alb)


def test_default_action_round_robins_and_targets_see_the_node(alb) -> None:
    seen_tags, seen_peers = set(), set()
    for _ in range(8):
        r = curl("shop/client", f"http://{dns_name(alb)}/hello?x=1")
        assert r.status == 200, r.body
        body = r.json()
        seen_tags.add(body["tag"])
        seen_peers.add(body["peer"])
        assert body["path"] == "/hello?x=1"
        sent = r.sent()
        assert sent["x-forwarded-for"] == client_ip(alb)
        assert sent["x-forwarded-proto"] == "http" and sent["x-forwarded-port"] == "80"
        assert sent["x-amzn-trace-id"].startswith("Root=1-")
        assert sent["host"] == dns_name(alb)
    assert seen_tags == {"web1", "web2"}
    assert seen_peers <= node_ips(alb)


WEIGHTED = r"""
import http.client, json, sys, collections
c = http.client.HTTPConnection(sys.argv[1], 80, timeout=10)
tags = collections.Counter()
for i in range(int(sys.argv[2])):
    c.request("GET", f"/api/{i}")
    r = c.getresponse()
    tags[json.loads(r.read())["tag"]] += 1
print(json.dumps(tags))
"""


def test_weighted_forward_splits_three_to_one(alb) -> None:
    proc = vpclab("exec", "-l", LAB, "shop/client", "--", sys.executable, "-c", WEIGHTED,
                  dns_name(alb), "1000", check=True, timeout=120)
    tags = json.loads(proc.stdout)
    assert sum(tags.values()) == 1000
    # api-tg (api1) weight 3, web-tg (web1, web2) weight 1: 75 % ± 5 points
    assert 700 <= tags.get("api1", 0) <= 800, tags


def test_fixed_response_redirect_and_query_rules(alb) -> None:
    r = curl("shop/client", f"http://{dns_name(alb)}/", "-H", "Host: admin.example.com")
    assert r.status == 403 and r.body == "no"
    assert r.headers["server"] == "awselb/2.0"
    r = curl("shop/client", f"http://{dns_name(alb)}/x?a=b", "-X", "POST", "-H", "x-debug: 1")
    assert r.status == 301
    assert r.headers["location"] == f"http://{dns_name(alb)}:80/debug?a=b"
    r = curl("shop/client", f"http://{dns_name(alb)}/x?canary=yes")
    assert r.status == 200 and r.json()["tag"] == "api1"


def test_generated_status_codes(alb) -> None:
    url = f"http://{dns_name(alb)}"
    r = curl("shop/client", f"{url}/empty")
    assert r.status == 503 and "503 Service Temporarily Unavailable" in r.body
    # every dead-tg target is unhealthy: fail open, so the request goes to the dead port
    r = curl("shop/client", f"{url}/dead")
    assert r.status == 502 and "<center><h1>502 Bad Gateway</h1></center>" in r.body
    r = curl("shop/client", f"{url}/sleep/{IDLE_TIMEOUT + 3}")
    assert r.status == 504, r.body
    r = curl("shop/client", f"{url}/", "-X", "TRACE")
    assert r.status == 405
    xff = ", ".join(f"10.9.0.{i}" for i in range(31))
    r = curl("shop/client", f"{url}/", "-H", f"X-Forwarded-For: {xff}")
    assert r.status == 463
    r = curl("shop/client", f"{url}/", "-H", "Transfer-Encoding: gzip", "-d", "x")
    assert r.status == 501


def test_targets_admit_the_alb_only(alb) -> None:
    web1 = alb["vpcs"]["shop"]["instances"]["web1"]["ip"]
    proc = vpclab("exec", "-l", LAB, "shop/client", "--", "curl", "-sS", "--max-time", "2",
                  f"http://{web1}:8080/", timeout=20)
    assert proc.returncode == 28, (proc.returncode, proc.stdout)      # timed out: dropped


def test_https_listener_with_the_lab_ca(alb) -> None:
    r = curl("shop/client", f"https://{dns_name(alb)}/secure")       # verified, no -k
    assert r.status == 200, r.body
    assert r.sent()["x-forwarded-proto"] == "https" and r.sent()["x-forwarded-port"] == "443"


def test_access_log_lines(alb) -> None:
    curl("shop/client", f"http://{dns_name(alb)}/logged-path")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        out = vpclab("logs", "-l", LAB, "shop/web-alb", check=True).stdout
        lines = [l for l in out.splitlines() if "/logged-path" in l]
        if lines:
            break
        time.sleep(0.2)
    assert lines, out
    fields = lines[-1].split(" ", 3)
    assert fields[1].startswith("http") or fields[0] in ("a", "b")   # node prefix, then type
    assert "targetgroup/web-tg/" in lines[-1]
    assert client_ip(alb) in lines[-1]


def test_an_http_api_reaches_the_alb_over_its_vpc_link(alb) -> None:
    st = labmod.status(LAB)
    base = st["api_gateway"]["apis"]["web"]["invoke_urls"]["$default"]
    r = curl("internet", base + "api/7")
    assert r.status == 200, r.body
    body = r.json()
    assert body["peer"] in node_ips(st) and body["path"] == "/api/7"
    links = {e["ip"] for e in st["hyperplane"]["api_gateway"]["vpc_links"]["app-link"]["enis"]}
    sent = r.sent()
    assert sent["host"] == dns_name(st)
    # the ALB appends the address it saw: the link ENI's (VPC-to-VPC NAT)
    assert sent["x-forwarded-for"].split(", ")[-1] in links


def test_a_killed_node_is_restarted(alb) -> None:
    node = labmod.status(LAB)["albs"]["shop/web-alb"]["nodes"][0]
    os.kill(node["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = labmod.status(LAB)["albs"]["shop/web-alb"]["nodes"][0]
        if now["running"] and now["pid"] != node["pid"] and now["target_groups"]:
            break
        time.sleep(0.2)
    assert now["running"] and now["pid"] != node["pid"]
    proc = next(p for p in labmod.status(LAB)["processes"] if p["pid"] == now["pid"])
    assert proc["role"] == "alb" and proc["restarts"] == 1
