"""Labs you can trust: down leaves nothing, a crash can be cleaned, bad input makes nothing.

Each test makes its own small lab (`lab_name("t3…")`, this run's name) and the
`teardown_labs` fixture removes it whatever happens. "Nothing left" is checked
everywhere a lab leaves traces: namespaces, links carrying its mark in the root
namespace, nftables tables, processes (by the PIDs it recorded), files under
/run/vpclab/.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time

import pytest
from pyroute2 import netns

from dataplane import lab as labmod
from dataplane.lab import processes
from dataplane.model import Lab, names
from dataplane.pytest_plugin import lab_name
from netns_setup import kernel, nft, procs

from .conftest import CLI, REPO, leftovers, serve, vpclab, write_topology

pytestmark = pytest.mark.root


def small(lab: str, n_vpcs: int = 1, run: str | None = None) -> dict:
    vpcs = {}
    for k in range(n_vpcs):
        inst = {"i1": {"subnet": "a"}, "i2": {"subnet": "b"}}
        if run:
            inst["i1"]["run"] = run
        vpcs[f"v{k}"] = {"cidr": "10.0.0.0/16",
                         "subnets": {"a": {"cidr": "10.0.1.0/24"}, "b": {"cidr": "10.0.2.0/24"}},
                         "instances": inst}
    return {"lab": lab, "vpcs": vpcs}


def root_snapshot() -> dict:
    with open("/etc/resolv.conf", "rb") as f:
        resolv = hashlib.sha256(f.read()).hexdigest()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    return {"resolv": resolv, "links": sorted(line.split(":")[1].strip()
                                              for line in links.splitlines()),
            "tables": tables, "routes": routes, "addrs": addrs}


def test_down_leaves_nothing(tmp_path, teardown_labs):
    lab = lab_name("t3down")
    teardown_labs.append(lab)
    before = root_snapshot()
    path = write_topology(tmp_path, small(lab, 2, run=serve("x", 8080)))
    up = vpclab("up", str(path))
    assert up.returncode == 0, up.stderr
    state = json.loads(vpclab("status", lab, "--json", check=True).stdout)
    pids = [p["pid"] for p in state["processes"]]
    assert len(pids) == 5                                   # 2 dnsmasq + 2 run: + supervisor
    assert all(procs.alive(p, None) for p in pids)
    assert nft.list_tables(f"{lab}.v0") == [f"inet {lab}-sg"]
    assert len(leftovers(lab)) == 6 + 2                     # 6 namespaces, directory, cgroup
    path.unlink()                                           # down needs only the state
    down = vpclab("down", lab)
    assert down.returncode == 0, down.stderr
    assert f"lab {lab} is down" in down.stdout
    assert leftovers(lab) == []
    assert not any(procs.alive(p, None) for p in pids)
    assert root_snapshot() == before
    assert vpclab("down", lab).returncode == 1              # nothing left to take down


def start_up(path, **popen_args) -> subprocess.Popen:
    """`vpclab up -q FILE` as a child process, to be interrupted."""
    return subprocess.Popen(CLI + ["up", "-q", str(path)], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), **popen_args)


def state_with_processes(lab: str, n: int, seconds: float = 60) -> dict | None:
    """The lab's state file once it records `n` processes (read as often as it can be:
    `up` is to be caught half-way), or the last one read after `seconds`."""
    state_path = os.path.join(names.lab_dir(lab), "state.json")
    deadline = time.monotonic() + seconds
    state = None
    while time.monotonic() < deadline:
        try:
            with open(state_path) as f:
                state = json.load(f)
        except (OSError, ValueError):
            state = None
        if state and len(state["processes"]) >= n:
            break
        time.sleep(0.002)
    return state


def test_kill_9_during_up_then_cleanup_leaves_nothing(tmp_path, teardown_labs):
    lab = lab_name("t3kill")
    teardown_labs.append(lab)
    path = write_topology(tmp_path, small(lab, 8, run="sleep 600"))
    up = start_up(path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = None
    try:
        # Kill it once the first VPC is done (its processes started), well before the end.
        state = state_with_processes(lab, 2)
        up.kill()
    finally:
        up.wait(timeout=30)
    assert state is not None and state["status"] == "building"
    pids = [p["pid"] for p in state["processes"]]
    assert leftovers(lab), "a killed up must leave something for this test to mean anything"
    assert any(procs.alive(p, None) for p in pids)

    # Another up refuses, and says what to do.
    again = vpclab("up", str(path))
    assert again.returncode == 1 and "vpclab cleanup" in again.stderr

    # Named: a bare `cleanup` would also take other crashed labs on a shared machine.
    clean = vpclab("cleanup", "-l", lab)
    assert clean.returncode == 0, clean.stderr
    assert f"lab {lab}: removed" in clean.stdout
    assert leftovers(lab) == []
    assert not any(procs.alive(p, None) for p in pids)
    assert vpclab("cleanup", "-l", lab).stdout.strip() == "nothing to clean up"

    # And the lab can be made again afterwards.
    assert vpclab("up", str(path)).returncode == 0
    assert vpclab("down", lab).returncode == 0
    assert leftovers(lab) == []


def test_bad_file_creates_nothing_and_names_the_field(tmp_path, teardown_labs):
    lab = lab_name("t3bad")
    teardown_labs.append(lab)
    doc = small(lab, 2)
    doc["vpcs"]["v1"]["subnets"]["b"]["cidr"] = "10.1.2.0/24"
    path = write_topology(tmp_path, doc)
    proc = vpclab("up", str(path))
    assert proc.returncode == 2
    assert "vpcs.v1.subnets.b.cidr: 10.1.2.0/24 is outside the VPC CIDR 10.0.0.0/16" in proc.stderr
    assert leftovers(lab) == []
    assert vpclab("validate", str(path)).returncode == 2


def test_failure_half_way_rolls_back_and_names_the_step(monkeypatch, teardown_labs):
    name = lab_name("t3rb")
    teardown_labs.append(name)
    lab = Lab.from_dict(small(name, 3, run="sleep 600"))
    real_apply = nft.apply
    started = []
    v0_started = threading.Event()

    def failing_apply(ns, script):
        if ns == f"{name}.v1":
            # VPCs are made side by side: fail once v0 has started its processes
            assert v0_started.wait(60)
            raise RuntimeError("injected nft failure")
        real_apply(ns, script)
    monkeypatch.setattr(nft, "apply", failing_apply)
    real_start = processes.start

    def recording_start(*a, **kw):
        pid = real_start(*a, **kw)
        started.append(pid)
        if sum(r["vpc"] == "v0" and r["role"] in ("dns", "run")
               for r in a[0].data["processes"]) == 2:
            v0_started.set()
        return pid
    monkeypatch.setattr(processes, "start", recording_start)
    open_before = kernel.counters()["open"]
    with pytest.raises(labmod.LabError) as e:
        labmod.up(lab, progress=False)
    msg = str(e.value)
    assert f"failed during: security groups in {name}.v1" in msg
    assert "injected nft failure" in msg and "everything it made was removed" in msg
    assert len(started) >= 2                      # v0's dnsmasq and run: had started
    assert not any(procs.alive(p, None) for p in started)
    assert kernel.counters()["open"] == open_before   # every lane's connections closed
    assert leftovers(name) == []


def test_cleanup_never_touches_what_it_did_not_make(tmp_path, teardown_labs):
    lab = lab_name("t3own")
    teardown_labs.append(lab)
    foreign = f"{lab}.v0"                 # a name the lab would use, made by someone else
    netns.create(foreign)
    try:
        path = write_topology(tmp_path, small(lab, 1))
        proc = vpclab("up", str(path))
        assert proc.returncode == 1
        assert f"{foreign} already exist" in proc.stderr and "nothing was created" in proc.stderr
        assert not os.path.exists(names.lab_dir(lab))
        # this lab's cleanup only: a bare `cleanup` (and `--all` even more) would take
        # the leftovers of every other test run and benchmark on the machine
        assert vpclab("cleanup", lab).returncode == 0
        assert kernel.netns_exists(foreign)
    finally:
        kernel.remove_netns(foreign)
    assert leftovers(lab) == []


def test_marked_namespace_without_state_is_found_by_its_mark(teardown_labs):
    lab = lab_name("t3mark")
    teardown_labs.append(lab)
    ns = f"{lab}.v0"
    kernel.ensure_netns(ns, names.lo_altname(lab))     # as a crashed up would leave it
    assert not os.path.exists(names.lab_dir(lab))
    # named, not bare: a bare `cleanup` would take other runs' crashed labs too; with no
    # state to read, the lab's namespace is found by its mark alone
    out = vpclab("cleanup", "-l", lab)
    assert out.returncode == 0 and f"namespace {ns}" in out.stdout
    assert not kernel.netns_exists(ns)


def test_sigterm_during_up_rolls_back(tmp_path, teardown_labs):
    lab = lab_name("t3term")
    teardown_labs.append(lab)
    path = write_topology(tmp_path, small(lab, 8, run="sleep 600"))
    up = start_up(path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        state = state_with_processes(lab, 2)
        pids = [p["pid"] for p in state["processes"]] if state else []
        up.terminate()
        out, err = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode == 1, err
    assert "interrupted during" in err and "everything it made was removed" in err
    assert leftovers(lab) == []
    assert not any(procs.alive(p, None) for p in pids)
