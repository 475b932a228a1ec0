"""Cloud Map's registry without a lab: DiscoverInstances' filter table (AWS-FACTS §9, every
rule of services/cloudmap/registry.py's `discover`), the registry's changes and its
reload when the file changes, and DiscoverInstances over HTTP/JSON (api.py)."""
from __future__ import annotations

import json
import os
import random
from collections import Counter

import pytest

from dataplane.services.cloudmap import api
from dataplane.services.cloudmap import registry as reg


def inst(health: str | None, **attributes: str) -> dict:
    return {"attributes": {**attributes, "AWS_INSTANCE_IPV4": "10.0.1.9",
                           "AWS_INSTANCE_PORT": "8080"}, "health": health, "instance": None}


def sample() -> dict:
    """inventory (custom health): a blue healthy, b blue unhealthy, c green healthy,
    d green canary unhealthy; plain (no health check): x, y; down (custom): all unhealthy."""
    return {"version": 1, "lab": "t", "region": "us-east-1", "revision": 4, "namespaces": {
        "shop.local": {"id": "ns-1", "type": "DNS_PRIVATE", "vpc": "shop", "services": {
            "inventory": {"id": "srv-1", "arn": "arn", "dns": {"A": 60}, "health_check": "custom",
                          "instances": {
                              "a": inst("HEALTHY", color="blue", env="prod"),
                              "b": inst("UNHEALTHY", color="blue", env="prod"),
                              "c": inst("HEALTHY", color="green", env="prod"),
                              "d": inst("UNHEALTHY", color="green", env="prod", canary="yes")}},
            "plain": {"id": "srv-2", "arn": "arn", "dns": {}, "health_check": None,
                      "instances": {"x": inst(None, color="blue"), "y": inst(None, color="red")}},
            "down": {"id": "srv-3", "arn": "arn", "dns": {}, "health_check": "custom",
                     "instances": {"p": inst("UNHEALTHY", color="blue"),
                                   "q": inst("UNHEALTHY", color="red")}}}},
        "jobs": {"id": "ns-2", "type": "HTTP", "vpc": None, "services": {
            "empty": {"id": "srv-4", "arn": "arn", "dns": {}, "health_check": "custom",
                      "instances": {}}}}}}


def ids(service: str, **kw) -> set[str]:
    namespace = "jobs" if service == "empty" else "shop.local"
    return {i["InstanceId"] for i in reg.discover(sample(), namespace, service, **kw)}


FILTERS = [
    # (service, query, optional, health status, expected)
    ("inventory", {}, {}, "HEALTHY_OR_ELSE_ALL", {"a", "c"}),       # the default: healthy
    ("inventory", {}, {}, "HEALTHY", {"a", "c"}),
    ("inventory", {}, {}, "UNHEALTHY", {"b", "d"}),
    ("inventory", {}, {}, "ALL", {"a", "b", "c", "d"}),
    ("inventory", {"color": "blue"}, {}, "ALL", {"a", "b"}),       # a query parameter
    ("inventory", {"color": "blue", "env": "prod"}, {}, "ALL", {"a", "b"}),   # all must match
    ("inventory", {"color": "blue", "env": "test"}, {}, "ALL", set()),
    ("inventory", {"colour": "blue"}, {}, "ALL", set()),          # a key nobody has
    ("inventory", {"color": "Blue"}, {}, "ALL", set()),           # values are exact
    ("inventory", {"canary": "yes"}, {}, "HEALTHY", set()),        # healthy and matching: none
    ("inventory", {"canary": "yes"}, {}, "HEALTHY_OR_ELSE_ALL", {"d"}),   # fail open
    ("inventory", {}, {"color": "green"}, "ALL", {"c", "d"}),      # optional: some match
    ("inventory", {}, {"color": "red"}, "ALL", {"a", "b", "c", "d"}),     # none: ignored
    ("inventory", {"color": "blue"}, {"color": "green"}, "ALL", {"a", "b"}),
    ("inventory", {}, {"canary": "yes"}, "HEALTHY", {"a", "c"}),   # after health: ignored
    ("inventory", {}, {"canary": "yes", "color": "green"}, "ALL", {"d"}),  # all optional match
    ("plain", {}, {}, "HEALTHY", {"x", "y"}),                      # no health check: all
    ("plain", {}, {}, "UNHEALTHY", {"x", "y"}),
    ("plain", {"color": "red"}, {}, "HEALTHY", {"y"}),
    ("down", {}, {}, "HEALTHY_OR_ELSE_ALL", {"p", "q"}),           # none healthy: all
    ("down", {}, {}, "HEALTHY", set()),
    ("down", {"color": "red"}, {}, "HEALTHY_OR_ELSE_ALL", {"q"}),
    ("empty", {}, {}, "HEALTHY_OR_ELSE_ALL", set()),
]


@pytest.mark.parametrize("service,query,optional,health,expected", FILTERS)
def test_discover_filter_table(service, query, optional, health, expected) -> None:
    assert ids(service, query=query, optional=optional, health_status=health) == expected


def test_discover_result_shape_and_health_status() -> None:
    found = reg.discover(sample(), "shop.local", "inventory", query={"color": "blue"},
                         health_status="ALL", rng=random.Random(1))
    assert {i["InstanceId"]: i["HealthStatus"] for i in found} == {"a": "HEALTHY",
                                                                   "b": "UNHEALTHY"}
    a = next(i for i in found if i["InstanceId"] == "a")
    assert a == {"InstanceId": "a", "NamespaceName": "shop.local", "ServiceName": "inventory",
                 "HealthStatus": "HEALTHY", "Attributes": {
                     "color": "blue", "env": "prod", "AWS_INSTANCE_IPV4": "10.0.1.9",
                     "AWS_INSTANCE_PORT": "8080"}}
    # without a health check AWS reports no health: UNKNOWN
    assert {i["HealthStatus"] for i in reg.discover(sample(), "shop.local", "plain")} == {"UNKNOWN"}


def test_max_results_default_and_limit_and_randomised_order() -> None:
    big = sample()
    svc = big["namespaces"]["shop.local"]["services"]["plain"]
    svc["instances"] = {f"i{k}": inst(None) for k in range(150)}
    assert len(reg.discover(big, "shop.local", "plain")) == reg.DEFAULT_MAX_RESULTS == 100
    assert len(reg.discover(big, "shop.local", "plain", max_results=1000)) == 150
    assert len(reg.discover(big, "shop.local", "plain", max_results=3)) == 3
    firsts = Counter(reg.discover(big, "shop.local", "plain", max_results=1,
                                  rng=random.Random(seed))[0]["InstanceId"]
                     for seed in range(600))
    assert len(firsts) > 100          # the first entry is spread over the instances
    orders = {tuple(i["InstanceId"] for i in reg.discover(sample(), "shop.local", "inventory",
                                                          health_status="ALL",
                                                          rng=random.Random(seed)))
              for seed in range(50)}
    assert len(orders) > 1


@pytest.mark.parametrize("kw,code", [
    ({"health_status": "SOMETIMES"}, "InvalidInput"),
    ({"max_results": 0}, "InvalidInput"),
    ({"max_results": 1001}, "InvalidInput"),
    ({"max_results": True}, "InvalidInput"),
])
def test_discover_refuses_bad_input(kw, code) -> None:
    with pytest.raises(reg.DiscoveryError) as e:
        reg.discover(sample(), "shop.local", "inventory", **kw)
    assert e.value.code == code


def test_unknown_namespace_and_service_name_what_exists() -> None:
    with pytest.raises(reg.DiscoveryError, match="namespaces: shop.local, jobs") as e:
        reg.discover(sample(), "nope.local", "inventory")
    assert e.value.code == "NamespaceNotFound"
    with pytest.raises(reg.DiscoveryError, match="services: inventory, plain, down") as e:
        reg.discover(sample(), "shop.local", "nope")
    assert e.value.code == "ServiceNotFound"


def test_locate_by_name_alone() -> None:
    doc = sample()
    assert reg.locate(doc, "inventory") == ("shop.local", "inventory")
    doc["namespaces"]["jobs"]["services"]["inventory"] = doc["namespaces"]["jobs"]["services"]["empty"]
    with pytest.raises(reg.DiscoveryError, match="--namespace"):
        reg.locate(doc, "inventory")
    assert reg.locate(doc, "inventory", "jobs") == ("jobs", "inventory")
    with pytest.raises(reg.DiscoveryError, match="shop.local/plain"):
        reg.locate(doc, "nope")


def test_register_update_deregister_set_health() -> None:
    doc = sample()
    assert reg.register(doc, "shop.local", "inventory", "e", {"color": "red"}, "shop/x",
                        "UNHEALTHY") is True
    assert doc["namespaces"]["shop.local"]["services"]["inventory"]["instances"]["e"] == \
        {"attributes": {"color": "red"}, "health": "UNHEALTHY", "instance": "shop/x"}
    # registering an existing ID again updates it and keeps its health (AWS's update)
    assert reg.register(doc, "shop.local", "inventory", "e", {"color": "pink"}, None,
                        "HEALTHY") is False
    e = doc["namespaces"]["shop.local"]["services"]["inventory"]["instances"]["e"]
    assert e["attributes"] == {"color": "pink"} and e["health"] == "UNHEALTHY"
    reg.set_health(doc, "shop.local", "inventory", "e", "HEALTHY")
    assert e["health"] == "HEALTHY"
    reg.deregister(doc, "shop.local", "inventory", "e")
    assert "e" not in doc["namespaces"]["shop.local"]["services"]["inventory"]["instances"]
    assert doc["revision"] == 4 + 4
    # no health without a health check
    reg.register(doc, "shop.local", "plain", "z", {}, None, None)
    assert doc["namespaces"]["shop.local"]["services"]["plain"]["instances"]["z"]["health"] is None


@pytest.mark.parametrize("call,code", [
    (lambda d: reg.deregister(d, "shop.local", "inventory", "zz"), "InstanceNotFound"),
    (lambda d: reg.set_health(d, "shop.local", "inventory", "zz", "HEALTHY"), "InstanceNotFound"),
    (lambda d: reg.set_health(d, "shop.local", "plain", "x", "HEALTHY"), "CustomHealthNotFound"),
    (lambda d: reg.set_health(d, "shop.local", "inventory", "a", "MAYBE"), "InvalidInput"),
    (lambda d: reg.register(d, "shop.local", "nope", "a", {}), "ServiceNotFound"),
])
def test_changes_refused(call, code) -> None:
    doc = sample()
    with pytest.raises(reg.DiscoveryError) as e:
        call(doc)
    assert e.value.code == code
    assert doc == sample()                     # nothing changed


def test_registry_reloads_when_the_file_changes(tmp_path) -> None:
    path = str(tmp_path / "cloudmap.json")
    doc = sample()
    reg.save_registry(path, doc)
    first = reg.load_registry(path)
    assert reg.load_registry(path) is first                # unchanged: not read again
    reg.deregister(doc, "shop.local", "inventory", "a")
    reg.save_registry(path, doc)
    second = reg.load_registry(path)
    assert second is not first
    assert "a" not in second["namespaces"]["shop.local"]["services"]["inventory"]["instances"]
    assert os.listdir(tmp_path) == ["cloudmap.json"]        # no temporary file left


def test_api_discover_instances() -> None:
    status, body = api.handle(sample(), "POST", api.TARGET_PREFIX + "DiscoverInstances",
                              json.dumps({"NamespaceName": "shop.local",
                                          "ServiceName": "inventory",
                                          "QueryParameters": {"color": "blue"},
                                          "HealthStatus": "ALL"}).encode())
    assert status == 200 and body["InstancesRevision"] == 4
    assert {i["InstanceId"] for i in body["Instances"]} == {"a", "b"}
    status, body = api.handle(sample(), "POST", api.TARGET_PREFIX + "DiscoverInstancesRevision",
                              b'{"NamespaceName": "shop.local", "ServiceName": "inventory"}')
    assert (status, body) == (200, {"InstancesRevision": 4})


@pytest.mark.parametrize("method,target,body,error", [
    ("GET", api.TARGET_PREFIX + "DiscoverInstances", b"{}", "UnknownOperationException"),
    ("POST", None, b"{}", "UnknownOperationException"),
    ("POST", api.TARGET_PREFIX + "RegisterInstance", b"{}", "UnknownOperationException"),
    ("POST", api.TARGET_PREFIX + "DiscoverInstances", b"not json", "InvalidInput"),
    ("POST", api.TARGET_PREFIX + "DiscoverInstances", b"[]", "InvalidInput"),
    ("POST", api.TARGET_PREFIX + "DiscoverInstances", b'{"ServiceName": "inventory"}',
     "InvalidInput"),
    ("POST", api.TARGET_PREFIX + "DiscoverInstances",
     b'{"NamespaceName": "shop.local", "ServiceName": "inventory", "QueryParameters": {"a": 1}}',
     "InvalidInput"),
    ("POST", api.TARGET_PREFIX + "DiscoverInstances",
     b'{"NamespaceName": "shop.local", "ServiceName": "inventory", "MaxResults": 0}',
     "InvalidInput"),
    ("POST", api.TARGET_PREFIX + "DiscoverInstances",
     json.dumps({"NamespaceName": "shop.local", "ServiceName": "inventory",
                 "OptionalParameters": {"k" * 256: "v"}}).encode(), "InvalidInput"),
    ("POST", api.TARGET_PREFIX + "DiscoverInstances",
     b'{"NamespaceName": "x.local", "ServiceName": "inventory"}', "NamespaceNotFound"),
    ("POST", api.TARGET_PREFIX + "DiscoverInstances",
     b'{"NamespaceName": "shop.local", "ServiceName": "x"}', "ServiceNotFound"),
])
def test_api_errors(method, target, body, error) -> None:
    status, answer = api.handle(sample(), method, target, body)
    assert status == 400 and answer["__type"] == error and answer["message"]
