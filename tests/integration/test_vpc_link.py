"""HTTP-API VPC links end to end in a lab (issue 9): API Gateway's VPC reaches targets in
customer VPCs over VPC-to-VPC NAT, one routing domain per link. API Gateway's VPC, the
two customer VPCs and both links' destinations all share 10.0.0.0/16, so only the link a
program picks tells them apart. Every lab is named `t9…` and is removed whatever happens.
"""
from __future__ import annotations

import json
import sys
import time

import pytest

from dataplane.forwarder import control
from dataplane import lab as labmod

from dataplane.pytest_plugin import lab_fixture

from .conftest import CLIENT, serve, vpclab


def topology(lab: str) -> dict:
    """Two customer VPCs with one CIDR, a link into each. In `app`: web1 admits the link's
    group, web2 admits only another group; the link's group lets 8080, 5201 and UDP 5353
    out, not 8081."""
    link_egress = [{"protocol": "tcp", "ports": 8080, "destination": "10.0.0.0/16"},
                   {"protocol": "tcp", "ports": 5201, "destination": "10.0.0.0/16"},
                   {"protocol": "udp", "ports": 5353, "destination": "10.0.0.0/16"}]
    return {
        "lab": lab, "region": "us-east-1",
        "vpcs": {
            "app": {
                "cidr": "10.0.0.0/16",
                "subnets": {"a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"},
                            "b": {"cidr": "10.0.2.0/24", "az": "us-east-1b"}},
                "security_groups": {
                    "link-sg": {"ingress": [], "egress": link_egress},
                    "web-sg": {"ingress": [
                        {"protocol": "tcp", "ports": "8080-8081", "source": "sg:link-sg"},
                        {"protocol": "tcp", "ports": 5201, "source": "sg:link-sg"},
                        {"protocol": "udp", "ports": 5353, "source": "sg:link-sg"}]},
                    "other-sg": {"ingress": []},
                    "closed-sg": {"ingress": [
                        {"protocol": "tcp", "ports": 8080, "source": "sg:other-sg"}]}},
                "instances": {
                    "web1": {"subnet": "a", "security_groups": ["web-sg"],
                             "run": serve("app-web1-{peer}", 8080, 8081, "u5353")},
                    "web2": {"subnet": "b", "security_groups": ["closed-sg"],
                             "run": serve("app-web2-{peer}", 8080)},
                    "perf": {"subnet": "b", "security_groups": ["web-sg"],
                             "run": "iperf3 -s -p 5201"},
                },
            },
            "other": {
                "cidr": "10.0.0.0/16",
                "subnets": {"a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"}},
                "instances": {"web1": {"subnet": "a",
                                       "run": serve("other-web1-{peer}", 8080)}},
            },
        },
        "api_gateway": {"vpc_links": {
            "app-link": {"vpc": "app", "subnets": ["a", "b"], "security_groups": ["link-sg"]},
            "other-link": {"vpc": "other", "subnets": ["a"]},
        }},
    }


# One lab for the module (vpclab's pytest plugin: down at the end must leave nothing).
running = lab_fixture(lambda: topology("t9link"), scope="module")


@pytest.fixture(scope="module")
def link_lab(running):
    return running.name, running.status()


def over(lab: str, link: str, host: str, port: int | str, wait: float = 2.0) -> str:
    """What client.py, run in API Gateway's VPC bound to `link`, got from host:port."""
    proc = vpclab("exec", "-l", lab, "apigw", "--link", link, "--", sys.executable, str(CLIENT),
                  host, str(port), str(wait), timeout=wait + 30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def instance_ip(st: dict, vpc: str, name: str) -> str:
    return st["vpcs"][vpc]["instances"][name]["ip"]


def link_enis(st: dict, link: str) -> dict[str, str]:
    """{subnet: ENI address} of a link."""
    return {e["subnet"]: e["ip"] for e in st["hyperplane"]["api_gateway"]["vpc_links"][link]["enis"]}


def drops(st: dict, reason: str) -> int:
    ports = control.call(st["hyperplane"]["socket"], "stats")["ports"]
    return sum(p["drops"].get(reason, 0) for p in ports.values())


def wait_for(fn, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            assert value, what
            return value
        time.sleep(0.2)


def test_status_shows_each_link(link_lab) -> None:
    lab, st = link_lab
    links = st["hyperplane"]["api_gateway"]["vpc_links"]
    assert set(links) == {"app-link", "other-link"}
    app = links["app-link"]
    assert app["id"].startswith("vpclink-") and app["state"] == "AVAILABLE"
    assert app["vpc"] == "app" and app["subnets"] == ["a", "b"]
    assert app["security_groups"] == ["link-sg"]
    assert links["other-link"]["security_groups"] == ["default"]
    assert [e["eni_id"][:4] for e in app["enis"]] == ["eni-", "eni-"]
    # the lowest free address of each subnet after the instances'
    assert link_enis(st, "app-link") == {"a": "10.0.1.5", "b": "10.0.2.6"}
    out = vpclab("status", lab)
    assert out.returncode == 0 and app["id"] in out.stdout and "AVAILABLE" in out.stdout


def test_each_link_reaches_its_own_vpc_and_targets_see_the_link_eni(link_lab, running) -> None:
    lab, st = link_lab
    web1 = instance_ip(st, "app", "web1")
    assert web1 == instance_ip(st, "other", "web1")        # one address, two VPCs
    app_eni, other_eni = link_enis(st, "app-link")["a"], link_enis(st, "other-link")["a"]
    assert wait_for(lambda: over(lab, "app-link", web1, 8080) == f"app-web1-{app_eni}",
                    "app-link reaches app/web1")
    assert over(lab, "other-link", web1, 8080) == f"other-web1-{other_eni}"
    # UDP too, over the link's ENI in the target's AZ
    assert over(lab, "app-link", web1, "u5353") == f"app-web1-{app_eni}"
    app_id = st["hyperplane"]["api_gateway"]["vpc_links"]["app-link"]["id"]
    # the Python API's flows: the same as `vpclab flows --json`, links named as in the file
    assert any(f["kind"] == "vpc_nat" and f["snat"][0] == app_eni and f["backend"] == [web1, 8080]
               and (f["service_name"], f["vpc_link"]) == (app_id, "app-link")
               for f in running.flows())
    out = vpclab("flows", "-l", lab)
    assert out.returncode == 0 and "app-link" in out.stdout and app_eni in out.stdout


def test_security_groups_decide_what_passes(link_lab) -> None:
    lab, st = link_lab
    web1, web2 = instance_ip(st, "app", "web1"), instance_ip(st, "app", "web2")
    refused_in = drops(st, "sg_egress")
    # web2 admits only `other-sg`: the link's packets die silently at the target
    assert over(lab, "app-link", web2, 8080, wait=1.0) == "timeout"
    # the link's egress rules let 8080 out but not 8081: dropped in the forwarder, counted
    assert over(lab, "app-link", web1, 8081, wait=1.0) == "timeout"
    assert drops(labmod.status(lab), "sg_egress") > refused_in


def test_the_customer_vpc_cannot_open_a_connection_to_a_link_eni(link_lab) -> None:
    lab, st = link_lab
    before = drops(st, "link_one_way")
    eni = link_enis(st, "app-link")["a"]
    proc = vpclab("exec", "-l", lab, "app/web1", "--", sys.executable, str(CLIENT), eni, "8080",
                  "1.0", timeout=30)
    assert proc.stdout.strip() == "timeout"
    proc = vpclab("exec", "-l", lab, "app/web1", "--", sys.executable, str(CLIENT), eni, "u5353",
                  "1.0", timeout=30)
    assert proc.stdout.strip() == "timeout"
    assert drops(labmod.status(lab), "link_one_way") >= before + 2


def test_iperf3_over_a_link_with_checksums_verified(link_lab) -> None:
    lab, st = link_lab
    perf = instance_ip(st, "app", "perf")
    out = None
    for _ in range(20):
        out = vpclab("exec", "-l", lab, "apigw", "--link", "app-link", "--", "iperf3", "-c",
                     perf, "-p", "5201", "-t", "2", "-J", timeout=60)
        if out.returncode == 0:
            break
        time.sleep(0.5)
    assert out.returncode == 0, out.stdout[-500:]
    assert json.loads(out.stdout)["end"]["sum_received"]["bytes"] > 10_000_000
    snmp = vpclab("exec", "-l", lab, "app/perf", "--", "cat", "/proc/net/snmp").stdout.splitlines()
    names, values = [line.split() for line in snmp if line.startswith("Tcp:")][:2]
    assert int(values[names.index("InCsumErrors")]) == 0


def test_exec_without_a_link_runs_unbound_in_api_gateways_vpc(link_lab) -> None:
    lab, st = link_lab
    out = vpclab("exec", "-l", lab, "apigw", "--", "ip", "-o", "route")
    assert out.returncode == 0 and "10.0.0.0/16" not in out.stdout
    out = vpclab("exec", "-l", lab, "apigw", "--link", "app-link", "--", "ip", "-o", "route")
    assert out.returncode == 0 and "10.0.0.0/16" in out.stdout
    bad = vpclab("exec", "-l", lab, "apigw", "--link", "no-such-link", "--", "true")
    assert bad.returncode == 2 and "no-such-link" in bad.stderr and "app-link" in bad.stderr


def test_capture_on_a_link_eni_shows_the_translated_connection(link_lab) -> None:
    """tcpdump on a link ENI sees the VPC's side: from the ENI's address to the target."""
    import subprocess
    lab, st = link_lab
    eni = next(e for e in st["hyperplane"]["api_gateway"]["vpc_links"]["app-link"]["enis"]
               if e["subnet"] == "a")
    web1 = instance_ip(st, "app", "web1")
    cap = subprocess.Popen([sys.executable, "-m", "dataplane.cli.main", "capture", "-l", lab,
                            eni["eni_id"], "-c", "1", "tcp[tcpflags] == tcp-syn"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)   # tcpdump needs a moment to attach
        assert over(lab, "app-link", web1, 8080) == f"app-web1-{eni['ip']}"
        line = cap.communicate(timeout=15)[0]
    finally:
        cap.kill()
    assert f"IP {eni['ip']}." in line and f"> {web1}.8080:" in line
