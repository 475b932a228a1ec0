"""Nothing a lab started survives `down`, and `down` says only what it saw gone.

Every process vpclab starts or enters for a lab is in the lab's cgroup (`vpclab.<lab>`
in the cgroup v2 hierarchy): processes that lead no process group — a `vpclab exec … &`,
a `run:` server whose shell exited, one that left the lab's namespaces — are ended with
the rest, also by `cleanup` after a `kill -9` of `up`. A `run:` command starts in its own
directory. Labs here are named `lab_name("t13cg…")`.
"""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from dataplane.model import names
from dataplane.pytest_plugin import lab_name
from netns_setup import cgroup, procs

from .conftest import CLI, REPO, leftovers, run_in, vpclab, write_topology

pytestmark = pytest.mark.root


def one_vpc(lab: str, run: str | None = None, n_vpcs: int = 1) -> dict:
    vpcs = {}
    for k in range(n_vpcs):
        inst: dict = {"i1": {"subnet": "a"}, "i2": {"subnet": "a"}}
        if run and k == 0:
            inst["i1"]["run"] = run
        vpcs[f"v{k}"] = {"cidr": "10.0.0.0/16", "subnets": {"a": {"cidr": "10.0.1.0/24"}},
                         "instances": inst}
    return {"lab": lab, "vpcs": vpcs}


def wait_for_file(path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and (text := open(path).read()).endswith("\n"):
            return text
        time.sleep(0.01)
    raise AssertionError(f"{path} was not written")


def up(tmp_path, teardown_labs: list[str], lab: str, run: str | None = None) -> None:
    teardown_labs.append(lab)
    made = vpclab("up", str(write_topology(tmp_path, one_vpc(lab, run=run))))
    assert made.returncode == 0, made.stderr


def down_ends(lab: str, *pids: int) -> str:
    """`vpclab down lab`: it succeeds, reports each of `pids` as stopped, they are gone
    and so is everything else of the lab. Returns its output."""
    down = vpclab("down", lab)
    assert down.returncode == 0, down.stderr
    reported = [int(line.split()[1]) for line in down.stdout.splitlines()
                if line.startswith("  process ")]
    assert set(pids) <= set(reported)
    assert not any(procs.alive(p, None) for p in pids)
    assert leftovers(lab) == []
    return down.stdout


def test_exec_background_process_is_ended_by_down_and_counted(tmp_path, teardown_labs):
    lab = lab_name("t13cgex")
    up(tmp_path, teardown_labs, lab)
    ex = run_in(lab, "v0/i1", "sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!")
    assert ex.returncode == 0, ex.stderr
    orphan = int(ex.stdout)
    assert procs.alive(orphan, None) and os.getpgid(orphan) != orphan  # leads no group
    dns = [p["pid"] for p in json.loads(vpclab("status", lab, "--json").stdout)["processes"]]
    out = down_ends(lab, *dns, orphan)
    assert f"stopped {len(dns) + 1} processes" in out


def test_run_child_whose_shell_exited_is_ended_by_down(tmp_path, teardown_labs):
    lab = lab_name("t13cgrun")
    pidfile = tmp_path / "child.pid"
    up(tmp_path, teardown_labs, lab, run=f"sleep 300 & echo $! > {pidfile}")
    child = int(wait_for_file(pidfile))
    state = json.loads(vpclab("status", lab, "--json").stdout)
    shell = next(p for p in state["processes"] if p["role"] == "run")
    deadline = time.monotonic() + 10
    while procs.alive(shell["pid"], None) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not procs.alive(shell["pid"], None) and procs.alive(child, None)
    down_ends(lab, child)


def test_run_starts_in_its_own_directory_and_status_names_the_cgroup(tmp_path, teardown_labs):
    lab = lab_name("t13cgcwd")
    out = tmp_path / "cwd"
    up(tmp_path, teardown_labs, lab, run=f"pwd > {out}; exec sleep 300")
    own = os.path.join(names.lab_dir(lab), "v0.i1")
    assert wait_for_file(out).strip() == own
    assert os.path.isdir(own)

    group = os.path.join(cgroup.v2_root(), names.cgroup_name(lab))
    st = vpclab("status", lab)
    assert st.returncode == 0, st.stdout
    assert f"processes tracked by: cgroup v2 {group} ok; 4 processes, CPU " in st.stdout
    tracking = json.loads(vpclab("status", lab, "--json").stdout)["tracking"]
    assert tracking["mode"] == "cgroup v2" and tracking["path"] == group
    # dnsmasq, sleep and the shell that records its exit code, the supervisor
    assert tracking["cpu_usec"] > 0 and tracking["processes"] == 4
    assert vpclab("down", lab).returncode == 0
    assert not os.path.exists(own) and not os.path.exists(group)


def test_kill_9_during_up_then_cleanup_leaves_no_process_and_no_cgroup(tmp_path,
                                                                        teardown_labs):
    lab = lab_name("t13cgk9")
    teardown_labs.append(lab)
    # The first VPC's `run:` leaves a child in its namespace and one in the host's
    # network namespace, this test's (outside every lab namespace: only the cgroup
    # knows it).
    run = f"sleep 300 & nsenter --net=/proc/{os.getpid()}/ns/net sleep 300 & exit 0"
    path = write_topology(tmp_path, one_vpc(lab, run=run, n_vpcs=8))
    group = os.path.join(cgroup.v2_root(), names.cgroup_name(lab))
    state_path = os.path.join(names.lab_dir(lab), "state.json")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    up = subprocess.Popen(CLI + ["up", "-q", str(path)], env=env, cwd=REPO,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    members: list[int] = []
    deadline = time.monotonic() + 60
    try:
        # Kill it once the run: has left its two children (dnsmasq is the third).
        while time.monotonic() < deadline:
            members = cgroup.pids(group) if os.path.isdir(group) else []
            if sum(procs.comm(p) == "sleep" for p in members) == 2:
                break
            time.sleep(0.002)
        up.kill()
    finally:
        up.wait(timeout=30)
    with open(state_path) as f:
        assert json.load(f)["status"] == "building"
    members = cgroup.pids(group)
    assert sum(procs.comm(p) == "sleep" for p in members) == 2
    assert all(procs.alive(p, None) for p in members)

    clean = vpclab("cleanup", "-l", lab)       # never bare: other runs' labs are not ours
    assert clean.returncode == 0, clean.stderr
    assert f"lab {lab}: removed" in clean.stdout and f"cgroup {group}" in clean.stdout
    assert not any(procs.alive(p, None) for p in members)
    assert not os.path.exists(group)
    assert leftovers(lab) == []


def test_cleanup_removes_an_orphaned_cgroup(teardown_labs):
    lab = lab_name("t13cgorp")
    teardown_labs.append(lab)
    group = cgroup.create(names.cgroup_name(lab))
    assert group is not None
    sleeper = subprocess.Popen(["sleep", "300"], preexec_fn=lambda: cgroup.join(group))
    try:
        clean = vpclab("cleanup", "-l", lab)   # the cgroup alone names the lab
        assert clean.returncode == 0, clean.stderr
        assert f"process {sleeper.pid} (sleep, in the lab's cgroup)" in clean.stdout
        assert sleeper.wait(timeout=10) == -9
        assert not os.path.exists(group)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
