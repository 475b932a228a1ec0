"""Time of a lab's plan (what `up` and `validate --plan` compute before they make
anything) against the number of VPCs: pairs of a consumer VPC with an interface endpoint
and a provider VPC with an NLB behind an endpoint service (examples/privatelink.yaml,
repeated), so every Hyperplane ENI, DNS record and forwarder service of the address plan
is in it.

The address plan (`Lab.addresses()`, `hyperplane_enis()`) is a walk over the whole lab,
and the plan asks for it per VPC and per resource; it is walked once per reading
(model/topology.py, `Lab.unchanged`). The figure is the cost per VPC at 100 VPCs as a
ratio to that at 10: near 1 when the plan is linear, about 10 when it is quadratic (it
was 10.0 before the walk was shared — `preview` took 0.25 s at 10 VPCs, 24.6 s at 100 —
and 1.3 after). Nothing asserts on time.

    .venv/bin/python -m pytest bench/test_plan_scale.py -s -q
"""
from __future__ import annotations

import copy
import pathlib
import statistics
import time

from conftest import record
from dataplane.lab.preview import preview
from dataplane.model import Lab, load

REPO = pathlib.Path(__file__).resolve().parents[1]
ROUNDS = 3


def pairs(n_vpcs: int) -> Lab:
    """examples/privatelink.yaml's two VPCs, `n_vpcs / 2` times over."""
    base = load(REPO / "examples" / "privatelink.yaml").to_dict()
    doc = {"lab": "bplan", "region": base["region"], "vpcs": {}}
    for k in range(n_vpcs // 2):
        consumer = copy.deepcopy(base["vpcs"]["consumer"])
        provider = copy.deepcopy(base["vpcs"]["provider"])
        consumer["endpoints"]["web-ep"]["service"] = f"p{k}/web-svc"
        provider["endpoint_services"]["web-svc"]["private_dns_name"] = f"web{k}.internal"
        doc["vpcs"][f"c{k}"], doc["vpcs"][f"p{k}"] = consumer, provider
    return Lab.from_dict(doc).check()


def per_vpc_s(n_vpcs: int) -> float:
    lab = pairs(n_vpcs)
    runs = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        shown = preview(lab)
        runs.append(time.perf_counter() - t)
    assert len(shown["enis"]) == 7 * (n_vpcs // 2)    # per pair: 3 instances, 4 ENIs
    return statistics.median(runs) / n_vpcs


def test_plan_grows_linearly_with_the_vpcs() -> None:
    small, large = per_vpc_s(10), per_vpc_s(100)
    record("plan (validate --plan) per VPC, 10 VPCs", "ms/VPC", [small * 1e3], "-")
    record("plan per VPC, 100 VPCs", "ms/VPC", [large * 1e3], "-")
    record("plan per VPC, 100 VPCs / 10 VPCs", "ratio", [large / small], "≈ 1 (linear)")
