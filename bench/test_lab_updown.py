"""Time of `up` and `down` against the number of VPCs (each: two subnets, two instances).

Each size is brought up and taken down `REPEATS` times (5; set `REPEATS` in the
environment for another count) and the table shows medians, with the spread (min–max) as the
noise: other work on this 2-core VM moves wall time a lot. CPU time — of this process
and its children (`nft`), plus the lab's cgroup (dnsmasq, which `up` starts and never
waits for) — moves much less, so both are shown. Each VPC costs three namespaces, two
veths, about fifty rtnetlink requests, an nft transaction and a dnsmasq start, so every
column should grow linearly; the table says how far each median is from a least-squares
line through all of them (1.00 = on the line).

The issue's goal, for a 50-VPC, 100-instance lab: up in ≤ 15 s and down in ≤ 3 s, which
the table gives as ratios (below 1.00: met), and against Mininet's published 25.8 s to
start a 100-switch torus (a lab of that order of objects). It asserts only that everything
was made and everything went away (no timed assertions: this machine's speed is not a
property of vpclab).

    .venv/bin/python -m pytest bench/test_lab_updown.py -s -q        (as root)
"""
from __future__ import annotations

import os
import resource
import statistics
import time

import pytest

from dataplane import lab as labmod
from dataplane.lab import processes
from dataplane.model import Lab
from dataplane.pytest_plugin import lab_name
from netns_setup import cgroup, kernel

pytestmark = pytest.mark.root
SIZES = (1, 10, 25, 50)
REPEATS = int(os.environ.get("REPEATS", "5"))
GOAL_VPCS, GOAL_UP_S, GOAL_DOWN_S = 50, 15.0, 3.0
MININET_TORUS_S = 25.8       # Mininet: start of a 100-switch torus (its published figure)
COLUMNS = ("up s", "up CPU s", "down s", "down CPU s")
RESULTS: dict[int, list[tuple[float, float, float, float]]] = {}


def build(n: int) -> Lab:
    lab = Lab(lab_name(f"t3b{n}"))
    for k in range(n):
        vpc = lab.add_vpc(f"v{k}", "10.0.0.0/16")
        vpc.add_subnet("a", "10.0.1.0/24", az="us-east-1a")
        vpc.add_subnet("b", "10.0.2.0/24", az="us-east-1b")
        vpc.add_instance("i1", "a")
        vpc.add_instance("i2", "b")
    return lab.check()


def cpu_s() -> float:
    """CPU time of this process and of its children that were waited for."""
    me, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                    resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def lab_cpu_s(st: labmod.State) -> float:
    """CPU time of the processes in the lab's cgroup so far (0 without one)."""
    path = processes.cgroup_path(st)
    usec = cgroup.usage(path)["cpu_usec"] if path else None
    return (usec or 0) / 1e6


def up_down(lab: Lab) -> tuple[float, float, float, float]:
    """(up s, up CPU s, down s, down CPU s) of one round; checks what was made and removed."""
    try:
        c0, t0 = cpu_s(), time.perf_counter()
        st, created = labmod.up(lab, progress=False)
        t1, c1 = time.perf_counter(), cpu_s() + lab_cpu_s(st)
        assert created and sum(kernel.netns_exists(ns) for ns in st.data["namespaces"]) \
            == 3 * len(lab.vpcs)
        assert sum(p["role"] == "dns" for p in st.data["processes"]) == len(lab.vpcs)
        c1b = cpu_s()
        labmod.down(lab.name)
        t2, c2 = time.perf_counter(), cpu_s()
    finally:
        labmod.cleanup(lab.name, everything=True)
    assert not any(ns.startswith(lab.name + ".") for ns in kernel.list_netns())
    return t1 - t0, c1 - c0, t2 - t1, c2 - c1b


def linear_fit(points: dict[int, float]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through {size: value}."""
    xs, ys = list(points), list(points.values())
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def report() -> list[str]:
    medians = {n: [statistics.median(col) for col in zip(*runs)] for n, runs in RESULTS.items()}
    fits = [linear_fit({n: m[c] for n, m in medians.items()}) for c in range(len(COLUMNS))]
    out = [f"vpclab up/down, medians of {REPEATS} (min–max); each VPC: 2 subnets, "
           f"2 instances, 3 namespaces",
           f"{'VPCs':>5} " + " ".join(f"{c:>20}" for c in COLUMNS)
           + "   median / linear fit (up, up CPU, down, down CPU)"]
    for n, runs in sorted(RESULTS.items()):
        cells = []
        for c in range(len(COLUMNS)):
            col = [r[c] for r in runs]
            cells.append(f"{medians[n][c]:7.2f} ({min(col):5.2f}–{max(col):5.2f})")
        # a line below zero at this size (a negative intercept) has no ratio
        ratios = [f"{medians[n][c] / (a + b * n):5.2f}" if a + b * n > 0 else "    -"
                  for c, (a, b) in enumerate(fits)]
        out.append(f"{n:>5} " + " ".join(f"{x:>20}" for x in cells) + "   "
                   + " ".join(ratios))
    out.append("per VPC (slope of the fit): " + ", ".join(
        f"{name} {1000 * b:.0f} ms" for name, (_, b) in zip(COLUMNS, fits)))
    if GOAL_VPCS in medians:
        up, up_cpu, down, _ = medians[GOAL_VPCS]
        out.append(f"{GOAL_VPCS} VPCs / 100 instances: up {up:.2f} s = {up / GOAL_UP_S:.2f} "
                   f"× the goal's {GOAL_UP_S:.0f} s (CPU {up_cpu:.2f} s = "
                   f"{up_cpu / GOAL_UP_S:.2f} ×), down {down:.2f} s = "
                   f"{down / GOAL_DOWN_S:.2f} × the goal's {GOAL_DOWN_S:.0f} s; "
                   f"up = {up / MININET_TORUS_S:.2f} × Mininet's {MININET_TORUS_S} s "
                   f"(100-switch torus)")
    return out


@pytest.mark.parametrize("n", SIZES)
def test_up_down_time(n):
    if os.geteuid() != 0:
        pytest.fail("needs root")
    RESULTS[n] = [up_down(build(n)) for _ in range(REPEATS)]
    if n == SIZES[-1]:
        print("\n\n" + "\n".join(report()))
