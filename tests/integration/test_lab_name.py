"""One file, two labs (`vpclab up FILE --name LAB`), and the plan against what `up`
really made (root).

examples/privatelink.yaml comes up twice, as `tpla` and `tplb` (this run's names for them): every namespace, the
Hyperplane's forwarder, its sockets and flow file, the cgroup and the state directory
follow the lab's name, so both run at once and each carries its own traffic through
its own endpoint. `vpclab validate --plan --json --name tpla`, run before, names exactly
the namespaces, ENI addresses and processes `up` then made. Taking `tpla` down leaves
`tplb` whole and working. `vpclab graph -l LAB` draws each from its state file.
"""
from __future__ import annotations

import collections
import json
import subprocess
import time

from dataplane import lab as labmod
from dataplane.model import names
from dataplane.pytest_plugin import lab_name
from netns_setup import kernel

from .conftest import REPO, leftovers, vpclab

EXAMPLE = str(REPO / "examples" / "privatelink.yaml")
LABS = (lab_name("tpla"), lab_name("tplb"))
A, B = LABS


def through_the_endpoint(lab: str) -> str:
    """What consumer/client gets from the endpoint's private DNS name (HTTP status),
    allowing the NLB's health checks (2 × 5 s) time to find the targets healthy."""
    deadline = time.monotonic() + 60
    while True:
        proc = vpclab("exec", "-l", lab, "consumer/client", "--", "curl", "-s", "-m", "10",
                      "--retry", "5", "--retry-connrefused", "--retry-delay", "1",
                      "-o", "/dev/null", "-w", "%{http_code}", "http://web.provider.internal/",
                      timeout=90)
        if proc.stdout.strip() == "200" or time.monotonic() > deadline:
            return proc.stdout.strip()
        time.sleep(1)


def ip_json(netns: str, *args: str) -> list[dict]:
    proc = subprocess.run(["ip", "-j", "-n", netns, *args], capture_output=True, text=True,
                          timeout=30, check=True)
    return json.loads(proc.stdout)


def addresses_in(netns: str) -> set[str]:
    """Every IPv4 address of every interface in `netns`, as the kernel shows them."""
    return {a["local"] for link in ip_json(netns, "addr", "show")
            for a in link.get("addr_info", []) if a.get("family") == "inet"}


def device_toward(netns: str, ip: str) -> str:
    """The interface `netns`'s routing sends `ip` out of."""
    return ip_json(netns, "route", "get", ip)[0]["dev"]


def test_one_file_as_two_labs_and_the_plan_is_what_up_made(teardown_labs) -> None:
    plans = {}
    for lab in LABS:
        proc = vpclab("validate", EXAMPLE, "--plan", "--json", "--name", lab)
        assert proc.returncode == 0, proc.stderr
        plans[lab] = json.loads(proc.stdout)["plan"]
        assert not any(kernel.netns_exists(n) for n in plans[lab]["namespaces"])
    for lab in LABS:
        teardown_labs.append(lab)
        proc = vpclab("up", EXAMPLE, "--name", lab, "-q")
        assert proc.returncode == 0, proc.stderr
        assert f"lab {lab} is up" in proc.stdout

    states = {lab: labmod.State.load(lab) for lab in LABS}
    for lab, st in states.items():
        plan = plans[lab]
        # the namespaces the plan named are exactly the ones up made, and they exist
        assert st.data["namespaces"] == plan["namespaces"]
        assert all(kernel.netns_exists(n) for n in plan["namespaces"])
        assert sorted(n for n in kernel.list_netns() if n.startswith(lab + ".")) == \
            sorted(plan["namespaces"])
        # every ENI address the plan named is on the kernel's interface
        for e in plan["enis"]:
            if e["eni_id"]:      # a Hyperplane ENI: routed by the VPC router to its veth
                assert device_toward(names.vpc_netns(lab, e["vpc"]), e["ip"]) == e["ifname"]
            else:                # an instance's: eth0 in its namespace
                assert e["ip"] in addresses_in(names.instance_netns(lab, e["vpc"], e["owner"]))
        assert [(e["eni_id"], e["ip"]) for e in plan["enis"] if e["eni_id"]] == \
            [(e["eni_id"], e["ip"]) for e in st.data["hyperplane"]["enis"]]
        # the processes the plan named are the ones up started (role, namespace)
        started = collections.Counter((p["role"], p["netns"]) for p in st.data["processes"])
        assert started == collections.Counter((p["role"], p["netns"]) for p in plan["processes"])
        assert st.dir == names.lab_dir(lab) and plan["state_dir"] == st.dir
        # the DNS names the plan named are the resolvers' hosts files
        for vname, v in st.data["vpcs"].items():
            with open(v["hosts"]) as f:
                written = [{"name": n, "address": ip} for line in f.read().splitlines()
                           for ip, *line_names in [line.split()] for n in line_names]
            assert written == plan["dns"][vname]

    # the two labs share nothing: namespaces, ENI IDs, sockets, cgroups
    a, b = (states[lab].data for lab in LABS)
    assert not set(a["namespaces"]) & set(b["namespaces"])
    assert not {e["eni_id"] for e in a["hyperplane"]["enis"]} & \
        {e["eni_id"] for e in b["hyperplane"]["enis"]}
    assert a["hyperplane"]["socket"] != b["hyperplane"]["socket"]
    if a["tracking"].get("path"):
        assert a["tracking"]["path"] != b["tracking"]["path"]

    # each carries its own traffic through its own endpoint and NLB
    for lab in LABS:
        assert through_the_endpoint(lab) == "200"
    flows = {lab: vpclab("flows", "-l", lab, check=True).stdout for lab in LABS}
    for lab, other in (LABS, LABS[::-1]):
        mine = {e["eni_id"] for e in states[lab].data["hyperplane"]["enis"]}
        theirs = {e["eni_id"] for e in states[other].data["hyperplane"]["enis"]}
        assert any(i in flows[lab] for i in mine)
        assert not any(i in flows[lab] for i in theirs)

    # a running lab drawn from its state file: its own IDs, not the other's
    for lab, other in (LABS, LABS[::-1]):
        drawing = vpclab("graph", "-l", lab, "--format", "dot", check=True).stdout
        assert drawing.startswith(f'digraph "lab {lab} ')
        assert all(e["eni_id"] in drawing for e in states[lab].data["hyperplane"]["enis"])
        assert not any(e["eni_id"] in drawing for e in states[other].data["hyperplane"]["enis"])
        svg = subprocess.run(["dot", "-Tsvg"], input=drawing, capture_output=True, text=True,
                             timeout=60)
        assert svg.returncode == 0 and "<svg" in svg.stdout, svg.stderr

    # the same file again under a name that is up: nothing to do
    proc = vpclab("up", EXAMPLE, "--name", B, "-q")
    assert proc.returncode == 0 and "already up" in proc.stdout

    # down one: the other is whole and still works
    proc = vpclab("down", A)
    assert proc.returncode == 0, proc.stderr
    assert leftovers(A) == []
    status = json.loads(vpclab("status", B, "--json", check=True).stdout)
    assert status["status"] == "up" and not status.get("degraded")
    assert all(kernel.netns_exists(n) for n in b["namespaces"])
    assert through_the_endpoint(B) == "200"
