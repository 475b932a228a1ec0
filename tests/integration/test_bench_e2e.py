"""The end-to-end benchmark (bench/e2e) in its quick mode, as a smoke test: one short run
of every figure on every path (the VPC-link paths: packets per second and new flows), a
results.json with a positive number for each and the ratios of each kind, a report and
its plots, and nothing of the run's `vb-<pid>-` namespaces or links left behind."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from pyroute2 import netns

from netns_setup.scratch import BENCH_RUN_ROOTS

from .benchrun import REPO, run_suite

pytestmark = pytest.mark.root

PRIVATELINK_PATHS = {"vpclab", "vpclab-busypoll", "kernel-nat", "kernel-route"}
VPC_NAT_PATHS = {"vpclab-vpc-nat", "kernel-snat"}
PRIVATELINK_RATIOS = {f"{mine}/{kernel}" for mine in ("vpclab", "vpclab-busypoll")
                      for kernel in ("kernel-nat", "kernel-route")}
VPC_NAT_RATIOS = {"vpclab-vpc-nat/kernel-snat", "vpclab-vpc-nat/kernel-route"}
FIGURES = {"pps_1", "pps_1000", "new_flows", "tcp_1", "tcp_4", "cps",
           "latency_p50", "latency_p99", "latency_p99.9"}
VPC_NAT_FIGURES = {"pps_1", "pps_1000", "new_flows"}


def test_quick_run_measures_every_path_and_leaves_nothing(tmp_path) -> None:
    pid, returncode, out = run_suite("bench.e2e", ["--quick", "--out", str(tmp_path)], timeout=240)
    assert returncode == 0, out
    prefix = f"vb-{pid}-"
    assert not [ns for ns in netns.listnetns() if ns.startswith(prefix)]
    assert not [name for _, name in socket.if_nameindex() if name.startswith("vb-")]

    results = json.loads((tmp_path / "results.json").read_text())
    assert not results["errors"], results["errors"]
    assert set(results["cpu_roles"]) == PRIVATELINK_PATHS | VPC_NAT_PATHS
    assert FIGURES <= set(results["figures"])
    for key in FIGURES:
        vpc_nat = key in VPC_NAT_FIGURES
        figure_paths = results["figures"][key]["paths"]
        for path in PRIVATELINK_PATHS | (VPC_NAT_PATHS if vpc_nat else set()):
            figure = figure_paths[path]
            assert figure["median"] > 0 and figure["min"] > 0, (key, path, figure)
        if not vpc_nat:      # the VPC-link paths measure pps and new flows only
            assert not VPC_NAT_PATHS & set(figure_paths), (key, figure_paths)
        assert set(results["figures"][key]["ratios"]) == PRIVATELINK_RATIOS | (VPC_NAT_RATIOS if vpc_nat else set())
    # every VPC-link flow is translated: the forwarder's table held the 1,000 flows
    # (1,024: spread over 32 destination ports) after their figure, and none was dropped
    # for want of a SNAT port
    raw = results["raw"]["vpclab-vpc-nat"]
    assert raw["figures"]["pps_1000"][-1]["flows_in_table"] >= 1024
    drops = raw["forwarder_stats"]["ports"]["attachment"]["drops"]
    assert not drops.get("port_allocation"), drops
    assert results["memory"]["vpclab"]["bytes_per_flow_table"] > 0
    assert results["machine"]["cpus"] >= 1
    report = (tmp_path / "report.md").read_text()
    assert "vpclab / kernel-nat" in report and "vpclab-busypoll / kernel-nat" in report
    assert "vpclab-vpc-nat / kernel-snat" in report and "ratios.png" in report
    for plot in ("pps.png", "latency.png", "ratios.png"):
        assert (tmp_path / plot).stat().st_size > 0, plot


@pytest.mark.parametrize("root", BENCH_RUN_ROOTS)
def test_vpclab_cleanup_removes_what_a_killed_run_left(root: str) -> None:
    """A run killed with SIGKILL cannot clean up; `vpclab cleanup` removes its `<root><pid>-`
    namespaces (the pid is gone), for each benchmark's root (bench/e2e, afxdp, apigw).
    `--bench` takes only those: a bare `cleanup` would take other runs' crashed labs."""
    dead = 5_000_000         # above PID_MAX_LIMIT (2^22): no process can have it
    left = f"{root}{dead}-fwd"
    netns.create(left)
    try:
        out = subprocess.run([sys.executable, "-m", "dataplane.cli.main", "cleanup", "--bench"],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "killed benchmark runs: removed 1 object" in out.stdout
        assert f"namespace {left}" in out.stdout
        assert left not in netns.listnetns()
    finally:
        if left in netns.listnetns():
            netns.remove(left)
