"""What makes `up` fast, checked for what it must not cost: namespaces made without a
fork, one rtnetlink connection per namespace for the whole `up`, every connection closed
when `up` ends (a socket left open would keep a removed namespace alive), and VPCs made
side by side still rolled back whole when one of them fails. The timings are
bench/test_lab_updown.py's."""
from __future__ import annotations

import os
import subprocess
import threading

import pytest

from dataplane import lab as labmod
from dataplane.lab import processes
from dataplane.model import Lab
from netns_setup import kernel, nft, nsenter, procs

from .conftest import leftovers
from .test_lab_lifecycle import small

pytestmark = pytest.mark.root


def test_new_netns_is_what_ip_netns_sees_and_refuses_a_taken_name():
    name = "tsp-new"
    try:
        nsenter.new_netns(name)
        assert name in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                      text=True).stdout.split()
        # a namespace of its own: not this process's
        assert kernel.netns_inode(name) != os.stat("/proc/self/ns/net").st_ino
        assert os.stat("/proc/thread-self/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
        inode = kernel.netns_inode(name)
        with pytest.raises(FileExistsError):
            nsenter.new_netns(name)
        assert kernel.netns_inode(name) == inode            # the first one is untouched
    finally:
        kernel.remove_netns(name)
    assert not kernel.netns_exists(name)


def test_up_forks_no_helper_and_holds_one_connection_per_namespace(monkeypatch,
                                                                   teardown_labs):
    lab = Lab.from_dict(small("tsp1", 3, run="sleep 600"))
    teardown_labs.append(lab.name)
    forks: list[int] = []
    real_fork = os.fork

    def counting_fork() -> int:
        forks.append(1)
        return real_fork()
    monkeypatch.setattr(os, "fork", counting_fork)
    before = kernel.counters()
    st, created = labmod.up(lab, progress=False)
    after = kernel.counters()
    assert created and len(st.data["namespaces"]) == 9
    assert forks == []                  # no helper process (pyroute2's netns.create forks one)
    assert after["connections"] - before["connections"] == 9      # one per namespace
    assert after["open"] == before["open"]                        # all closed again
    assert kernel.open_connections() == []
    labmod.down(lab.name)
    assert kernel.counters()["open"] == before["open"]
    assert leftovers(lab.name) == []


def test_a_failing_vpc_rolls_back_the_vpcs_made_beside_it(monkeypatch, teardown_labs):
    lab = Lab.from_dict(small("tsp2", 4, run="sleep 600"))
    teardown_labs.append(lab.name)
    started: list[int] = []
    others_started = threading.Event()
    real_start, real_apply = processes.start, nft.apply

    def recording_start(*a, **kw):
        pid = real_start(*a, **kw)
        started.append(pid)
        if len(started) >= 2:
            others_started.set()
        return pid

    def failing_apply(ns, script):
        if ns == "tsp2.v2":
            # fail only once other VPCs have started processes, so that the rollback
            # has something made beside the failing VPC to remove
            assert others_started.wait(60)
            raise RuntimeError("injected nft failure")
        real_apply(ns, script)
    monkeypatch.setattr(processes, "start", recording_start)
    monkeypatch.setattr(nft, "apply", failing_apply)
    before = kernel.counters()
    with pytest.raises(labmod.LabError) as e:
        labmod.up(lab, progress=False)
    msg = str(e.value)
    assert "failed during: security groups in tsp2.v2" in msg
    assert "injected nft failure" in msg and "everything it made was removed" in msg
    assert len(started) >= 2
    assert not any(procs.alive(p, None) for p in started)
    assert kernel.counters()["open"] == before["open"]    # closed before the rollback
    assert leftovers(lab.name) == []
