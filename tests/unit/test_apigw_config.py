"""The front end's configuration (dataplane/services/apigw/config.py): the contract's example reads,
and every kind of mistake is refused with the field's path."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from apigw_example import CONTRACT
from config_edit import broken

from dataplane.services.apigw.config import ApigwConfig, ConfigError

def test_the_contracts_example_reads() -> None:
    config = ApigwConfig.from_json(CONTRACT)
    assert config.link("app-link").netns == "demo.apigw.app-link"
    assert config.apis[1].throttle.rate == 100
    assert config.apis[0].routes[0].addresses == ("10.0.0.5", "10.0.16.5")
    without = {k: v for k, v in CONTRACT.items() if k != "account_throttle"}
    assert ApigwConfig.from_json(without).account_throttle.rate == 10000   # AWS's default


CASES = [
    (["version"], 2, "version: 2 is not a version this front end reads (1)"),
    (["listeners", 0, "address"], "203.0.113.300", "listeners[0].address: '203.0.113.300' is not an IPv4 address"),
    (["tls"], KeyError, "listeners[1].tls: a TLS listener needs the 'tls' cert and key"),
    (["links", "bad-link", "state"], "BROKEN", "links.bad-link.state: 'BROKEN' is not one of"),
    (["links", "app-link", "colour"], "red", "links.app-link: unknown field 'colour'"),
    (["links"], [], "links: [] is not an object"),
    (["apis", 1, "routes", 0, "link"], "app-lnk", "apis[1].routes[0].link: unknown VPC link 'app-lnk'; known: app-link, bad-link, rest-link"),
    (["apis", 1, "routes", 0, "link"], "rest-link", "apis[1].routes[0].link: 'rest-link' is a REST link"),
    (["apis", 0, "routes", 0, "timeout_ms"], 30000, "apis[0].routes[0].timeout_ms: 30000 is outside 50-29000 for a REST API"),
    (["apis", 1, "routes", 0, "timeout_ms"], 40, "apis[1].routes[0].timeout_ms: 40 is outside 50-30000 for an HTTP API"),
    (["apis", 0, "routes", 0, "key"], "$default", "apis[0].routes[0].key: $default is a route of HTTP APIs only"),
    (["apis", 0, "routes", 0, "key"], "ANY /{proxy+}/x", "apis[0].routes[0].key: greedy {proxy+} must be the last segment"),
    (["apis", 0, "routes", 0, "key"], "FETCH /x", "apis[0].routes[0].key: 'FETCH /x' is not 'METHOD /path'"),
    (["apis", 0, "routes", 0, "key"], "GET /a{b}", "apis[0].routes[0].key: segment 'a{b}'"),
    (["apis", 0, "stages"], ["$default"], "apis[0].stages[0]: '$default' is not a stage name"),
    (["apis", 1, "stages"], ["a b"], "apis[1].stages[0]: 'a b' is not a stage name"),
    (["apis", 1, "routes", 0, "addresses"], [], "apis[1].routes[0].addresses: a route over an available link needs at least one address"),
    (["apis", 1, "id"], "a1b2c3d4e5", "apis[1].id: API id 'a1b2c3d4e5' is used twice"),
    (["apis", 0, "routes", 0, "port"], "80", "apis[0].routes[0].port: '80' is not an integer"),
]


@pytest.mark.parametrize("path,value,message", CASES)
def test_mistakes_name_their_field(path, value, message) -> None:
    with pytest.raises(ConfigError) as refused:
        ApigwConfig.from_json(broken(CONTRACT, path, value))
    assert str(refused.value).startswith(message)


def test_rest_param_siblings_are_refused() -> None:
    doc = copy.deepcopy(CONTRACT)
    route = doc["apis"][0]["routes"][0]
    doc["apis"][0]["routes"] = [route, {**route, "key": "GET /orders/{id}"},
                                {**route, "key": "GET /orders/{name}/x"}]
    with pytest.raises(ConfigError, match=r"apis\[0\].routes\[2\].key: \{name\} and \{id\} can't "
                                          "both be children of /orders"):
        ApigwConfig.from_json(doc)


def test_the_command_exits_2_with_one_line(tmp_path) -> None:
    path = tmp_path / "apigw.json"
    path.write_text(json.dumps(broken(CONTRACT, ["apis", 1, "routes", 0, "link"], "nope")))
    proc = subprocess.run([sys.executable, "-m", "dataplane.services.apigw", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"apigw: {path}: apis[1].routes[0].link: unknown VPC link 'nope'; known: app-link, "
        "bad-link, rest-link"]
    path.write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "dataplane.services.apigw", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not JSON" in proc.stderr
