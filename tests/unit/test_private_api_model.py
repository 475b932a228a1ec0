"""Private REST APIs in the topology model (issue 12): the execute-api endpoint and API
Gateway's own endpoint service behind it, the front end's configuration (private
listener, endpoints by ID, policies with the lab's references resolved and short forms
expanded), the names the VPC resolvers answer, and every mistake named by its field (no
root: pure functions of the model)."""
from __future__ import annotations

import copy

import pytest
import yaml

from dataplane.compile import api_gateway as compiled
from dataplane.model import Lab, TopologyError, loads
from dataplane.model import resource_policy
from dataplane.model.api_gateway import api_id
from dataplane.model.execute_api import EXECUTE_API, FRONT_END_PRIVATE_IP, OWNER, vpc_id
from dataplane.model.privatelink import endpoint_id

PRIVATE_FILE = """
lab: tpriv
vpcs:
  corp:
    cidr: 10.20.0.0/16
    subnets:
      a: {cidr: 10.20.1.0/24, az: us-east-1a}
      b: {cidr: 10.20.2.0/24, az: us-east-1b}
    security_groups:
      ep-443: {ingress: [{protocol: tcp, ports: 443, source: 10.20.0.0/16}]}
    instances:
      client: {subnet: a}
    endpoints:
      api-ep: {service: execute-api, subnets: [a, b], security_groups: [ep-443], private_dns: true}
  shop:
    cidr: 10.1.0.0/16
    subnets:
      a: {cidr: 10.1.1.0/24, az: us-east-1a}
    instances:
      web1: {subnet: a}
    load_balancers:
      web-nlb: {type: network, subnets: [a], listeners: [{port: 80, target_group: web-tg}]}
    target_groups:
      web-tg: {protocol: TCP, port: 8080, targets: [web1]}
api_gateway:
  vpc_links:
    rest-link: {type: REST, target: shop/web-nlb}
  apis:
    orders:
      type: REST
      endpoint: PRIVATE
      vpc_endpoints: [corp/api-ep]
      stages: [prod]
      routes:
        "ANY /{proxy+}": {vpc_link: rest-link, uri: "http://orders.shop.internal/{proxy}"}
      policy:
        Statement:
          - {Effect: Allow, Principal: "*", Action: "execute-api:Invoke", Resource: "execute-api:/*"}
          - {Effect: Deny, Principal: "*", Action: "execute-api:Invoke", Resource: "execute-api:/*",
             Condition: {StringNotEquals: {"aws:SourceVpce": corp/api-ep, "aws:SourceVpc": [corp]}}}
"""


@pytest.fixture
def lab() -> Lab:
    return loads(PRIVATE_FILE)


def doc() -> dict:
    return yaml.safe_load(PRIVATE_FILE)


def problems_of(d: dict) -> list[str]:
    with pytest.raises(TopologyError) as e:
        loads(yaml.safe_dump(d))
    return [str(p) for p in e.value.problems]


def test_execute_api_endpoint_reaches_api_gateways_own_service(lab: Lab) -> None:
    ep = lab.vpcs["corp"].endpoints["api-ep"]
    assert ep.service == EXECUTE_API and ep.service_ref == ("apigw", EXECUTE_API)
    apigw = lab.vpcs["apigw"]
    lb, tg = apigw.load_balancers[EXECUTE_API], apigw.target_groups[EXECUTE_API]
    es = apigw.endpoint_services[EXECUTE_API]
    assert lb.managed_by == tg.managed_by == es.managed_by == OWNER
    # a node in each AZ the endpoint is in; one target: the front end, PROXY v2 on
    assert [apigw.subnets[s].az for s in lb.subnets] == ["us-east-1a", "us-east-1b"]
    assert tg.targets == [FRONT_END_PRIVATE_IP] and tg.port == 443 and tg.proxy_protocol_v2
    assert es.load_balancers == [EXECUTE_API] and not es.acceptance_required
    enis = {(e.vpc, e.kind, e.owner, e.az) for e in lab.hyperplane_enis()}
    assert ("apigw", "nlb", EXECUTE_API, "us-east-1b") in enis
    assert ("corp", "vpce", "api-ep", "us-east-1b") in enis


def test_the_file_round_trips_without_what_api_gateway_made(lab: Lab) -> None:
    out = lab.to_dict()
    assert "apigw" not in out["vpcs"]
    assert out["vpcs"]["corp"]["endpoints"]["api-ep"]["service"] == EXECUTE_API
    api = out["api_gateway"]["apis"]["orders"]
    assert api["endpoint"] == "PRIVATE" and api["vpc_endpoints"] == ["corp/api-ep"]
    assert Lab.from_dict(out).to_dict() == out


def test_the_python_builder_makes_the_service_side() -> None:
    whole = doc()
    for key in ("vpc_endpoints", "policy"):          # they name the endpoint
        _api(whole).pop(key)
    d = copy.deepcopy(whole)
    d["vpcs"]["corp"].pop("endpoints")
    built = loads(yaml.safe_dump(d))
    built.add_execute_api_endpoint("corp", "api-ep", ["a", "b"], ["ep-443"], private_dns=True)
    assert built.to_dict() == loads(yaml.safe_dump(whole)).to_dict()
    assert built.vpcs["apigw"].load_balancers[EXECUTE_API].subnets == ["us-east-1a", "us-east-1b"]
    # an execute-api endpoint made the plain way lacks API Gateway's side: named
    plain = loads(yaml.safe_dump(d))
    plain.vpcs["corp"].add_endpoint("api-ep", EXECUTE_API, ["a"])
    with pytest.raises(TopologyError, match="add_execute_api_endpoint"):
        plain.check()


def test_front_end_config_knows_endpoints_by_id_and_resolves_the_policy(lab: Lab) -> None:
    cfg = compiled.frontend_config(lab, "/run/vpclab/tpriv")
    assert {"address": FRONT_END_PRIVATE_IP, "port": 443, "tls": True,
            "proxy_protocol": True} in cfg["listeners"]
    vpce = endpoint_id("tpriv", "corp", "api-ep")
    rec = cfg["vpc_endpoints"][vpce]
    assert rec["vpc_id"] == vpc_id("tpriv", "corp") and rec["private_dns"]
    assert all(n.endswith(".execute-api.us-east-1.vpce.amazonaws.com") for n in rec["dns_names"])
    assert len(rec["dns_names"]) == 3                 # regional and one zonal per AZ
    api = cfg["apis"][0]
    aid = api_id("tpriv", "orders")
    assert api["endpoint"] == "PRIVATE" and api["vpc_endpoints"] == [vpce]
    deny = api["policy"]["Statement"][1]
    assert deny["Condition"]["StringNotEquals"] == {"aws:SourceVpce": vpce,
                                                     "aws:SourceVpc": [vpc_id("tpriv", "corp")]}
    arn = f"arn:aws:execute-api:us-east-1:{cfg['account_id']}:{aid}/*"
    assert deny["Resource"] == arn and api["policy"]["Statement"][0]["Resource"] == arn
    # the policy as stored admits corp's endpoint and denies another
    call = {"resource": f"arn:aws:execute-api:us-east-1:{cfg['account_id']}:{aid}/prod/GET/x",
            "aws:SourceVpc": vpc_id("tpriv", "corp")}
    assert resource_policy.evaluate(api["policy"], {**call, "aws:SourceVpce": vpce}) == "allow"
    # the Deny's two keys are ANDed: another endpoint in another VPC is denied
    assert resource_policy.evaluate(api["policy"], {**call, "aws:SourceVpce": "vpce-0",
                                                    "aws:SourceVpc": "vpc-0"}) == "explicit_deny"
    assert resource_policy.evaluate(api["policy"], {**call, "aws:SourceVpce": "vpce-0"}) \
        == "allow"


def test_a_lab_without_execute_api_endpoints_has_no_private_listener() -> None:
    d = doc()
    d["vpcs"]["corp"].pop("endpoints")
    api = d["api_gateway"]["apis"]["orders"]
    for key in ("endpoint", "vpc_endpoints", "policy"):
        api.pop(key)
    cfg = compiled.frontend_config(loads(yaml.safe_dump(d)), "/r")
    assert len(cfg["listeners"]) == 2 and cfg["vpc_endpoints"] == {}
    assert cfg["apis"][0]["endpoint"] == "REGIONAL" and cfg["apis"][0]["policy"] is None


def test_names_the_vpc_resolvers_answer(lab: Lab) -> None:
    ips = [e.ip for e in lab.hyperplane_enis() if (e.vpc, e.owner) == ("corp", "api-ep")]
    # private DNS: API Gateway's whole domain, in the endpoint's VPC only
    assert compiled.resolver_args(lab) == {"corp": [
        f"--address=/execute-api.us-east-1.amazonaws.com/{ip}" for ip in ips]}
    name = (f"{api_id('tpriv', 'orders')}-{endpoint_id('tpriv', 'corp', 'api-ep')}"
            f".execute-api.us-east-1.amazonaws.com")
    records = compiled.dns_records(lab)
    assert [ip for n, ip in records["corp"] if n == name] == ips
    assert [ip for n, ip in records["shop"] if n == name] == ips      # public DNS on AWS


def _api(d: dict) -> dict:
    return d["api_gateway"]["apis"]["orders"]


@pytest.mark.parametrize("change, path, words", [
    (lambda d: _api(d).update(type="HTTP", stages=["$default"], routes={}), "orders.endpoint",
     "only REST APIs can be PRIVATE"),
    (lambda d: _api(d).update(vpc_endpoints=["corp/nope"]), "orders.vpc_endpoints[0]",
     "no endpoint 'corp/nope'"),
    (lambda d: _api(d).pop("endpoint"), "orders.vpc_endpoints", "for PRIVATE APIs"),
    (lambda d: _api(d)["policy"]["Statement"][1]["Condition"]["StringNotEquals"].update(
        {"aws:SourceVpce": "corp/other-ep"}), "Condition.StringNotEquals.aws:SourceVpce",
     "no endpoint 'corp/other-ep'"),
    (lambda d: _api(d)["policy"]["Statement"][1]["Condition"]["StringNotEquals"].update(
        {"aws:SourceVpc": ["nowhere"]}), "Condition.StringNotEquals.aws:SourceVpc",
     "no VPC 'nowhere'"),
    (lambda d: _api(d)["policy"]["Statement"][0].update(Effect="Maybe"), "orders.policy",
     "Maybe"),
    (lambda d: _api(d)["policy"]["Statement"].extend(
        [{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke",
          "Resource": f"execute-api:/prod/GET/{'x' * 100}/{k}"} for k in range(80)]),
     "orders.policy", "at most 8192"),
    (lambda d: d["vpcs"]["corp"]["endpoints"].update(
        {"api-ep2": {"service": "execute-api", "subnets": ["a"], "private_dns": True}}),
     "endpoints.api-ep2.private_dns", "private DNS can be on for one endpoint"),
    (lambda d: d["vpcs"]["corp"]["endpoints"]["api-ep"].update(service="corp/execute-api"),
     "endpoints.api-ep.service", "no endpoint service 'execute-api'"),
])
def test_every_mistake_is_named_by_its_field(change, path, words) -> None:
    d = copy.deepcopy(doc())
    change(d)
    found = problems_of(d)
    assert any(path in p and words in p for p in found), found
