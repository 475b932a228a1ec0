"""`vpclab up FILE` on a running lab reconciles it (lab/reconcile.py): instances and VPCs
added and removed, a security-group rule changed, an NLB listener added while a long TCP
connection through the untouched endpoint carries on, a refused change that leaves the
lab as it was (exit 2, the field named). Labs are named `trc…` (with the run's token in front: lab_name) and removed whatever
happens."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time

import pytest

from dataplane import lab as labmod
from dataplane.forwarder import control
from dataplane.model import Lab
from dataplane.pytest_plugin import lab_name
from netns_setup import kernel

from .conftest import (CLI, HERE, REPO, connect, endpoint_to_nlb, leftovers, serve, vpclab,
                       write_topology)

pytestmark = pytest.mark.root
PEERS = HERE / "flood_peers.py"     # its echo server and long stream


def base(lab: str) -> dict:
    web = {"ingress": [{"protocol": "tcp", "ports": 8080, "source": "10.0.0.0/16"}]}
    return {"lab": lab, "vpcs": {"v0": {
        "cidr": "10.0.0.0/16", "subnets": {"a": {"cidr": "10.0.1.0/24"}},
        "security_groups": {"web": web},
        "instances": {"i1": {"subnet": "a", "security_groups": ["web"],
                             "run": serve("i1", 8080, 8081)},
                      "i2": {"subnet": "a"}}}}}


def reconcile(tmp_path, doc: dict) -> subprocess.CompletedProcess:
    return vpclab("up", str(write_topology(tmp_path, doc)), timeout=180)


@pytest.fixture
def lab_named(teardown_labs):
    def make(name: str) -> str:
        name = lab_name(name)
        teardown_labs.append(name)
        return name
    yield make


def test_add_and_remove_instances_and_vpcs(tmp_path, lab_named) -> None:
    name = lab_named("trcadd")
    doc = base(name)
    vpclab("up", str(write_topology(tmp_path, doc)), check=True, timeout=180)
    before = labmod.State.load(name)
    i1_pid = next(p["pid"] for p in before.data["processes"] if p["instance"] == "i1")

    grown = copy.deepcopy(doc)
    grown["vpcs"]["v0"]["instances"]["i3"] = {"subnet": "a", "security_groups": ["web"],
                                              "run": serve("i3", 8080)}
    grown["vpcs"]["v1"] = {"cidr": "10.1.0.0/16", "subnets": {"a": {"cidr": "10.1.1.0/24"}},
                           "instances": {"j1": {"subnet": "a", "run": serve("j1", 8080)},
                                         "j2": {"subnet": "a"}}}
    proc = reconcile(tmp_path, grown)
    assert proc.returncode == 0, proc.stderr
    assert "+ instance v0/i3: 10.0.1.6 in a" in proc.stdout
    assert "+ vpc v1: 10.1.0.0/16" in proc.stdout
    # reached: by name (the hosts file was refreshed), through the VPC router
    assert connect(name, "v0/i2", "i3", 8080) == "i3"
    assert connect(name, "v0/i2", "i1", 8080) == "i1"
    assert connect(name, "v1/j2", "j1", 8080) == "j1"
    st = labmod.State.load(name)
    assert st.data["status"] == "up" and st.data["topology"]["vpcs"]["v1"]
    assert {f"{name}.v1", f"{name}.v1.j1", f"{name}.v0.i3"} <= set(st.data["namespaces"])
    # the untouched instance's process was left alone; a new supervisor runs
    assert any(p["pid"] == i1_pid for p in st.data["processes"])
    assert [p["role"] for p in st.data["processes"]].count("supervisor") == 1
    # the same file again: nothing to do
    again = reconcile(tmp_path, grown)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout

    shrunk = copy.deepcopy(doc)       # i3 and v1 go, and i2 too
    del shrunk["vpcs"]["v0"]["instances"]["i2"]
    proc = reconcile(tmp_path, shrunk)
    assert proc.returncode == 0, proc.stderr
    for line in ("- instance v0/i2", "- instance v0/i3", "- vpc v1"):
        assert line in proc.stdout
    for ns in (f"{name}.v0.i2", f"{name}.v0.i3", f"{name}.v1", f"{name}.v1.j1"):
        assert not kernel.netns_exists(ns), ns
    st = labmod.State.load(name)
    assert set(st.data["namespaces"]) == {f"{name}.v0", f"{name}.v0.i1"}
    assert {p["vpc"] for p in st.data["processes"]} <= {"v0", "hyperplane"}
    assert json.loads(vpclab("status", name, "--json", check=True).stdout)
    vpclab("down", name, check=True)
    assert leftovers(name) == []


def test_a_changed_rule_blocks_and_allows(tmp_path, lab_named) -> None:
    name = lab_named("trcsg")
    doc = base(name)
    vpclab("up", str(write_topology(tmp_path, doc)), check=True, timeout=180)
    assert connect(name, "v0/i2", "i1", 8080) == "i1"
    assert connect(name, "v0/i2", "i1", 8081) == "timeout"
    changed = copy.deepcopy(doc)
    changed["vpcs"]["v0"]["security_groups"]["web"]["ingress"][0]["ports"] = 8081
    proc = reconcile(tmp_path, changed)
    assert proc.returncode == 0, proc.stderr
    assert "~ security group v0/web" in proc.stdout
    assert connect(name, "v0/i2", "i1", 8081) == "i1"
    assert connect(name, "v0/i2", "i1", 8080) == "timeout"


def test_a_refused_change_leaves_the_lab_as_it_was(tmp_path, lab_named) -> None:
    name = lab_named("trcno")
    doc = base(name)
    vpclab("up", str(write_topology(tmp_path, doc)), check=True, timeout=180)
    before = labmod.State.load(name).data
    moved = copy.deepcopy(doc)
    moved["vpcs"]["v0"]["subnets"]["a"]["cidr"] = "10.0.9.0/24"
    moved["vpcs"]["v0"]["instances"]["i3"] = {"subnet": "a"}
    proc = reconcile(tmp_path, moved)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "vpcs.v0.subnets.a.cidr" in proc.stderr and "nothing was changed" in proc.stderr
    after = labmod.State.load(name).data
    assert after == before
    assert not kernel.netns_exists(f"{name}.v0.i3")
    assert connect(name, "v0/i2", "i1", 8080) == "i1"


class LongStream:
    """One long TCP connection (flood_peers.py `stream`) from `c/client` to `ip`:80
    through the lab's forwarder, open from the constructor on. `finish(changed_at)`
    ends it and checks that it never broke, carried blocks for seconds after
    `changed_at` (CLOCK_MONOTONIC, the stream's clock too), kept its one flow, and that
    the forwarder was never restarted (changes made in place)."""

    def __init__(self, name: str, ip: str, tmp_path) -> None:
        self.name, self.ip, self.stop = name, ip, tmp_path / "stop"
        hp = labmod.status(name)["hyperplane"]
        self.socket = hp["socket"]
        self.forwarder = next(p["pid"] for p in labmod.State.load(name).data["processes"]
                              if p["role"] == "forwarder")
        self.client = subprocess.Popen(
            CLI + ["exec", "-l", name, "c/client", "--", sys.executable, str(PEERS), "stream",
                   ip, "80", "120", str(self.stop)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)))
        first = self.client.stdout.readline()
        if first.strip() != "connected":
            self.client.kill()
            pytest.fail(f"the stream did not connect: {first} "
                        f"{self.client.stderr.read() if self.client.poll() else ''}")
        self.flows = self.flow_clients()
        assert len(self.flows) == 1, self.flows

    def flow_clients(self) -> list:
        return [f["client"] for f in control.call(self.socket, "flows")["flows"]
                if f["vip"] == [self.ip, 80]]

    def finish(self, changed_at: float) -> None:
        time.sleep(3)
        self.stop.touch()        # the stream ends at its next block
        try:
            out, err = self.client.communicate(timeout=40)
        finally:
            if self.client.poll() is None:
                self.client.kill()
        assert self.client.returncode == 0, (out[-500:], err)
        lines = out.strip().splitlines()
        result = json.loads(lines[-1])
        assert result["error"] is None, result        # no reset, no stall, start to end
        later = [int(w[2]) for w in (line.split() for line in lines)
                 if w[0] == "progress" and float(w[1]) > changed_at]
        assert len(later) >= 2 and later[-1] > later[0] > 0, (changed_at, lines[-5:])
        assert self.flow_clients() == self.flows
        assert any(p["pid"] == self.forwarder and p["role"] == "forwarder"
                   for p in labmod.State.load(self.name).data["processes"])

    def abandon(self) -> None:
        if self.client.poll() is None:
            self.client.kill()


def test_a_new_listener_keeps_the_flows_of_the_untouched_endpoint(tmp_path, lab_named) -> None:
    name = lab_named("trcnlb")
    doc = endpoint_to_nlb(name, {"client": {}},
                          {"t1": {"run": f"{sys.executable} {PEERS} serve 8080"}},
                          {"protocol": "TCP", "port": 8080, "targets": ["t1"]})
    vpclab("up", str(write_topology(tmp_path, doc)), check=True, timeout=180)
    ep = labmod.status(name)["hyperplane"]["endpoints"]["c/ep"]["enis"][0]["ip"]
    stream = LongStream(name, ep, tmp_path)
    try:
        more = copy.deepcopy(doc)
        more["vpcs"]["p"]["load_balancers"]["nlb"]["listeners"].append(
            {"port": 81, "protocol": "TCP", "target_group": "tg"})
        plan = vpclab("up", str(write_topology(tmp_path, more)), "--diff", timeout=60)
        assert plan.returncode == 0, plan.stderr
        assert "~ load balancer p/nlb: the forwarder's tables" in plan.stdout
        assert "planned, none made" in plan.stdout
        assert len(labmod.State.load(name).data["topology"]["vpcs"]["p"]["load_balancers"]
                   ["nlb"]["listeners"]) == 1          # --diff changed nothing
        proc = reconcile(tmp_path, more)
        assert proc.returncode == 0, proc.stderr
        # the new listener answers, through the same endpoint ENI
        reply = vpclab("exec", "-l", name, "c/client", "--", sys.executable, str(PEERS),
                       "connect", ep, "81", "1", "0", "3", timeout=30)
        assert json.loads(reply.stdout)["ok"] == 1, (reply.stdout, reply.stderr)
        stream.finish(time.monotonic())
    finally:
        stream.abandon()


def test_a_failure_half_way_says_what_was_applied_and_down_still_works(
        tmp_path, lab_named, monkeypatch) -> None:
    """The second new instance fails to come up: the first stays (recorded, made), the
    error names what was applied and what was not, the lab is up from its old topology
    with a supervisor, and `down` removes everything."""
    from dataplane.lab import realise_vpc
    name = lab_named("trcfail")
    doc = base(name)
    vpclab("up", str(write_topology(tmp_path, doc)), check=True, timeout=180)
    grown = copy.deepcopy(doc)
    grown["vpcs"]["v0"]["instances"]["i3"] = {"subnet": "a"}
    grown["vpcs"]["v0"]["instances"]["i4"] = {"subnet": "a"}
    real = realise_vpc.make_instance

    def failing(p, i, mark):
        if i.name == "i4":
            raise RuntimeError("no room for i4")
        real(p, i, mark)
    monkeypatch.setattr(realise_vpc, "make_instance", failing)
    with pytest.raises(labmod.LabError) as e:
        labmod.up(Lab.from_dict(grown), progress=False)
    text = str(e.value)
    assert "failed during: instance v0/i4" in text and "no room for i4" in text
    applied, not_applied = text.split("not applied:")
    assert "instance v0/i3" in applied.split("applied:")[1]
    assert f"security groups in {name}.v0" in not_applied
    st = labmod.State.load(name)
    assert st.data["status"] == "up" and st.data["topology"] == Lab.from_dict(doc).to_dict()
    # truthful: i3 and i4 are recorded (i3 made, i4 perhaps half-made), so down finds them
    assert {f"{name}.v0.i3", f"{name}.v0.i4"} <= set(st.data["namespaces"])
    assert kernel.netns_exists(f"{name}.v0.i3")
    assert [p["role"] for p in st.data["processes"]].count("supervisor") == 1
    vpclab("down", name, check=True)
    assert leftovers(name) == []


KILLED_HALF_WAY = """
import os, signal, sys
from dataplane import lab as labmod
from dataplane.lab import realise_vpc
from dataplane.model import load
real = realise_vpc.make_instance
def dying(p, i, mark):
    real(p, i, mark)
    if i.name == "i4":
        os.kill(os.getpid(), signal.SIGKILL)
realise_vpc.make_instance = dying
labmod.up(load(sys.argv[1]), progress=False)
"""


def test_kill_9_half_way_is_resumed_by_the_next_up(tmp_path, lab_named) -> None:
    """A reconcile killed half-way leaves status `reconciling` (status says so and what
    to do), a state from which the next `up FILE` finishes the change."""
    name = lab_named("trckill")
    doc = base(name)
    vpclab("up", str(write_topology(tmp_path, doc)), check=True, timeout=180)
    grown = copy.deepcopy(doc)
    grown["vpcs"]["v0"]["instances"]["i4"] = {"subnet": "a"}
    grown["vpcs"]["v1"] = {"cidr": "10.1.0.0/16", "subnets": {"a": {"cidr": "10.1.1.0/24"}},
                           "instances": {"j1": {"subnet": "a"}}}
    killed = subprocess.run([sys.executable, "-c", KILLED_HALF_WAY,
                             str(write_topology(tmp_path, grown))],
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert killed.returncode == -9
    st = labmod.State.load(name)
    assert st.data["status"] == "reconciling"
    assert kernel.netns_exists(f"{name}.v0.i4")
    assert f"{name}.v0.i4" in st.data["namespaces"]
    shown = json.loads(vpclab("status", name, "--json").stdout)["status"]
    assert shown.startswith("reconciling (interrupted") and "vpclab up FILE" in shown
    again = vpclab("up", str(write_topology(tmp_path, grown)), timeout=180)
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert "resuming an interrupted reconcile" in again.stdout
    st = labmod.State.load(name)
    assert st.data["status"] == "up" and st.data["topology"] == Lab.from_dict(grown).to_dict()
    assert {f"{name}.v0.i4", f"{name}.v1", f"{name}.v1.j1"} <= set(st.data["namespaces"])
    assert all(kernel.netns_exists(n) for n in st.data["namespaces"])
    assert [p["role"] for p in st.data["processes"]].count("supervisor") == 1
    assert connect(name, "v0/i2", "i1", 8080) == "i1"
    vpclab("down", name, check=True)
    assert leftovers(name) == []


def test_an_added_instance_passes_the_same_ready_check_as_in_up(tmp_path, lab_named) -> None:
    """An instance added by a reconcile whose `ready:` never passes fails the reconcile,
    naming it, as `up` would (one ready step, lab/blueprint.py); one that passes is
    waited for."""
    name = lab_named("trcrdy")
    doc = base(name)
    vpclab("up", str(write_topology(tmp_path, doc)), check=True, timeout=180)
    never = copy.deepcopy(doc)
    never["vpcs"]["v0"]["instances"]["i3"] = {"subnet": "a", "run": "sleep 60",
                                              "ready": {"tcp": 9, "timeout": 2}}
    proc = reconcile(tmp_path, never)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "during: ready: v0/i3 (tcp 9)" in proc.stderr, proc.stderr
    ready = copy.deepcopy(doc)
    ready["vpcs"]["v0"]["instances"]["i3"] = {"subnet": "a", "security_groups": ["web"],
                                              "run": "sleep 1; " + serve("i3", 8080),
                                              "ready": {"tcp": 8080, "timeout": 20}}
    proc = reconcile(tmp_path, ready)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert connect(name, "v0/i2", "i3", 8080) == "i3"     # ready when up returned
