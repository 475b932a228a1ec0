"""netns_setup/scratch.py on its own: a scratch topology is made as asked (checked with
pyroute2's own namespace sockets, not the builder's), nothing of it appears in the root
namespace, and everything — namespaces, links, processes inside — is gone afterwards,
also when the block using it raises or the building itself fails halfway."""
from __future__ import annotations

import os
import subprocess
import time

import pytest
from pyroute2 import NetNS

from netns_setup import kernel
from netns_setup.procs import pids_in_netns
from netns_setup.scratch import Scratch, ScratchError, mark_of, remove_runs

pytestmark = pytest.mark.root
ROOT = f"tsc-{os.getpid()}-"   # this test run's own root: remove_runs() leaves others' alone
DEAD_PID = 5_000_000          # above PID_MAX_LIMIT (2^22): no process can have it


def root_links() -> list[str]:
    return sorted(subprocess.run(["ip", "-o", "link"], capture_output=True,
                                 text=True).stdout.splitlines())


def mine() -> list[str]:
    return [n for n in kernel.list_netns() if n.startswith(ROOT)]


@pytest.fixture(autouse=True)
def nothing_left():
    assert mine() == [], "a previous run of this test left namespaces"
    before = root_links()
    try:
        yield
    finally:
        for name in mine():            # only if the code under test failed to
            kernel.remove_netns(name)
    assert root_links() == before


def build(s: Scratch) -> subprocess.Popen:
    a, b = s.namespace("a"), s.namespace("b")
    s.veth(a, "left", b, "right", mtu=9001)
    s.address(a, "left", "10.7.0.1", 24)
    s.address(b, "right", "10.7.0.2", 24)
    s.route(a, "0.0.0.0/0", gateway="10.7.0.2")
    s.neighbour(a, "left", "10.7.0.2", "02:00:00:00:07:02")
    sleeper = subprocess.Popen(["nsenter", f"--net=/run/netns/{b}", "sleep", "60"])
    inode, deadline = kernel.netns_inode(b), time.monotonic() + 5
    while sleeper.pid not in pids_in_netns(inode):     # nsenter has entered it
        assert time.monotonic() < deadline and sleeper.poll() is None
        time.sleep(0.01)
    return sleeper


def links(ns: str) -> dict[str, dict]:
    with NetNS(ns) as ipr:
        return {link.get("ifname"): link for link in ipr.get_links()}


def test_builds_inside_its_namespaces_and_removes_everything():
    with Scratch(ROOT) as s:
        sleeper = build(s)
        a, b = s.name("a"), s.name("b")
        assert (a, b) == (f"{s.prefix}a", f"{s.prefix}b") and s.prefix.startswith(ROOT)
        assert sorted(mine()) == [a, b]
        left, right = links(a)["left"], links(b)["right"]
        for link, ns, ifname in ((left, a, "left"), (right, b, "right")):
            assert link.get("mtu") == 9001 and link.get("flags") & 1, ifname   # IFF_UP
            assert kernel.altnames(link) == [mark_of(ns, ifname)]
        assert kernel.altnames(links(a)["lo"]) == [mark_of(a)]
        with NetNS(a) as ipr:
            assert [x.get("address") for x in ipr.get_addr(family=2)
                    if x.get("label") == "left"] == ["10.7.0.1"]
            assert [r.get("gateway") for r in ipr.get_routes(family=2, table=254)
                    if r["dst_len"] == 0] == ["10.7.0.2"]
            assert [(n.get("lladdr"), n["state"]) for n in ipr.get_neighbours(family=2)
                    if n.get("dst") == "10.7.0.2"] == [("02:00:00:00:07:02", 0x80)]
        assert sleeper.poll() is None
    assert mine() == []
    assert sleeper.wait(timeout=10) == -9      # ended by PID before its namespace went


def test_removes_everything_when_the_body_raises():
    with pytest.raises(ZeroDivisionError):
        with Scratch(ROOT) as s:
            sleeper = build(s)
            assert len(mine()) == 2
            1 / 0
    assert mine() == []
    assert sleeper.wait(timeout=10) == -9


def test_a_failed_build_undoes_what_it_made_and_names_the_problem():
    s = Scratch(ROOT)
    with pytest.raises(kernel.KernelError, match=f"no link nope in namespace {ROOT}"):
        with s.undone_on_failure():
            a = s.namespace("a")
            s.namespace("b")
            assert len(mine()) == 2
            s.address(a, "nope", "10.7.0.1", 24)
    assert mine() == [] and s.namespaces == []


def test_refuses_foreign_namespaces_and_long_interface_names():
    with Scratch(ROOT) as s:
        a = s.namespace("a")
        with pytest.raises(ScratchError, match="'not-mine' was not made by this scratch"):
            s.address("not-mine", "eth0", "10.7.0.1", 24)
        with pytest.raises(ScratchError, match="'sixteen-bytes-xx' must be 1 to 15 bytes"):
            s.veth(a, "sixteen-bytes-xx", a, "x")
        with pytest.raises(ScratchError, match="must be a non-empty name prefix"):
            Scratch("")
    assert mine() == []


def test_remove_runs_takes_a_dead_runs_namespaces_and_leaves_a_live_ones():
    dead = Scratch(ROOT, pid=DEAD_PID)
    with Scratch(ROOT) as live:
        dead.namespace("x")
        live.namespace("x")
        assert remove_runs((ROOT,), only_dead=True) == [dead.name("x")]
        assert mine() == [live.name("x")]
        assert remove_runs((ROOT,)) == [live.name("x")]
    assert mine() == []
