"""netns_setup on its own: each ensure_* is idempotent and leaves the root namespace alone."""
from __future__ import annotations

import subprocess

import pytest

from netns_setup import kernel, nsenter

pytestmark = pytest.mark.root
A, B = "t3ns.vpc", "t3ns.vpc.i1"


@pytest.fixture
def two_namespaces():
    try:
        yield
    finally:
        for n in (B, A):
            kernel.remove_netns(n)
    assert not kernel.netns_exists(A) and not kernel.netns_exists(B)


def root_links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def test_ensure_functions_are_idempotent_and_marked(two_namespaces):
    before = root_links()
    assert kernel.ensure_netns(A, "vpclab.t3ns.lo") is True
    assert kernel.ensure_netns(A, "vpclab.t3ns.lo") is False
    assert kernel.ensure_netns(B, "vpclab.t3ns.lo") is True
    assert kernel.netns_mark(A) == ["vpclab.t3ns.lo"]
    args = (A, "eni-i1", "vpclab.t3ns.vpc.i1.eni", B, "eth0", "vpclab.t3ns.vpc.i1.eth0", 9001)
    assert kernel.ensure_veth(*args) is True
    assert kernel.ensure_veth(*args) is False
    assert kernel.ensure_address(B, "eth0", "10.0.1.4", 24) is True
    assert kernel.ensure_address(B, "eth0", "10.0.1.4", 24) is False
    assert kernel.ensure_route(B, "0.0.0.0/0", gateway="10.0.1.1") is True
    assert kernel.ensure_route(B, "0.0.0.0/0", gateway="10.0.1.1") is False
    assert kernel.ensure_address(A, "eni-i1", "10.0.1.1", 32) is True
    assert kernel.ensure_route(A, "10.0.1.4/32", ifname="eni-i1") is True
    assert kernel.ensure_route(A, "10.0.1.4/32", ifname="eni-i1") is False
    marks = kernel.marked_links(A, "vpclab.t3ns.")
    assert [(m[1], m[2]) for m in marks] == [("lo", ["vpclab.t3ns.lo"]),
                                            ("eni-i1", ["vpclab.t3ns.vpc.i1.eni"])]
    # both ends up, MTU 9001 on both (pyroute2 sets the peer's separately)
    for ns, ifname in ((A, "eni-i1"), (B, "eth0")):
        out = subprocess.run(["ip", "-n", ns, "-o", "link", "show", ifname],
                             capture_output=True, text=True).stdout
        assert "mtu 9001" in out and "LOWER_UP" in out
    assert root_links() == before                     # nothing ever appeared in root
    assert kernel.marked_links(None, "vpclab.t3ns.") == []


def test_sysctls_are_per_namespace(two_namespaces):
    kernel.ensure_netns(A, "vpclab.t3ns.lo")
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        root = f.read().strip()
    nsenter.write_sysctls(A, {"net.ipv4.ip_forward": 1 if root == "0" else 0})
    assert nsenter.read_sysctl(A, "net.ipv4.ip_forward") != root
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read().strip() == root
    with pytest.raises(RuntimeError, match="in namespace t3ns.vpc"):
        nsenter.write_sysctls(A, {"net.ipv4.no_such_sysctl": 1})
