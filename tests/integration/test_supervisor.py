"""The lab's supervisor and the truth of `status` (issue 13, part 2): a killed forwarder or
resolver is back within about a second and counted, a process that keeps dying is given
up on, a lab with a component down is `degraded` (exit 1) naming it, and `vpclab up`
repairs it in place. The lab is named `t13sup` and is removed whatever happens.
"""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from dataplane import lab as labmod
from dataplane.lab.supervisor import MAX_RESTARTS
from netns_setup import procs

from .conftest import REPO, leftovers, vpclab

EXAMPLE = REPO / "examples" / "privatelink.yaml"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    name = "t13sup"
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
