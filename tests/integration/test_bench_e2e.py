"""The end-to-end benchmark (bench/e2e) in its quick mode, as a smoke test: one short run
of every figure on every path, a results.json with a positive number for each, a report
and its plots, and nothing of the run's `vb-<pid>-` namespaces or links left behind."""
from __future__ import annotations

import json
import pathlib
import socket
import subprocess
import sys

import pytest
from pyroute2 import netns

pytestmark = pytest.mark.root

REPO = pathlib.Path(__file__).resolve().parents[2]
PATHS = {"vpclab", "vpclab-busypoll", "kernel-nat", "kernel-route"}
RATIOS = {f"{mine}/{kernel}" for mine in ("vpclab", "vpclab-busypoll")
          for kernel in ("kernel-nat", "kernel-route")}
FIGURES = {"pps_1", "pps_1000", "new_flows", "tcp_1", "tcp_4", "cps",
           "latency_p50", "latency_p99", "latency_p99.9"}


def test_quick_run_measures_every_path_and_leaves_nothing(tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "bench.e2e", "--quick", "--out", str(tmp_path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    prefix = f"vb-{proc.pid}-"
    assert not [ns for ns in netns.listnetns() if ns.startswith(prefix)]
    assert not [name for _, name in socket.if_nameindex() if name.startswith("vb-")]

    results = json.loads((tmp_path / "results.json").read_text())
    assert not results["errors"], results["errors"]
    assert set(results["cpu_roles"]) == PATHS
    assert FIGURES <= set(results["figures"])
    for key in FIGURES:
        for path in PATHS:
            figure = results["figures"][key]["paths"][path]
            assert figure["median"] > 0 and figure["min"] > 0, (key, path, figure)
        assert set(results["figures"][key]["ratios"]) == RATIOS
    assert results["memory"]["vpclab"]["bytes_per_flow_table"] > 0
    assert results["machine"]["cpus"] >= 1
    report = (tmp_path / "report.md").read_text()
    assert "vpclab / kernel-nat" in report and "vpclab-busypoll / kernel-nat" in report
    assert (tmp_path / "pps.png").stat().st_size > 0 and (tmp_path / "latency.png").stat().st_size > 0


def test_vpclab_cleanup_removes_what_a_killed_run_left() -> None:
    """A run killed with SIGKILL cannot clean up; `vpclab cleanup` removes its `vb-<pid>-`
    namespaces (the pid is gone) and leaves a live run's alone."""
    dead = 5_000_000         # above PID_MAX_LIMIT (2^22): no process can have it
    left = f"vb-{dead}-fwd"
    netns.create(left)
    try:
        out = subprocess.run([sys.executable, "-m", "dataplane.cli.main", "cleanup"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "killed benchmark runs: removed 1 object" in out.stdout
        assert left not in netns.listnetns()
    finally:
        if left in netns.listnetns():
            netns.remove(left)
