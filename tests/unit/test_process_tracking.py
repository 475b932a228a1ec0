"""Where a lab's processes are tracked when there is no cgroup v2: the fallback that
walks the process tree (psutil) still ends everything a recorded process started, even
a child that left its parent's process group; and how cgroup v2 is found in the mounts."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from dataplane.lab import processes
from netns_setup import cgroup, procs

HYBRID = """cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
UNIFIED = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n"
V1_ONLY = "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n"


@pytest.fixture
def mounts(tmp_path, monkeypatch):
    def use(text: str) -> None:
        path = tmp_path / "mounts"
        path.write_text(text)
        monkeypatch.setattr(cgroup, "MOUNTS_FILE", str(path))
    return use


@pytest.mark.parametrize("text, root", [(HYBRID, "/sys/fs/cgroup/unified"),
                                        (UNIFIED, "/sys/fs/cgroup"), (V1_ONLY, None)])
def test_v2_root_is_found_where_cgroup2_is_mounted(mounts, text, root):
    mounts(text)
    assert cgroup.v2_root() == root


def test_without_cgroup_v2_a_lab_tracks_its_process_tree_and_says_why(mounts):
    mounts(V1_ONLY)
    assert cgroup.create("vpclab.t13cgunit") is None
    t = processes.tracking("t13cgunit")
    assert t["mode"] == processes.PROCESS_TREE
    assert "no cgroup2 file system mounted" in t["reason"]


def _wait_for_children(pid: int) -> list[int]:
    """The shell's two sleeps, once one of them has left the shell's process group."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = procs.descendants(pid)
        try:
            if len(kids) == 2 and any(os.getpgid(k) != pid for k in kids):
                return kids
        except ProcessLookupError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not start its two children")


def test_fallback_ends_children_outside_the_recorded_process_group(mounts):
    mounts(V1_ONLY)
    # A recorded shell with two children: one in its process group, one that made its
    # own session (killpg of the shell's group misses it).
    shell = subprocess.Popen(["/bin/sh", "-c", "sleep 300 & setsid sleep 300 & wait"],
                             start_new_session=True)
    try:
        kids = _wait_for_children(shell.pid)
        recorded = [{"pid": shell.pid, "start": procs.start_time(shell.pid), "role": "run"}]
        gone, running = processes.end(recorded, [], None)
        assert running == []
        assert sorted(int(g.split()[1]) for g in gone) == sorted([shell.pid, *kids])
        assert not any(procs.alive(k, None) for k in kids)
    finally:
        for pid in [shell.pid, *procs.descendants(shell.pid)]:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        shell.wait(timeout=10)


def test_stop_signals_a_process_that_leads_no_group():
    shell = subprocess.Popen(["/bin/sh", "-c", "sleep 300 & echo $!; wait"],
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        child = int(shell.stdout.readline())
        assert os.getpgid(child) == shell.pid != child
        assert procs.stop(child, procs.start_time(child), grace=2)
        assert not procs.alive(child, None)
    finally:
        os.killpg(shell.pid, 9)
        shell.wait(timeout=10)
