"""API Gateway end to end in a lab (issue 10): curl on the lab's internet calls REST and
HTTP APIs over TLS (the lab CA, no -k), API Gateway reaches the shop's NLB over a REST
link (PrivateLink) and over an HTTP (V2) link, and every error row of the issue is
produced for real: refused, reset, SG drop, timeouts, FAILED link, 413, throttling,
unknown routes and stages. The lab is named `t10gw` and is removed whatever happens.
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

from .conftest import REPO, leftovers, vpclab

CLIENT_IP = "203.0.113.10"


def echo(tag: str) -> str:
    return f"{sys.executable} -m dataplane.services.echo {tag} 8080"


def topology(lab: str) -> dict:
    rest = "http://orders.shop.internal"
    return {
        "lab": lab, "region": "us-east-1",
        "vpcs": {"shop": {
            "cidr": "10.0.0.0/16",
            "subnets": {"a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"},
                        "b": {"cidr": "10.0.2.0/24", "az": "us-east-1b"}},
            "security_groups": {
                "link-sg": {"ingress": [], "egress": [
                    {"protocol": "tcp", "ports": "80-82", "destination": "10.0.0.0/16"}]},
                "web-sg": {"ingress": [{"protocol": "tcp", "ports": 8080,
                                        "source": "10.0.0.0/16"},
                                       {"protocol": "tcp", "ports": 9, "source": "10.0.0.0/16"}]},
                "closed-sg": {"ingress": []}},
            "instances": {
                "web1": {"subnet": "a", "security_groups": ["web-sg"], "run": echo("web1")},
                "web2": {"subnet": "b", "security_groups": ["web-sg"], "run": echo("web2")},
                "web3": {"subnet": "a", "security_groups": ["closed-sg"], "run": echo("web3")}},
            "load_balancers": {"web-nlb": {"type": "network", "subnets": ["a", "b"], "listeners": [
                {"port": 80, "protocol": "TCP", "target_group": "web-tg"},
                {"port": 81, "protocol": "TCP", "target_group": "dead-tg"},
                {"port": 82, "protocol": "TCP", "target_group": "blocked-tg"}]}},
            "target_groups": {
                "web-tg": {"protocol": "TCP", "port": 8080, "targets": ["web1", "web2"],
                           "health_check": {"protocol": "TCP", "interval": 5,
                                            "healthy_threshold": 2}},
                "dead-tg": {"protocol": "TCP", "port": 9, "targets": ["web1"]},
                "blocked-tg": {"protocol": "TCP", "port": 8080, "targets": ["web3"]}}}},
        "api_gateway": {
            "vpc_links": {
                "rest-link": {"type": "REST", "target": "shop/web-nlb"},
                "again": {"type": "REST", "target": "shop/web-nlb"},
                "app-link": {"vpc": "shop", "subnets": ["a", "b"],
                             "security_groups": ["link-sg"]}},
            "apis": {
                "orders": {"type": "REST", "stages": ["prod"], "routes": {
                    "ANY /orders/{proxy+}": {"vpc_link": "rest-link", "uri": f"{rest}/{{proxy}}"},
                    "GET /orders/special": {"vpc_link": "rest-link", "uri": f"{rest}/special"},
                    "GET /orders": {"vpc_link": "rest-link", "uri": f"{rest}/list"},
                    "GET /slow": {"vpc_link": "rest-link", "uri": f"{rest}/sleep/5",
                                  "timeout_ms": 1000},
                    "GET /refused": {"vpc_link": "rest-link", "uri": f"{rest}:81/"},
                    "GET /blocked": {"vpc_link": "rest-link", "uri": f"{rest}:82/",
                                     "timeout_ms": 3000},
                    "GET /reset": {"vpc_link": "rest-link", "uri": f"{rest}/reset"},
                    "GET /again": {"vpc_link": "again", "uri": f"{rest}/"}}},
                "catalog": {"type": "HTTP", "stages": ["$default", "test"], "routes": {
                    "GET /items/{id}": {"vpc_link": "app-link", "target": "shop/web-nlb:80"},
                    "GET /items/special": {"vpc_link": "app-link", "target": "shop/web-nlb:80"},
                    "ANY /{proxy+}": {"vpc_link": "app-link", "target": "shop/web-nlb:80"},
                    "GET /refused": {"vpc_link": "app-link", "target": "shop/web-nlb:81"},
                    "GET /sleep/{seconds}": {"vpc_link": "app-link",
                                             "target": "shop/web-nlb:80", "timeout_ms": 1000}}},
                "limited": {"type": "HTTP", "stages": ["$default"],
                            "throttle": {"rate": 5, "burst": 5}, "routes": {
                                "$default": {"vpc_link": "app-link",
                                             "target": "shop/web-nlb:80"}}}}}}


# The lab for the module (vpclab's pytest plugin: down at the end must leave nothing).
running = lab_fixture(lambda: topology("t10gw"), scope="module")


@pytest.fixture(scope="module")
def gw(running):
    st = running.status()
    _wait_healthy(running.name)
    return running.name, st


def nlb_nodes(st: dict) -> set[str]:
    return {e["ip"] for e in st["hyperplane"]["load_balancers"]["shop/web-nlb"]["enis"]}


def link_enis(st: dict) -> set[str]:
    return {e["ip"] for e in st["hyperplane"]["api_gateway"]["vpc_links"]["app-link"]["enis"]}


def _wait_healthy(lab: str, timeout: float = 30.0) -> None:
    """Until the NLB's nodes see web1 and web2 healthy (checks every 5 s, threshold 2)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = labmod.status(lab)["hyperplane"]["load_balancers"]["shop/web-nlb"]["target_health"]
        states = [h["state"] for g, ts in (health or {}).items() if g.endswith("/web-tg")
                  for h in ts.values()]
        if states and all(s == "healthy" for s in states):
            return
        time.sleep(0.5)


def url(st: dict, api: str, path: str, stage: str | None = None, scheme: str = "https") -> str:
    gwapi = st["api_gateway"]["apis"][api]
    stage = stage or gwapi["stages"][0]
    base = gwapi["invoke_urls"][stage]
    if scheme == "http":
        base = "http://" + base.split("://", 1)[1]
    return base + path.lstrip("/")


class Reply:
    def __init__(self, raw: str):
        head, _, self.body = raw.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        self.status = int(lines[0].split()[1])
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()

    def json(self):
        return json.loads(self.body)

    def sent(self) -> dict[str, str]:
        """The headers the target received (lower-cased names)."""
        return {k.lower(): v for k, v in self.json()["headers"]}


def curl(lab: str, target: str, *args: str, timeout: float = 60) -> Reply:
    proc = vpclab("exec", "-l", lab, "internet", "--", "curl", "-sS", "-i", "--max-time",
                  str(int(timeout - 5)), *args, target, timeout=timeout)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    return Reply(proc.stdout)


def test_status_lists_apis_links_and_the_front_end(gw) -> None:
    lab, st = gw
    g = st["api_gateway"]
    assert g["front_end"]["running"]
    assert set(g["apis"]) == {"orders", "catalog", "limited"}
    orders = g["apis"]["orders"]
    assert len(orders["id"]) == 10 and orders["type"] == "REST"
    assert orders["invoke_urls"]["prod"] == \
        f"https://{orders['id']}.execute-api.us-east-1.amazonaws.com/prod/"
    assert g["apis"]["catalog"]["invoke_urls"]["$default"].endswith(".amazonaws.com/")
    links = g["rest_vpc_links"]
    assert links["rest-link"]["state"] == "AVAILABLE" and len(links["rest-link"]["enis"]) == 2
    assert links["again"]["state"] == "FAILED"
    assert links["again"]["message"] == "NLB is already associated with another VPC Endpoint Service"
    out = vpclab("status", lab)
    assert orders["invoke_urls"]["prod"] in out.stdout
    assert "NLB is already associated with another VPC Endpoint Service" in out.stdout


def test_a_rest_api_reaches_the_nlb_over_privatelink(gw) -> None:
    lab, st = gw
    r = curl(lab, url(st, "orders", "/orders/42?x=1"))       # TLS verified with the lab CA
    assert r.status == 200, r.body
    seen = r.json()
    assert seen["tag"] in ("web1", "web2") and seen["peer"] in nlb_nodes(st)
    assert seen["path"] == "/42?x=1"
    sent = r.sent()
    assert sent["host"] == "orders.shop.internal"
    assert sent["x-amzn-apigateway-api-id"] == st["api_gateway"]["apis"]["orders"]["id"]
    assert sent["x-amzn-trace-id"].startswith("Root=1-")
    assert r.headers["x-amzn-requestid"] and r.headers["x-amz-apigw-id"]
    assert "x-amzn-remapped-server" in r.headers


def test_an_http_api_reaches_the_nlb_over_its_vpc_link(gw) -> None:
    lab, st = gw
    r = curl(lab, url(st, "catalog", "/items/7", "$default"))
    assert r.status == 200, r.body
    seen = r.json()
    assert seen["path"] == "/items/7" and seen["peer"] in nlb_nodes(st)
    sent = r.sent()
    assert CLIENT_IP in sent["x-forwarded-for"] and sent["x-forwarded-proto"] == "https"
    assert f"for={CLIENT_IP}" in sent["forwarded"]
    assert r.headers["apigw-requestid"]
    # a named stage stays in the backend's path
    staged = curl(lab, url(st, "catalog", "/items/7", "test"))
    assert staged.status == 200 and staged.json()["path"] == "/test/items/7"
    # the NLB saw the link ENIs' addresses as its clients
    flows = vpclab("flows", "-l", lab).stdout
    assert "169.254.0.2" in flows and any(ip in flows for ip in link_enis(st))


def test_plain_http_on_port_80_works_too(gw) -> None:
    lab, st = gw
    r = curl(lab, url(st, "catalog", "/items/1", "$default", scheme="http"))
    assert r.status == 200 and r.json()["headers"]


def test_route_priority(gw) -> None:
    lab, st = gw
    assert curl(lab, url(st, "orders", "/orders/special")).json()["path"] == "/special"
    assert curl(lab, url(st, "orders", "/orders")).json()["path"] == "/list"
    assert curl(lab, url(st, "orders", "/orders/a/b/c")).json()["path"] == "/a/b/c"
    assert curl(lab, url(st, "catalog", "/items/special", "$default")).json()["path"] == \
        "/items/special"
    # a greedy route beats $default whatever the method
    assert curl(lab, url(st, "catalog", "/what/ever", "$default"), "-X", "POST").status == 200


def test_unknown_routes_methods_and_stages(gw) -> None:
    lab, st = gw
    for r in (curl(lab, url(st, "orders", "/nothing")),
              curl(lab, url(st, "orders", "/orders/special"), "-X", "DELETE"),
              curl(lab, url(st, "orders", "/orders/1").replace("/prod/", "/beta/"))):
        assert r.status == 403, r.body
        assert json.loads(r.body) == {"message": "Missing Authentication Token"}
        assert r.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    r = curl(lab, url(st, "catalog", "/refused", "$default"), "-X", "POST")
    assert r.status == 200       # POST /refused: no such route → the greedy one
    r = curl(lab, url(st, "limited", "", "$default").replace(
        st["api_gateway"]["apis"]["limited"]["id"], "nosuchapi0"))
    assert r.status == 403 and json.loads(r.body) == {"message": "Forbidden"}


def test_integration_failures(gw) -> None:
    lab, st = gw
    internal = {"message": "Internal server error"}
    for path in ("/refused", "/reset", "/again"):
        r = curl(lab, url(st, "orders", path))
        assert (r.status, json.loads(r.body)) == (500, internal), (path, r.body)
    r = curl(lab, url(st, "orders", "/slow"))
    assert (r.status, json.loads(r.body)) == (504, {"message": "Endpoint request timed out"})
    r = curl(lab, url(st, "orders", "/blocked"))       # the target's SG drops the NLB
    assert r.status in (500, 504), r.body
    unavailable = {"message": "Service Unavailable"}
    for path in ("/refused", "/sleep/5"):
        r = curl(lab, url(st, "catalog", path, "$default"))
        assert (r.status, json.loads(r.body)) == (503, unavailable), (path, r.body)


def test_a_body_over_10_mb_is_refused(gw, tmp_path) -> None:
    lab, st = gw
    big = os.path.join(st["state_dir"], "big.bin")
    with open(big, "wb") as f:
        f.write(b"x" * (11 * 2**20))
    try:
        r = curl(lab, url(st, "orders", "/orders/up"), "-X", "POST", "--data-binary", f"@{big}")
    finally:
        os.unlink(big)
    assert r.status == 413
    assert r.body == "HTTP content length exceeded 10485760 bytes."


def test_throttling_answers_429(gw) -> None:
    lab, st = gw
    target = url(st, "limited", "/x", "$default")
    script = ("import ssl,http.client,sys,collections;"
              "c=http.client.HTTPSConnection(sys.argv[1],context=ssl.create_default_context());"
              "n=collections.Counter()\n"
              "for _ in range(40):\n"
              " c.request('GET',sys.argv[2]);r=c.getresponse();r.read();n[r.status]+=1\n"
              "print(dict(n))")
    hostname, _, path = target.split("://", 1)[1].partition("/")
    proc = vpclab("exec", "-l", lab, "internet", "--", sys.executable, "-c", script,
                  hostname, "/" + path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    counts = {int(k): v for k, v in eval(proc.stdout).items()}   # noqa: S307 (our own output)
    assert counts.get(429, 0) >= 20 and counts.get(200, 0) >= 5, counts


def test_access_logs(gw) -> None:
    lab, st = gw
    curl(lab, url(st, "catalog", "/items/99", "$default"))
    out = vpclab("logs", "-l", lab, "catalog", "--stage", "$default")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
    last = lines[-1]
    assert last["routeKey"] == "GET /items/{id}" and str(last["status"]) == "200"
    assert last["ip"] == CLIENT_IP
    out = vpclab("logs", "-l", lab, "orders")
    assert out.returncode == 0 and CLIENT_IP in out.stdout


def test_tls_is_1_2_only(gw) -> None:
    lab, st = gw
    proc = vpclab("exec", "-l", lab, "internet", "--", "curl", "-sS", "--tlsv1.3",
                  "--max-time", "10", url(st, "orders", "/orders/1"), timeout=30)
    assert proc.returncode != 0


def test_a_killed_front_end_is_restarted_then_reported_when_it_stays_dead(gw) -> None:
    lab, st = gw
    pid = st["api_gateway"]["front_end"]["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    fe = labmod.status(lab)["api_gateway"]["front_end"]
    while time.monotonic() < deadline and (fe["pid"] == pid or not fe["running"]):
        time.sleep(0.1)
        fe = labmod.status(lab)["api_gateway"]["front_end"]
    assert fe["pid"] != pid and fe["running"]               # the supervisor's doing
    assert curl(lab, url(st, "orders", "/orders/again")).status == 200
    # With the supervisor gone too, a dead front end stays dead and status says so.
    processes = labmod.status(lab)["processes"]
    for role in ("supervisor", "apigw"):
        os.kill(next(p["pid"] for p in processes if p["role"] == role), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and labmod.status(lab)["api_gateway"]["front_end"]["running"]:
        time.sleep(0.1)
    out = vpclab("status", lab)
    assert out.returncode == 1 and "STOPPED" in out.stdout and "apigw process" in out.stdout


def test_the_example_answers_what_its_comments_promise(tmp_path) -> None:
    """examples/api-gateway.yaml as a user runs it (under another lab name)."""
    name = lab_name("t10ex")
    path = tmp_path / "example.yaml"
    path.write_text((REPO / "examples" / "api-gateway.yaml").read_text()
                    .replace("lab: apigw-demo", f"lab: {name}", 1))
    try:
        up = vpclab("up", str(path), check=True, timeout=240)
        st = labmod.status(name)
        assert url(st, "orders", "") in up.stdout
        assert curl(name, url(st, "orders", "/orders/1")).body.startswith("order 1, from web")
        assert curl(name, url(st, "catalog", "/items/7", "$default")).body.startswith("item 7")
        assert curl(name, url(st, "catalog", "/items/7", "test")).body.startswith("item 7")
        assert vpclab("down", name).returncode == 0
        assert leftovers(name) == []
    finally:
        labmod.cleanup(name, everything=True)
