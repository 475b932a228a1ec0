"""API Gateway in the topology model and compiled (model/api_gateway.py,
compile/api_gateway.py): the issue's section accepted as written, REST links made of
PrivateLink resources that are never written back, a second link on one NLB FAILED,
every mistake named by its field, stable IDs and AWS's invoke URLs, the forwarder
services for NLBs that HTTP routes reach, and the front end's configuration (no root)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from dataplane.compile import api_gateway as compiled
from dataplane.compile import hyperplane, privatelink
from dataplane.compile.spec import PrivateLinkService
from dataplane.model import Lab, TopologyError, load, loads, names
from dataplane.model.api_gateway import NLB_TAKEN, api_id, invoke_url

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "api-gateway.yaml"


@pytest.fixture
def text() -> str:
    return EXAMPLE.read_text()


def problems(text: str) -> list[str]:
    with pytest.raises(TopologyError) as e:
        loads(text)
    return [str(p) for p in e.value.problems]


def test_the_issue_shape_loads_and_round_trips(text):
    lab = loads(text)
    assert set(lab.apis) == {"orders", "catalog"}
    assert set(lab.rest_vpc_links) == {"rest-link"} and set(lab.vpc_links) == {"app-link"}
    doc = lab.to_dict()
    # What REST links make is derived, never written: no API Gateway VPC, no endpoint
    # service on the NLB; the document is the file's again.
    assert names.APIGW not in doc["vpcs"]
    assert "endpoint_services" not in doc["vpcs"]["shop"]
    assert doc["api_gateway"]["vpc_links"]["rest-link"] == {"type": "REST",
                                                            "target": "shop/web-nlb"}
    assert Lab.from_dict(doc) == lab


def test_a_rest_link_is_an_endpoint_service_on_the_nlb_and_an_endpoint_in_api_gateways_vpc(text):
    lab = loads(text)
    es = lab.vpcs["shop"].endpoint_services["apigw.rest-link"]
    assert es.load_balancers == ["web-nlb"] and es.acceptance_required is False
    apigw = lab.vpcs[names.APIGW]
    assert apigw.service == "API Gateway" and apigw.cidr == "10.0.0.0/16"
    ep = apigw.endpoints["rest-link"]
    assert ep.service == "shop/apigw.rest-link"
    # One ENI per AZ of the NLB's nodes, in API Gateway's /20 of that AZ.
    enis = [e for e in lab.hyperplane_enis() if e.vpc == names.APIGW]
    assert [(e.az, e.ip) for e in enis] == [("us-east-1a", "10.0.0.4"),
                                            ("us-east-1b", "10.0.16.4")]
    states = privatelink.endpoint_states(lab)
    assert states[f"{names.APIGW}/rest-link"]["state"] == "available"


def test_a_second_link_on_one_nlb_fails_with_awss_message(text):
    text = text.replace("    rest-link: {type: REST, target: shop/web-nlb}",
                        "    rest-link: {type: REST, target: shop/web-nlb}\n"
                        "    again: {type: REST, target: shop/web-nlb}")
    lab = loads(text)
    assert lab.rest_vpc_links["rest-link"].state == "AVAILABLE"
    again = lab.rest_vpc_links["again"]
    assert (again.state, again.message) == ("FAILED", NLB_TAKEN)
    assert "again" not in lab.vpcs[names.APIGW].endpoints
    assert compiled.links(lab)["again"]["state"] == "FAILED"


def test_a_link_on_an_nlb_behind_the_files_endpoint_service_fails(text):
    text = text.replace("api_gateway:\n", "    endpoint_services:\n"
                        "      web-svc: {load_balancers: [web-nlb], acceptance_required: false}\n"
                        "api_gateway:\n", 1)
    lab = loads(text)
    assert lab.rest_vpc_links["rest-link"].message == NLB_TAKEN


def test_an_endpoint_service_added_from_python_after_the_link_is_refused(text):
    lab = loads(text)
    lab.vpcs["shop"].add_endpoint_service("late", ["web-nlb"])
    assert any("already backs VPC link rest-link" in str(p) for p in lab.problems())


@pytest.mark.parametrize("old,new,expected", [
    ("rest-link: {type: REST, target: shop/web-nlb}", "rest-link: {type: REST}",
     "api_gateway.vpc_links.rest-link.target: required key is missing"),
    ("rest-link: {type: REST, target: shop/web-nlb}",
     "rest-link: {type: REST, target: shop/nope}",
     "api_gateway.vpc_links.rest-link.target: no load balancer 'nope' in VPC shop"),
    ("rest-link: {type: REST, target: shop/web-nlb}",
     "rest-link: {type: REST, target: shop/web-nlb, subnets: [a]}",
     "api_gateway.vpc_links.rest-link.subnets: a REST VPC link has no subnets"),
    ("stages: [prod]", "stages: [$default]",
     "api_gateway.apis.orders.stages: $default is a stage of HTTP APIs only"),
    ("stages: [prod]", "stages: [pr od]", "api_gateway.apis.orders.stages[0]"),
    ('"GET /health": {vpc_link: rest-link', '"FETCH /health": {vpc_link: rest-link',
     "api_gateway.apis.orders.routes.FETCH /health: a route is 'METHOD /path'"),
    ('"ANY /orders/{proxy+}"', '"ANY /{proxy+}/orders"',
     "api_gateway.apis.orders.routes.ANY /{proxy+}/orders: {proxy+} is greedy"),
    ('uri: "http://orders.shop.internal/{proxy}"', 'uri: "http://orders.shop.internal:81/"',
     "port 81 of http://orders.shop.internal:81/ picks the listener of shop/web-nlb, "
     "which listens on 80"),
    ('uri: "http://orders.shop.internal/{proxy}"', 'uri: "http://orders.shop.internal/{id}"',
     "{id} is not a path parameter of the route"),
    ("timeout_ms: 2000", "timeout_ms: 29001",
     "api_gateway.apis.orders.routes.GET /health.timeout_ms: 29001 ms; a REST API's "
     "integration timeout is 50-29000 ms"),
    ('{vpc_link: rest-link, uri: "http://orders.shop.internal/{proxy}"}',
     '{vpc_link: app-link, uri: "http://orders.shop.internal/{proxy}"}',
     "app-link is an HTTP-API (V2) VPC link; a REST API's private integration uses a REST link"),
    ('"GET /items/{id}":   {vpc_link: app-link, target: shop/web-nlb:80}'.replace("   ", " "),
     '"GET /items/{id}": {vpc_link: rest-link, target: shop/web-nlb:80}',
     "rest-link is a REST (V1) VPC link; an HTTP API's private integration uses an HTTP (V2) link"),
    ('"GET /items/{id}": {vpc_link: app-link, target: shop/web-nlb:80}',
     '"GET /items/{id}": {vpc_link: app-link, target: shop/web-nlb:81}',
     "shop/web-nlb has no listener on 81 (listeners: 80)"),
    ('"GET /items/{id}": {vpc_link: app-link, target: shop/web-nlb:80}',
     '"GET /items/{id}": {vpc_link: nope, target: shop/web-nlb:80}',
     "unknown VPC link 'nope'"),
    ("throttle: {rate: 100, burst: 50}", "throttle: {rate: 0, burst: 50}",
     "api_gateway.apis.catalog.throttle.rate"),
])
def test_each_mistake_is_named_by_its_field(text, old, new, expected):
    assert old in text, old
    found = problems(text.replace(old, new, 1))
    assert any(expected in p for p in found), found


def test_an_internet_vpc_is_refused(text):
    text = text.replace("vpcs:\n  shop:", "vpcs:\n  internet:\n    cidr: 10.9.0.0/16\n  shop:")
    assert any("'internet' is the name of the lab's internet namespace" in p
               for p in problems(text))


def test_ids_and_invoke_urls_are_awss_and_stable():
    a = api_id("lab1", "orders")
    assert re.fullmatch(r"[a-z0-9]{10}", a) and a == api_id("lab1", "orders")
    assert a != api_id("lab2", "orders") and a != api_id("lab1", "catalog")
    assert invoke_url("lab1", "us-east-1", "orders", "prod") == \
        f"https://{a}.execute-api.us-east-1.amazonaws.com/prod/"
    assert invoke_url("lab1", "eu-west-1", "orders", "$default") == \
        f"https://{a}.execute-api.eu-west-1.amazonaws.com/"


def test_the_python_builder_says_the_same_as_the_file(text):
    file_lab = loads(text)
    lab = load(EXAMPLE)
    assert lab == file_lab
    fresh = Lab("x")
    with pytest.raises(TopologyError, match="no NLB 'shop/web-nlb' \\(add it first\\)"):
        fresh.add_rest_vpc_link("l", "shop/web-nlb")
    assert "l" not in fresh.rest_vpc_links


def test_nlbs_reached_by_http_routes_answer_on_their_nodes(text):
    lab = loads(text)
    ports = hyperplane.ports(lab)
    macs = {i: ("02:00:00:00:00:01", "02:00:00:00:00:02") for i in range(len(ports) + 4)}
    spec = hyperplane.compile_spec(lab, ports, macs, privatelink.endpoint_states(lab))
    nodes = [p for p in ports if p.eni.kind == "nlb"]
    direct = [s for s in spec.services if isinstance(s, PrivateLinkService)
              and s.in_port == s.out_port]
    assert sorted((s.in_port, s.vip, s.vport, s.snat_ip) for s in direct) == \
        sorted((p.id, p.eni.ip, 80, p.eni.ip) for p in nodes)
    assert all(s.backends and s.health_group for s in direct)
    from dataplane.model import api_gateway
    assert api_gateway.forwarder_services(lab) == len(direct)


def test_the_front_end_config_names_every_api_route_and_link(text):
    lab = loads(text)
    cfg = compiled.frontend_config(lab, "/run/vpclab/apigw-demo")
    assert cfg["listeners"] == [{"address": "203.0.113.1", "port": 80, "tls": False},
                                {"address": "203.0.113.1", "port": 443, "tls": True}]
    assert cfg["links"]["rest-link"]["netns"] is None
    assert cfg["links"]["app-link"]["netns"] == "apigw-demo.apigw.app-link"
    orders = next(a for a in cfg["apis"] if a["name"] == "orders")
    proxy = orders["routes"][0]
    assert proxy["key"] == "ANY /orders/{proxy+}" and proxy["timeout_ms"] == 29000
    assert (proxy["host"], proxy["port"], proxy["addresses"]) == \
        ("orders.shop.internal", 80, ["10.0.0.4", "10.0.16.4"])
    assert orders["routes"][1]["timeout_ms"] == 2000
    catalog = next(a for a in cfg["apis"] if a["name"] == "catalog")
    item = catalog["routes"][0]
    assert item["addresses"] == ["10.0.1.5", "10.0.2.5"] and item["port"] == 80
    assert item["timeout_ms"] == 30000 and item["host"].endswith(".elb.us-east-1.amazonaws.com")
    assert catalog["throttle"] == {"rate": 100, "burst": 50}
    assert cfg["account_throttle"] == {"rate": 10000, "burst": 5000}
