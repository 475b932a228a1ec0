"""Cloud Map in a real lab (issue 11): an instance resolves a private DNS namespace through
its VPC's resolver (A and SRV, with the service's TTLs) and calls DiscoverInstances by its
AWS name over HTTP/JSON; `vpclab cloudmap register|deregister|set-health` change both on
the running lab, and refuse bad input without changing anything; an HTTP API route to the
service over a V2 VPC link reaches the instances, moves when one is deregistered and
answers 503 when none is left; the supervisor restarts the Cloud Map process; `down`
leaves nothing. The lab is named `lab_name("tcm1")` and is removed whatever happens.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dataplane import lab as labmod

from dataplane.pytest_plugin import lab_fixture, lab_name

from .conftest import HERE, run_in, vpclab

DNS_QUERY = HERE / "dns_query.py"
LAB = lab_name("tcm1")
TARGET = "Route53AutoNaming_v20170314.DiscoverInstances"


def echo(tag: str) -> str:
    return f"{sys.executable} -m dataplane.services.echo {tag} 8080"


def topology() -> dict:
    web = ["web-sg"]
    return {
        "lab": LAB, "region": "us-east-1",
        "vpcs": {
            "shop": {
                "cidr": "10.0.0.0/16",
                "subnets": {"a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"},
                            "b": {"cidr": "10.0.2.0/24", "az": "us-east-1b"}},
                "security_groups": {
                    "link-sg": {"ingress": [], "egress": [
                        {"protocol": "tcp", "ports": 8080, "destination": "10.0.0.0/16"}]},
                    "web-sg": {"ingress": [{"protocol": "tcp", "ports": 8080,
                                            "source": "10.0.0.0/16"}]}},
                "instances": {
                    "client": {"subnet": "a"},
                    "inv1": {"subnet": "a", "security_groups": web, "run": echo("inv1")},
                    "inv2": {"subnet": "b", "security_groups": web, "run": echo("inv2")},
                    "inv3": {"subnet": "b", "security_groups": web, "run": echo("inv3")}}},
            "other": {"cidr": "10.1.0.0/16",
                      "subnets": {"a": {"cidr": "10.1.1.0/24", "az": "us-east-1a"}},
                      "instances": {"probe": {"subnet": "a"}}}},
        "cloud_map": {
            "namespaces": {"shop.local": {"type": "DNS_PRIVATE", "vpc": "shop"},
                           "jobs": {"type": "HTTP"}},
            "services": {
                "inventory": {
                    "namespace": "shop.local", "dns": {"A": 45, "SRV": 15},
                    "health_check": {"type": "custom"},
                    "instances": {
                        "i-1": {"instance": "shop/inv1", "port": 8080,
                                "attributes": {"color": "blue"}},
                        "i-2": {"instance": "shop/inv2", "port": 8080,
                                "attributes": {"color": "blue"}},
                        "i-green": {"instance": "shop/inv3", "port": 8080,
                                    "attributes": {"color": "green"}}}},
                "worker": {"namespace": "jobs", "instances": {
                    "w1": {"ip": "10.1.1.200", "port": 9000, "attributes": {"queue": "fast"}}}}}},
        "api_gateway": {
            "vpc_links": {"app-link": {"vpc": "shop", "subnets": ["a", "b"],
                                       "security_groups": ["link-sg"]}},
            "apis": {"catalog": {"type": "HTTP", "stages": ["$default"], "routes": {
                "ANY /inv/{proxy+}": {"vpc_link": "app-link",
                                      "target": "cloudmap:shop.local/inventory?color=blue"}}}}}}


running = lab_fixture(topology, scope="module")     # vpclab's pytest plugin


@pytest.fixture(scope="module")
def lab(running):
    return running.status()


def ips(st: dict) -> dict[str, str]:
    return {n: i["ip"] for n, i in st["vpcs"]["shop"]["instances"].items()}


def ask(where: str, *questions: str) -> dict:
    proc = run_in(LAB, where, sys.executable, str(DNS_QUERY), *questions)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def discover_http(where: str, body: dict) -> tuple[int, dict]:
    """DiscoverInstances from an instance, by the API's AWS name."""
    proc = run_in(LAB, where, "curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}",
                  "-X", "POST", "-H", f"X-Amz-Target: {TARGET}", "-H",
                  "Content-Type: application/x-amz-json-1.1", "-d", json.dumps(body),
                  "http://data-servicediscovery.us-east-1.amazonaws.com/")
    assert proc.returncode == 0, proc.stderr
    text, _, code = proc.stdout.rpartition("\n")
    return int(code), json.loads(text)


def cloudmap(*args: str) -> "subprocess.CompletedProcess":  # noqa: F821
    return vpclab("cloudmap", "-l", LAB, *args)


def test_dns_answers_with_the_services_ttls(lab) -> None:
    addr = ips(lab)
    got = ask("shop/client", "inventory.shop.local:A", "inventory.shop.local:SRV",
              "i-green.inventory.shop.local:A", "nope.shop.local:A",
              "inventory.shop.local:SRV:tcp")
    assert got["inventory.shop.local:A"] == {
        "rcode": "NOERROR", "ttl": 45,
        "answers": sorted([addr["inv1"], addr["inv2"], addr["inv3"]])}
    assert got["inventory.shop.local:SRV"] == {
        "rcode": "NOERROR", "ttl": 15,
        "answers": sorted(f"1 1 8080 {i}.inventory.shop.local." for i in ("i-1", "i-2", "i-green"))}
    assert got["inventory.shop.local:SRV:tcp"] == got["inventory.shop.local:SRV"]   # over TCP
    assert got["i-green.inventory.shop.local:A"]["answers"] == [addr["inv3"]]
    assert got["nope.shop.local:A"]["rcode"] == "NXDOMAIN"
    # the namespace is private to VPC shop: the other VPC's resolver does not know it
    other = ask("other/probe", "inventory.shop.local:A")["inventory.shop.local:A"]
    assert other == {"rcode": "REFUSED", "ttl": None, "answers": []}


def test_discover_instances_over_http_from_an_instance(lab) -> None:
    addr = ips(lab)
    code, body = discover_http("shop/client", {"NamespaceName": "shop.local",
                                               "ServiceName": "inventory",
                                               "QueryParameters": {"color": "green"}})
    assert code == 200
    assert body["Instances"] == [{"InstanceId": "i-green", "NamespaceName": "shop.local",
                                  "ServiceName": "inventory", "HealthStatus": "HEALTHY",
                                  "Attributes": {"color": "green",
                                                 "AWS_INSTANCE_IPV4": addr["inv3"],
                                                 "AWS_INSTANCE_PORT": "8080"}}]
    # an HTTP namespace, asked from the other VPC
    code, body = discover_http("other/probe", {"NamespaceName": "jobs", "ServiceName": "worker"})
    assert code == 200 and [i["InstanceId"] for i in body["Instances"]] == ["w1"]
    assert body["Instances"][0]["HealthStatus"] == "UNKNOWN"
    code, body = discover_http("shop/client", {"NamespaceName": "jobs", "ServiceName": "nope"})
    assert code == 400 and body["__type"] == "ServiceNotFound"


def test_status_shows_namespaces_services_instances_with_health(lab) -> None:
    cm = lab["cloud_map"]
    assert cm["process"]["running"]
    inv = cm["namespaces"]["shop.local"]["services"]["inventory"]
    assert inv["id"].startswith("srv-") and inv["dns_name"] == "inventory.shop.local"
    assert {i: x["health"] for i, x in inv["instances"].items()} == \
        {"i-1": "HEALTHY", "i-2": "HEALTHY", "i-green": "HEALTHY"}
    out = vpclab("status", LAB).stdout
    assert "namespace shop.local ns-" in out and "i-green " in out and "HEALTHY" in out


def test_bad_changes_are_refused_and_change_nothing(lab) -> None:
    before = labmod.status(LAB)["cloud_map"]["revision"]
    for args, reason in [
        (("register", "nope", "x", "--ip", "10.0.1.50", "--port", "80"), "ServiceNotFound"),
        (("register", "inventory", "x", "--ip", "192.168.7.7", "--port", "80"),
         "192.168.7.7 is outside every VPC of the lab"),
        (("register", "inventory", "x", "--instance", "shop/ghost", "--port", "80"),
         "no instance 'shop/ghost'"),
        (("register", "inventory", "x", "--ip", "10.0.1.50", "--port", "80", "--attr",
          "AWS_INSTANCE_PORT=1"), "AWS_INSTANCE_PORT is set by vpclab"),
        (("register", "inventory", "x", "--ip", "10.0.1.50", "--port", "0"), "not a port"),
        (("deregister", "inventory", "ghost"), "InstanceNotFound"),
        (("set-health", "worker", "w1", "UNHEALTHY"), "CustomHealthNotFound"),
    ]:
        proc = cloudmap(*args)
        assert proc.returncode == 2 and reason in proc.stderr, (args, proc.stderr)
    assert labmod.status(LAB)["cloud_map"]["revision"] == before


def test_changes_on_the_running_lab_reach_dns_and_discovery(lab) -> None:
    addr = ips(lab)
    proc = cloudmap("register", "inventory", "i-4", "--ip", "10.0.2.77", "--port", "9090",
                    "--attr", "color=red")
    assert proc.returncode == 0 and "registered" in proc.stdout, proc.stderr
    assert cloudmap("set-health", "inventory", "i-green", "UNHEALTHY").returncode == 0
    got = ask("shop/client", "inventory.shop.local:A", "inventory.shop.local:SRV")
    assert got["inventory.shop.local:A"]["answers"] == sorted(
        [addr["inv1"], addr["inv2"], "10.0.2.77"])
    assert "1 1 9090 i-4.inventory.shop.local." in got["inventory.shop.local:SRV"]["answers"]
    code, body = discover_http("shop/client", {"NamespaceName": "shop.local",
                                               "ServiceName": "inventory",
                                               "HealthStatus": "UNHEALTHY"})
    assert code == 200 and [i["InstanceId"] for i in body["Instances"]] == ["i-green"]
    out = cloudmap("discover", "inventory", "--filter", "color=red", "--json")
    assert [i["InstanceId"] for i in json.loads(out.stdout)["Instances"]] == ["i-4"]
    assert cloudmap("deregister", "inventory", "i-4").returncode == 0
    assert cloudmap("set-health", "inventory", "i-green", "HEALTHY").returncode == 0
    got = ask("shop/client", "inventory.shop.local:A")
    assert got["inventory.shop.local:A"]["answers"] == sorted(
        [addr["inv1"], addr["inv2"], addr["inv3"]])


def api_get(st: dict, path: str) -> tuple[int, str]:
    base = st["api_gateway"]["apis"]["catalog"]["invoke_urls"]["$default"]
    proc = vpclab("exec", "-l", LAB, "internet", "--", "curl", "-sS", "--max-time", "20",
                  "-w", "\n%{http_code}", base + path.lstrip("/"), timeout=40)
    assert proc.returncode == 0, proc.stderr
    body, _, code = proc.stdout.rpartition("\n")
    return int(code), body


def test_http_api_route_to_the_service_over_a_vpc_link(lab) -> None:
    links = {e["ip"] for e in lab["hyperplane"]["api_gateway"]["vpc_links"]["app-link"]["enis"]}
    tags = set()
    for _ in range(12):
        code, body = api_get(lab, "/inv/items")
        assert code == 200, body
        seen = json.loads(body)
        assert seen["peer"] in links                 # VPC-to-VPC NAT: the link ENI
        tags.add(seen["tag"])
    assert tags <= {"inv1", "inv2"} and tags         # ?color=blue keeps inv3 out
    assert cloudmap("deregister", "inventory", "i-1").returncode == 0
    assert {json.loads(api_get(lab, "/inv/x")[1])["tag"] for _ in range(6)} == {"inv2"}
    assert cloudmap("deregister", "inventory", "i-2").returncode == 0
    code, body = api_get(lab, "/inv/x")
    assert (code, body) == (503, '{"message":"Service Unavailable"}')
    assert cloudmap("register", "inventory", "i-1", "--instance", "shop/inv1", "--port", "8080",
                    "--attr", "color=blue").returncode == 0
    code, body = api_get(lab, "/inv/x")
    assert code == 200 and json.loads(body)["tag"] == "inv1"


def test_the_supervisor_restarts_the_cloud_map_process(lab) -> None:
    proc = next(p for p in labmod.status(LAB)["processes"] if p["role"] == "cloudmap")
    os.kill(proc["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = next(p for p in labmod.status(LAB)["processes"] if p["role"] == "cloudmap")
        if now["pid"] != proc["pid"] and now["running"]:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the Cloud Map process was not restarted")
    assert now["restarts"] == 1
    deadline = time.monotonic() + 15
    while True:          # it answers once it has opened its sockets again
        got = ask("shop/client", "inventory.shop.local:A")["inventory.shop.local:A"]
        if got["answers"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert got["ttl"] == 45 and got["answers"]
