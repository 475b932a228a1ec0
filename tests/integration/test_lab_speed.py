"""What makes `up` fast, checked for what it must not cost: namespaces made without a
fork, one rtnetlink connection per namespace for the whole `up`, every connection closed
when `up` ends (a socket left open would keep a removed namespace alive); and an
`ensure_*` whose object exists otherwise says so at once. VPCs made side by side are
rolled back whole when one of them fails: test_lab_lifecycle.py. The timings are
bench/test_lab_updown.py's."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from dataplane import lab as labmod
from dataplane.model import Lab, names
from dataplane.pytest_plugin import lab_name
from netns_setup import kernel, nsenter

from .conftest import leftovers
from .test_lab_lifecycle import small

pytestmark = pytest.mark.root


def test_new_netns_is_what_ip_netns_sees_and_refuses_a_taken_name():
    name = f"{lab_name('tsp')}.new"             # a name this run's sweep would find
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
    lab = Lab.from_dict(small(lab_name("tsp1"), 3, run="sleep 600"))
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


def test_an_address_or_route_that_conflicts_is_named_at_once():
    lab = lab_name("tsp")
    ns = f"{lab}.conflict"
    try:
        kernel.ensure_netns(ns, names.lo_altname(lab))
        assert kernel.ensure_address(ns, "lo", "10.9.0.1", 24) is True
        assert kernel.ensure_route(ns, "10.8.0.0/16", gateway="10.9.0.2") is True
        assert kernel.ensure_route(ns, "10.8.0.0/16", gateway="10.9.0.2") is False
        t0 = time.monotonic()
        with pytest.raises(kernel.KernelError,
                           match=f"route 10.8.0.0/16 in {ns} exists with another "
                                 "next hop than via 10.9.0.3"):
            kernel.ensure_route(ns, "10.8.0.0/16", gateway="10.9.0.3")
        assert time.monotonic() - t0 < kernel.WAIT_S     # named, not waited for
    finally:
        kernel.remove_netns(ns)
