"""Time of `up` and `down` against the number of VPCs (each: two subnets, two instances).

Prints a table; asserts only that everything was made and everything went away (no
timed assertions: this machine's speed is not a property of vpclab). Each VPC costs
three namespaces, two veths, a dozen netlink requests, an nft transaction and a
dnsmasq start, so both columns should grow linearly.

    .venv/bin/python -m pytest bench/test_lab_updown.py -s -q        (as root)
"""
from __future__ import annotations

import os
import time

import pytest

from dataplane import lab as labmod
from dataplane.model import Lab
from netns_setup import kernel

pytestmark = pytest.mark.root
SIZES = (1, 10, 50)
RESULTS: dict[int, tuple[float, float]] = {}


def build(n: int) -> Lab:
    lab = Lab(f"t3b{n}")
    for k in range(n):
        vpc = lab.add_vpc(f"v{k}", "10.0.0.0/16")
        vpc.add_subnet("a", "10.0.1.0/24", az="us-east-1a")
        vpc.add_subnet("b", "10.0.2.0/24", az="us-east-1b")
        vpc.add_instance("i1", "a")
        vpc.add_instance("i2", "b")
    return lab.check()


@pytest.mark.parametrize("n", SIZES)
def test_up_down_time(n):
    if os.geteuid() != 0:
        pytest.fail("needs root")
    lab = build(n)
    try:
        t0 = time.perf_counter()
        st, created = labmod.up(lab, progress=False)
        t1 = time.perf_counter()
        assert created and sum(kernel.netns_exists(ns) for ns in st.data["namespaces"]) == 3 * n
        labmod.down(lab.name)
        t2 = time.perf_counter()
    finally:
        labmod.cleanup(lab.name, everything=True)
    assert not any(ns.startswith(lab.name + ".") for ns in kernel.list_netns())
    RESULTS[n] = (t1 - t0, t2 - t1)
    if n == SIZES[-1]:
        print("\n\nvpclab up/down (each VPC: 2 subnets, 2 instances, 3 namespaces)")
        print(f"{'VPCs':>5} {'namespaces':>11} {'up s':>8} {'down s':>8} {'up ms/VPC':>10} "
              f"{'down ms/VPC':>12}")
        for k, (u, d) in sorted(RESULTS.items()):
            print(f"{k:>5} {3 * k:>11} {u:>8.2f} {d:>8.2f} {1000 * u / k:>10.1f} "
                  f"{1000 * d / k:>12.1f}")
