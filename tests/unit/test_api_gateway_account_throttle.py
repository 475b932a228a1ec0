"""The account's throttle quota (`api_gateway.account_throttle`): AWS's default when the
file says nothing, the file's own when it raises it (as bench/apigw's lab does), kept by
a round trip through the document, and refused with its field named above the limit."""
from __future__ import annotations

import pathlib

import pytest

from dataplane.compile import api_gateway as compiled
from dataplane.model import TopologyError, loads

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "api-gateway.yaml"


def with_quota(quota: str) -> str:
    return EXAMPLE.read_text().replace("api_gateway:\n", f"api_gateway:\n  account_throttle: {quota}\n", 1)


def test_the_default_quota_is_aws_default() -> None:
    lab = loads(EXAMPLE.read_text())
    assert lab.account_throttle is None
    assert compiled.frontend_config(lab, "/run/x")["account_throttle"] == {"rate": 10000, "burst": 5000}


def test_a_raised_quota_reaches_the_front_end_and_survives_a_round_trip() -> None:
    lab = loads(with_quota("{rate: 200000, burst: 100000}"))
    assert compiled.frontend_config(lab, "/run/x")["account_throttle"] == {"rate": 200000, "burst": 100000}
    doc = lab.to_dict()
    assert doc["api_gateway"]["account_throttle"] == {"rate": 200000, "burst": 100000}


def test_a_quota_above_the_limit_is_refused_by_name() -> None:
    with pytest.raises(TopologyError) as err:
        loads(with_quota("{rate: 2000000, burst: 100}"))
    assert "api_gateway.account_throttle.rate" in str(err.value)
