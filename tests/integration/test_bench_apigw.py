"""API Gateway's and the ALB's benchmark (bench/apigw) in its quick mode, end to end: the
proxy scenario on scratch namespaces and the lab scenario on a real lab, a profile, and a
results.json whose every number is present and positive (never a timed threshold),
with nothing of the run left behind; then the ALB scenario alone (test_bench_e2e.py
checks that `vpclab cleanup` removes a killed run's `vg-` and `bal-` namespaces)."""
from __future__ import annotations

import json
import os

import pytest
from pyroute2 import netns

from .benchrun import run_suite

pytestmark = pytest.mark.root

FIGURES = ("rps", "p50_ms", "p99_ms", "cpu_us_per_request")
PROXIES = {"proxy": {"haproxy", "apigw REST API", "apigw HTTP API"}, "lab": {"haproxy", "apigw"}}
PATHS = {"proxy": {"front end alone"},
         "lab": {"REST link (PrivateLink) → NLB → target", "V2 link (VPC-to-VPC NAT) → NLB → target"}}


def test_quick_run_measures_both_scenarios_and_leaves_nothing(tmp_path) -> None:
    pid, returncode, out = run_suite("bench.apigw", ["--quick", "--scenarios", "proxy,lab",
                                                     "--out", str(tmp_path)], timeout=400)
    assert returncode == 0, out
    assert not [ns for ns in netns.listnetns() if ns.startswith(f"vg-{pid}-")]
    assert not os.path.exists(f"/run/vpclab/bgw-{pid}")
    assert not [ns for ns in netns.listnetns() if ns.startswith(f"bgw-{pid}.")]

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["errors"] == []
    cases = {(r["scenario"], r["path"], r["protocol"], r["proxy"]) for r in results["rows"]}
    assert cases == {(s, path, protocol, proxy) for s in PROXIES for path in PATHS[s]
                     for protocol in ("plain", "tls") for proxy in PROXIES[s]}
    for row in results["rows"]:
        assert len(row["runs"]) == 1, row
        run = row["runs"][0]
        assert run["requests"] > 0 and run["non_2xx"] == 0, run
        for key in FIGURES:
            assert row["median"][key] > 0 and row["min"][key] > 0, (row["proxy"], key, row["median"])
    assert len(results["ratios"]) == len(results["rows"]) - 2 - 4    # every front-end row
    for ratio in results["ratios"]:
        assert ratio["proxy"] != "haproxy"
        for key in ("rps", "p50", "p99", "cpu"):
            assert ratio[key] > 0, ratio
        assert isinstance(ratio["rps_goal_met"], bool) and isinstance(ratio["p99_goal_met"], bool)
    assert set(results["profiles"]) == {"apigw REST API, plain", "apigw REST API, tls"}
    for profile in results["profiles"].values():
        assert profile["samples"] > 0
        assert sum(share for _, share in profile["by_layer"]) == pytest.approx(1.0)
        assert profile["by_function"] and profile["by_leaf"]
        assert (tmp_path / profile["raw"]).stat().st_size > 0
    for scenario in PROXIES:
        assert results["front_end_stats"][scenario]["requests"] > 0, results["front_end_stats"]
    report = (tmp_path / "report.md").read_text()
    assert "## Ratios to haproxy" in report and "## Profile: apigw REST API, tls" in report
    assert "* apigw / haproxy, REST link (PrivateLink) → NLB → target:" in report


ALB_PATHS = {"rule 10: /api/* → api-tg 3 : canary-tg 1", "default (rules 10–30 miss) → web-tg"}


def test_quick_alb_run_measures_the_node_beside_haproxy_and_leaves_nothing(tmp_path) -> None:
    """The ALB node and haproxy pass the rule set's probes (else the run fails), then
    take load on both paths, plain and TLS; the node's counters and health are kept."""
    pid, returncode, out = run_suite("bench.apigw", ["--quick", "--scenarios", "alb",
                                                     "--out", str(tmp_path)], timeout=120)
    assert returncode == 0, out
    assert not [ns for ns in netns.listnetns() if ns.startswith(f"bal-{pid}-")]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["errors"] == []
    cases = {(r["scenario"], r["path"], r["protocol"], r["proxy"]) for r in results["rows"]}
    assert cases == {("alb", path, protocol, proxy) for path in ALB_PATHS
                     for protocol in ("plain", "tls") for proxy in ("haproxy", "ALB node")}
    for row in results["rows"]:
        run = row["runs"][0]
        assert run["requests"] > 0 and run["non_2xx"] == 0, run
        for key in FIGURES:
            assert row["median"][key] > 0, (row["proxy"], key, row["median"])
    assert {(r["path"], r["protocol"]) for r in results["ratios"]} == {
        (path, protocol) for path in ALB_PATHS for protocol in ("plain", "tls")}
    assert all(r["proxy"] == "ALB node" and r["rps"] > 0 for r in results["ratios"])
    assert set(results["profiles"]) == {"ALB node, plain", "ALB node, tls"}
    health = results["front_end_stats"]["alb"]["health"]["target_groups"]
    assert {tg: len(targets) for tg, targets in health.items()} == {"api-tg": 2, "canary-tg": 1, "web-tg": 2}
    served = results["front_end_stats"]["alb"]["served_by_target_group"]
    for lb in ("haproxy", "ALB node"):       # rule 10's 3 : 1, over thousands of requests
        api, canary = served[lb]["api-tg"], served[lb]["canary-tg"]
        assert api + canary > 400 and 0.65 < api / (api + canary) < 0.85, (lb, served)
        assert served[lb]["web-tg"] > 0, (lb, served)
    setup = results["setup"]["alb"]
    assert setup["node_config"]["listeners"][0]["rules"][0]["priority"] == 10
    assert "use_backend tg_canary-tg" in setup["haproxy_config"]
    report = (tmp_path / "report.md").read_text()
    assert "## The ALB scenario's haproxy: where it differs from the node's rule set" in report
    assert "* ALB node / haproxy, rule 10: /api/* → api-tg 3 : canary-tg 1:" in report
