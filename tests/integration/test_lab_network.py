"""One two-VPC lab with identical CIDRs, checked with real clients from inside instances.

red and blue are both 10.0.0.0/16 with the same subnets, and both have a `web1` at
10.0.1.4: whatever answers proves which VPC a packet stayed in. Servers are started by
the topology's `run:`; every client is bounded by a timeout; a security-group drop is
silent, so it shows as `timeout`, never `refused`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from dataplane import lab as labmod
from dataplane.pytest_plugin import lab_name
from netns_setup import nsenter

from .conftest import CLI, REPO, connect, leftovers, run_in, serve, vpclab, write_topology

pytestmark = pytest.mark.root
LAB = lab_name("t3net")


def topology() -> dict:
    subnets = {"a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"},
               "b": {"cidr": "10.0.2.0/24", "az": "us-east-1b"}}
    return {"lab": LAB, "region": "us-east-1", "vpcs": {
        "red": {
            "cidr": "10.0.0.0/16", "subnets": subnets,
            "security_groups": {
                "web": {"ingress": [
                    {"protocol": "tcp", "ports": 8080, "source": "10.0.0.0/16"},
                    {"protocol": "tcp", "ports": "9000-9100", "source": "sg:admin"},
                    {"protocol": "udp", "ports": 5300, "source": "10.0.1.0/24"}]},
                "admin": {"ingress": [], "egress": [
                    {"protocol": "tcp", "ports": 8080, "destination": "10.0.1.0/24"},
                    {"protocol": "tcp", "ports": "9000-9100", "destination": "10.0.0.0/16"}]}},
            "instances": {
                "web1": {"subnet": "a", "security_groups": ["web"],
                         "run": serve("red-web1", 8080, 9000, "u5300")},
                "web2": {"subnet": "b", "security_groups": ["web"], "ip": "10.0.2.50",
                         "run": serve("red-web2", 8080, 9000)},
                "admin": {"subnet": "a", "security_groups": ["admin"],
                          "run": serve("red-admin", 8080)},
                "plain1": {"subnet": "b"},
                "plain2": {"subnet": "a", "run": serve("red-plain2", 8080)}}},
        "blue": {
            "cidr": "10.0.0.0/16", "subnets": subnets,
            "instances": {
                "web1": {"subnet": "a", "run": serve("blue-web1", 8080)},
                "bclient": {"subnet": "a"},
                "lonely": {"subnet": "b", "ip": "10.0.2.77", "run": serve("blue-lonely", 8080)}}},
    }}


def _wait_for(where: str, host: str, port: int, tag: str) -> None:
    deadline = time.monotonic() + 20
    while (got := connect(LAB, where, host, port, wait=1)) != tag:
        assert time.monotonic() < deadline, f"{host}:{port} from {where}: {got}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    path = write_topology(tmp_path_factory.mktemp("t3net"), topology())
    ROOT_BEFORE.update(_root_facts())
    try:
        proc = vpclab("up", str(path))
        assert proc.returncode == 0, proc.stderr
        _wait_for("red/plain1", "10.0.1.4", 8080, "red-web1")
        _wait_for("red/plain1", "10.0.2.50", 8080, "red-web2")
        _wait_for("red/plain1", "10.0.1.6", 8080, "red-plain2")
        _wait_for("blue/bclient", "10.0.1.4", 8080, "blue-web1")
        _wait_for("blue/bclient", "10.0.2.77", 8080, "blue-lonely")
        yield path
    finally:
        labmod.cleanup(LAB, everything=True)
    assert leftovers(LAB) == []


# -- the shape in the kernel -----------------------------------------------------------
def test_instance_interface_address_mtu_and_default_route(lab):
    out = run_in(LAB, "red/web1", "ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout
    assert "10.0.1.4/24" in out
    assert "mtu 9001" in run_in(LAB, "red/web1", "ip", "-o", "link", "show", "eth0").stdout
    assert "default via 10.0.1.1 dev eth0" in run_in(LAB, "red/web1", "ip", "route").stdout


def test_vpc_router_has_only_its_enis_and_forwards(lab):
    links = json.loads(run_in(LAB, "red", "ip", "-j", "link").stdout)
    assert sorted(link["ifname"] for link in links) == [
        "eni-admin", "eni-plain1", "eni-plain2", "eni-web1", "eni-web2", "lo"]
    assert all(link["mtu"] == 9001 for link in links if link["ifname"] != "lo")
    assert all(any(a.startswith(f"vpclab.{LAB}.red.") for a in link.get("altnames", []))
               for link in links if link["ifname"] != "lo")
    assert nsenter.read_sysctl(f"{LAB}.red", "net.ipv4.ip_forward") == "1"
    routes = run_in(LAB, "red", "ip", "route").stdout
    assert "10.0.1.4 dev eni-web1" in routes and "default" not in routes


def test_aws_conntrack_timeouts_in_the_vpc_namespace_only(lab):
    ns = f"{LAB}.red"
    assert nsenter.read_sysctl(ns, "net.netfilter.nf_conntrack_tcp_timeout_established") == "432000"
    assert nsenter.read_sysctl(ns, "net.netfilter.nf_conntrack_udp_timeout") == "30"
    assert nsenter.read_sysctl(ns, "net.netfilter.nf_conntrack_udp_timeout_stream") == "180"
    assert _root_facts() == ROOT_BEFORE      # the root namespace is not changed


ROOT_BEFORE: dict = {}


def _root_facts() -> dict:
    facts = {}
    for key in ("net/netfilter/nf_conntrack_udp_timeout_stream", "net/ipv4/ip_forward"):
        try:
            with open(f"/proc/sys/{key}") as f:
                facts[key] = f.read().strip()
        except OSError:
            facts[key] = None
    facts["links"] = subprocess.run(["ip", "-o", "link"], capture_output=True,
                                    text=True).stdout.count("\n")
    facts["routes"] = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    return facts


def test_no_two_instances_share_l2_the_router_answers_arp(lab):
    # web1 and plain2 are in the same subnet; web1 reaches plain2 through the router,
    # whose MAC (eni-web1's) is what web1 learns for plain2's address.
    assert connect(LAB, "red/plain1", "10.0.1.6", 8080) == "red-plain2"
    run_in(LAB, "red/web1", sys.executable, str(REPO / "tests/integration/client.py"),
           "10.0.1.6", "8080", "1")
    neigh = json.loads(run_in(LAB, "red/web1", "ip", "-j", "neigh", "show", "10.0.1.6").stdout)
    eni = json.loads(run_in(LAB, "red", "ip", "-j", "link", "show", "eni-web1").stdout)[0]
    assert neigh and neigh[0]["lladdr"] == eni["address"]


# -- traffic ---------------------------------------------------------------------------
def test_tcp_across_subnets(lab):
    assert connect(LAB, "red/plain1", "10.0.1.4", 8080) == "red-web1"     # b → a
    assert connect(LAB, "red/web1", "10.0.2.50", 8080) == "red-web2"      # a → b


def test_security_group_refusal_is_a_silent_drop(lab):
    # web allows 9000-9100 only from members of `admin`: plain1 is not one.
    assert connect(LAB, "red/plain1", "10.0.2.50", 9000) == "timeout"
    assert connect(LAB, "red/plain1", "10.0.1.4", 8081) == "timeout"


def test_sg_reference_admits_members_of_the_group(lab):
    assert connect(LAB, "red/admin", "10.0.2.50", 9000) == "red-web2"
    # allowed by both groups, nothing listening: the RST comes back (not a drop)
    assert connect(LAB, "red/admin", "10.0.1.4", 9001) == "refused"


def test_egress_rules_limit_what_leaves(lab):
    # admin may send tcp/8080 to 10.0.1.0/24 only
    assert connect(LAB, "red/admin", "10.0.1.4", 8080) == "red-web1"
    assert connect(LAB, "red/admin", "10.0.2.50", 8080) == "timeout"


def test_stateful_replies_pass_although_no_rule_admits_them(lab):
    # admin has no ingress rule at all: its own connections' replies still come back...
    assert connect(LAB, "red/admin", "10.0.1.4", 8080) == "red-web1"
    # ...but nothing new gets in (web1 may send anything; admin admits nothing).
    assert connect(LAB, "red/web1", "10.0.1.5", 8080) == "timeout"


def test_udp_rules_and_stateful_udp_replies(lab):
    # web admits udp/5300 from subnet a only; plain2 (a, default group, which admits
    # nothing from web1) still gets the reply: UDP is tracked too.
    assert connect(LAB, "red/plain2", "10.0.1.4", "u5300") == "red-web1"
    assert connect(LAB, "red/plain1", "10.0.1.4", "u5300") == "timeout"


def test_default_group_admits_its_own_members_only(lab):
    assert connect(LAB, "red/plain1", "10.0.1.6", 8080) == "red-plain2"
    assert connect(LAB, "red/web1", "10.0.1.6", 8080) == "timeout"


def test_identical_cidrs_stay_apart(lab):
    # Same address, different VPC, different server.
    assert connect(LAB, "blue/bclient", "10.0.1.4", 8080) == "blue-web1"
    assert connect(LAB, "red/plain1", "10.0.1.4", 8080) == "red-web1"
    # blue's lonely (10.0.2.77) does not exist in red: no path reaches blue.
    got = connect(LAB, "red/plain1", "10.0.2.77", 8080)
    assert got != "blue-lonely" and (got == "timeout" or got.startswith("error"))


# -- DNS -------------------------------------------------------------------------------
def test_dns_names_resolve_inside_the_vpc(lab):
    out = run_in(LAB, "red/plain1", "getent", "hosts", "web1")
    assert out.returncode == 0 and out.stdout.split()[0] == "10.0.1.4"
    out = run_in(LAB, "red/plain1", "getent", "hosts", "ip-10-0-2-50.us-east-1.compute.internal")
    assert out.returncode == 0 and out.stdout.split()[0] == "10.0.2.50"
    curl = run_in(LAB, "red/plain1", "curl", "-s", "--max-time", "5", "http://web1:8080/")
    assert curl.returncode == 0 and curl.stdout.strip() == "red-web1"
    # DNS to base+2 ignores security groups (admin may send only tcp/8080 and 9000-9100)
    out = run_in(LAB, "red/admin", "getent", "hosts", "web2")
    assert out.returncode == 0 and out.stdout.split()[0] == "10.0.2.50"


def test_dns_answers_only_for_its_own_vpc(lab):
    assert run_in(LAB, "blue/bclient", "getent", "hosts", "lonely").stdout.split()[0] == "10.0.2.77"
    assert run_in(LAB, "red/plain1", "getent", "hosts", "lonely").returncode != 0
    assert run_in(LAB, "blue/bclient", "getent", "hosts", "admin").returncode != 0
    assert run_in(LAB, "blue/bclient", "getent", "hosts",
                  "ip-10-0-2-50.us-east-1.compute.internal").returncode != 0
    # the same friendly name means each VPC's own instance
    assert run_in(LAB, "blue/bclient", "getent", "hosts", "web1").stdout.split()[0] == "10.0.1.4"


def test_host_resolv_conf_is_untouched(lab):
    out = run_in(LAB, "red/plain1", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.0.0.2" in out
    with open("/etc/resolv.conf") as f:
        assert "10.0.0.2" not in f.read()


# -- lifecycle on a running lab --------------------------------------------------------
def test_exec_passes_the_exit_status_through(lab):
    assert run_in(LAB, "red/web1", "sh", "-c", "exit 7").returncode == 7
    assert run_in(LAB, "red/web1", "no-such-command-here").returncode == 127


def test_up_twice_is_a_no_op(lab):
    before = json.loads(vpclab("status", LAB, "--json", check=True).stdout)
    again = vpclab("up", str(lab))
    assert again.returncode == 0 and "nothing to do" in again.stdout
    after = json.loads(vpclab("status", LAB, "--json", check=True).stdout)
    assert [p["pid"] for p in after["processes"]] == [p["pid"] for p in before["processes"]]


def test_status_needs_only_the_state(lab, tmp_path):
    st = json.loads(vpclab("status", LAB, "--json", check=True).stdout)
    assert st["status"] == "up"
    assert st["vpcs"]["red"]["instances"]["web2"]["ip"] == "10.0.2.50"
    assert all(p["running"] for p in st["processes"])
    assert {p["role"] for p in st["processes"]} == {"dns", "run", "supervisor"}
    web1 = [p for p in st["processes"] if p["vpc"] == "red" and p["instance"] == "web1"][0]
    with open(web1["log"]) as f:
        assert "serving red-web1" in f.read()


def test_capture_writes_a_pcap(lab, tmp_path):
    pcap = tmp_path / "web1.pcap"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cap = subprocess.Popen(CLI + ["capture", "-l", LAB, "red/web1", "-w", str(pcap),
                                  "-c", "4", "tcp", "port", "8080"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 20
        while cap.poll() is None and time.monotonic() < deadline:
            connect(LAB, "red/plain1", "10.0.1.4", 8080, wait=1)
        assert cap.wait(timeout=5) == 0, cap.stderr.read()
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    data = pcap.read_bytes()
    assert data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4") and len(data) > 24
