"""The lab's supervisor and the truth of `status` (issue 13, part 2): a killed forwarder or
resolver is back within about a second and counted, a process that keeps dying is given
up on, a lab with a component down is `degraded` (exit 1) naming it, and `vpclab up`
repairs it in place; and the flows of a killed forwarder survive it. The labs are named
`lab_name("t13sup")` and `lab_name("t13kf")` and are removed whatever happens.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest
import yaml

from dataplane import lab as labmod
from dataplane.pytest_plugin import lab_name
from dataplane.compile.privatelink import HEALTH_NS_IP
from dataplane.forwarder import control
from dataplane.lab.supervisor import MAX_RESTARTS
from netns_setup import procs

from .conftest import CLI, REPO, leftovers, vpclab, write_topology

EXAMPLE = REPO / "examples" / "privatelink.yaml"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    name = lab_name("t13sup")
    path = tmp_path_factory.mktemp("t13sup") / "lab.yaml"
    path.write_text(EXAMPLE.read_text().replace("lab: pl", f"lab: {name}", 1))
    try:
        vpclab("up", str(path), check=True, timeout=180)
        yield name, str(path)
        vpclab("down", name, check=True)
        assert leftovers(name) == []
    finally:
        labmod.cleanup(name, everything=True)


def record(lab: str, role: str, vpc: str | None = None) -> dict:
    return next(p for p in json.loads(vpclab("status", lab, "--json").stdout)["processes"]
                if p["role"] == role and (vpc is None or p["vpc"] == vpc))


def restarted(lab: str, role: str, old_pid: int, vpc: str | None = None,
              timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = record(lab, role, vpc)
        if p["pid"] != old_pid and p["running"]:
            return p
        time.sleep(0.05)
    raise AssertionError(f"{role} was not restarted within {timeout} s")


def fetch(lab: str) -> str:
    out = vpclab("exec", "-l", lab, "consumer/client", "--", "curl", "-s", "-m", "5",
                 "-o", "/dev/null", "-w", "%{http_code}", "http://web.provider.internal/")
    return out.stdout


def test_a_killed_forwarder_is_restarted_and_counted(lab) -> None:
    name, _ = lab
    assert fetch(name) == "200"
    old = record(name, "forwarder")
    os.kill(old["pid"], signal.SIGKILL)
    new = restarted(name, "forwarder", old["pid"])
    assert new["restarts"] == 1
    assert fetch(name) == "200"
    out = vpclab("status", name)
    assert out.returncode == 0 and "restarted 1×" in out.stdout


def test_a_process_that_keeps_dying_is_given_up_then_repaired_by_up(lab) -> None:
    name, path = lab
    pid = record(name, "dns", "consumer")["pid"]
    for _ in range(MAX_RESTARTS):
        os.kill(pid, signal.SIGKILL)
        pid = restarted(name, "dns", pid, "consumer")["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not record(name, "dns", "consumer")["gave_up"]:
        time.sleep(0.05)
    assert record(name, "dns", "consumer")["gave_up"]
    out = vpclab("status", name)
    assert out.returncode == 1
    assert "degraded" in out.stdout and "dns process" in out.stdout
    assert "the supervisor gave up restarting it" in out.stdout
    report = json.loads(vpclab("status", name, "--json").stdout)
    assert report["status"] == "degraded" and report["degraded"]
    up = vpclab("up", path)
    assert up.returncode == 0 and "was degraded; restarted: dns consumer" in up.stdout
    assert vpclab("status", name).returncode == 0
    assert procs.alive(record(name, "dns", "consumer")["pid"], None)


def test_a_dead_supervisor_makes_the_lab_degraded_until_up(lab) -> None:
    name, path = lab
    sup = record(name, "supervisor")
    os.kill(sup["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and procs.alive(sup["pid"], None):
        time.sleep(0.05)
    out = vpclab("status", name)
    assert out.returncode == 1 and "supervisor process" in out.stdout
    assert "restarted: supervisor" in vpclab("up", path, check=True).stdout
    assert vpclab("status", name).returncode == 0


def perf_topology(name: str) -> dict:
    """The PrivateLink example with an iperf3 target behind the NLB's port 5201."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["lab"] = name
    consumer, provider = doc["vpcs"]["consumer"], doc["vpcs"]["provider"]
    consumer["security_groups"]["endpoint-sg"]["ingress"].append(
        {"protocol": "tcp", "ports": 5201, "source": "10.0.0.0/16"})
    provider["security_groups"]["web-sg"]["ingress"].append(
        {"protocol": "tcp", "ports": 5201, "source": "10.0.0.0/16"})
    provider["instances"]["web1"]["run"] = "iperf3 -s -p 5201"
    provider["load_balancers"]["web-nlb"]["listeners"].append(
        {"port": 5201, "protocol": "TCP", "target_group": "perf-tg"})
    provider["target_groups"]["perf-tg"] = {"protocol": "TCP", "port": 5201, "targets": ["web1"]}
    return doc


def test_flows_survive_a_killed_forwarder(tmp_path) -> None:
    """iperf3 through the endpoint keeps going across `kill -9` of the forwarder: a
    pause while the supervisor starts a new one, which takes over the flow table from
    /run/vpclab/<lab>/flows, then the same connection carries on (no reset)."""
    name = lab_name("t13kf")
    try:
        vpclab("up", str(write_topology(tmp_path, perf_topology(name))), check=True, timeout=180)
        st = labmod.status(name)
        ep = st["hyperplane"]["endpoints"]["consumer/web-ep"]["enis"][0]["ip"]
        client = subprocess.Popen(
            CLI + ["exec", "-l", name, "consumer/client", "--", "iperf3", "-c", ep, "-p", "5201",
                   "-t", "8", "-b", "20M", "--connect-timeout", "3000", "-J"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)))
        try:
            deadline = time.monotonic() + 10
            flows = []
            while time.monotonic() < deadline and len(flows) < 2:     # control + data
                # iperf3's, not the NLB's health checks of port 5201 (short-lived flows
                # from the checker's address, which need not outlive the restart)
                flows = [f for f in control.call(st["hyperplane"]["socket"], "flows")["flows"]
                         if f["vip"][1] == 5201 and f["client"][0] != HEALTH_NS_IP]
                time.sleep(0.1)
            assert len(flows) == 2, flows
            time.sleep(2)
            old = record(name, "forwarder")
            os.kill(old["pid"], signal.SIGKILL)
            restarted(name, "forwarder", old["pid"])
            # The flows the new forwarder holds while iperf3 still runs: once it ends,
            # its closed flows go after the close timeout, sooner than a loaded VM's
            # `exec` returns.
            deadline, after = time.monotonic() + 10, None
            while after is None:
                try:
                    after = {(f["client"][0], f["client"][1]) for f in
                             control.call(st["hyperplane"]["socket"], "flows")["flows"]}
                except (control.ControlError, OSError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            out, err = client.communicate(timeout=40)
        finally:
            if client.poll() is None:
                client.kill()
        assert client.returncode == 0, (out[-2000:], err)
        result = json.loads(out)
        assert "error" not in result
        sent = result["end"]["sum_sent"]["bytes"]
        assert sent > 8 * 20e6 / 8 * 0.5        # most of 8 s at 20 Mbit/s got through
        log = open(f"/run/vpclab/{name}/forwarder.log").read()
        assert re.search(r"flow state .*: resumed [1-9]\d* flows", log), log[-2000:]
        assert {(f["client"][0], f["client"][1]) for f in flows} <= after
    finally:
        labmod.cleanup(name, everything=True)
