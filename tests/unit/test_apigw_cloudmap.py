"""API Gateway's HTTP routes to a Cloud Map service, without sockets: the configuration's
`cloudmap` record, the instance chosen per request from the live registry (filters,
health, the first of a shuffled list), the pool group of that instance over the link, and
503 when no instance is left (dataplane/services/apigw/cloudmap.py)."""
from __future__ import annotations

import copy
import json
from collections import Counter

import pytest
from apigw_example import CONTRACT

from dataplane.services.apigw.config import ApigwConfig, ConfigError
from dataplane.services.apigw.personality import ApiGateway
from dataplane.services.cloudmap import registry as reg
from dataplane.services.proxy.personality import Forward, Request

HTTP_HOST = "f6g7h8i9j0.execute-api.us-east-1.amazonaws.com"


def instance(ip: str, port: int, health: str = "HEALTHY", **attributes: str) -> dict:
    return {"attributes": {**attributes, "AWS_INSTANCE_IPV4": ip, "AWS_INSTANCE_PORT": str(port)},
            "health": health, "instance": None}


@pytest.fixture
def registry(tmp_path):
    path = str(tmp_path / "cloudmap.json")
    doc = {"version": 1, "revision": 0, "namespaces": {"shop.local": {
        "id": "ns-1", "type": "DNS_PRIVATE", "vpc": "shop", "services": {"inventory": {
            "id": "srv-1", "arn": "arn", "dns": {}, "health_check": "custom", "instances": {
                "blue1": instance("10.0.1.4", 8080, color="blue"),
                "blue2": instance("10.0.1.5", 8081, color="blue"),
                "green": instance("10.0.2.9", 8080, color="green")}}}}}}
    reg.save_registry(path, doc)
    return path, doc


@pytest.fixture
def gateway(tmp_path, registry):
    doc = copy.deepcopy(CONTRACT)
    doc["log_dir"] = str(tmp_path)
    doc["apis"][1]["throttle"] = None           # many requests below
    doc["apis"][1]["routes"].append({
        "key": "ANY /inv/{proxy+}", "link": "app-link", "uri": None, "timeout_ms": 30000,
        "host": "inventory.shop.local", "addresses": [], "port": None,
        "cloudmap": {"registry": registry[0], "namespace": "shop.local",
                     "service": "inventory", "query": {"color": "blue"}}})
    gw = ApiGateway(ApigwConfig.from_json(doc))
    yield gw
    gw.close()


def call(gw: ApiGateway, path: str = "/inv/items") -> Forward | bytes:
    return gw.route(Request("GET", path, "1.1", [("Host", HTTP_HOST)], True,
                            ("203.0.113.10", 40000), ("203.0.113.1", 443), True, 0.0, 0.0))


def test_config_reads_the_cloudmap_record(gateway: ApiGateway) -> None:
    route = next(r for r in gateway.config.apis[1].routes if r.cloudmap)
    assert (route.cloudmap.namespace, route.cloudmap.service, route.cloudmap.query,
            route.port, route.addresses) == ("shop.local", "inventory", (("color", "blue"),),
                                             None, ())
    bad = copy.deepcopy(CONTRACT)
    bad["apis"][1]["routes"][0]["port"] = None
    with pytest.raises(ConfigError, match="apis\\[1\\].routes\\[0\\].port: a route without a "
                                          "Cloud Map service needs a port"):
        ApigwConfig.from_json(bad)


def test_each_request_goes_to_a_matching_instance_over_the_link(gateway: ApiGateway) -> None:
    seen = Counter()
    for _ in range(200):
        forward = call(gateway)
        assert isinstance(forward, Forward)
        assert forward.group.netns == "demo.apigw.app-link"
        assert forward.head.startswith(b"GET /inv/items HTTP/1.1\r\nHost: inventory.shop.local\r\n")
        seen[(forward.group.addresses, forward.group.port)] += 1
    # the filter keeps green out; the shuffled list's first entry spreads over the blues
    assert set(seen) == {(("10.0.1.4",), 8080), (("10.0.1.5",), 8081)}
    assert min(seen.values()) > 50
    # one pool group per (link, address, port): connections are reused across requests
    group = call(gateway).group
    assert group is gateway.pool.group("demo.apigw.app-link", group.addresses, group.port)
    assert len(gateway.pool.groups) == 2 + 2     # the contract's two, and one per blue


def test_changes_are_seen_by_the_next_request_and_none_left_is_503(gateway, registry,
                                                                   tmp_path) -> None:
    path, doc = registry
    reg.set_health(doc, "shop.local", "inventory", "blue1", "UNHEALTHY")
    reg.save_registry(path, doc)
    assert {call(gateway).group.addresses for _ in range(30)} == {("10.0.1.5",)}
    reg.deregister(doc, "shop.local", "inventory", "blue2")
    reg.save_registry(path, doc)
    # only an unhealthy blue is left: HEALTHY_OR_ELSE_ALL fails open
    assert call(gateway).group.addresses == ("10.0.1.4",)
    reg.deregister(doc, "shop.local", "inventory", "blue1")
    reg.save_registry(path, doc)
    answer = call(gateway)
    assert isinstance(answer, bytes)
    assert answer.startswith(b"HTTP/1.1 503 ") and answer.endswith(b'{"message":"Service Unavailable"}')
    line = json.loads((tmp_path / "catalog" / "$default.log").read_text().splitlines()[-1])
    assert line["status"] == "503"
    assert "Cloud Map shop.local/inventory: no instance matches" in json.dumps(line)


def test_a_missing_registry_is_503(gateway, registry) -> None:
    import os
    os.unlink(registry[0])
    answer = call(gateway)
    assert isinstance(answer, bytes) and answer.startswith(b"HTTP/1.1 503 ")
