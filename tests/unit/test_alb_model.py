"""Application Load Balancers in the topology model: the issue's section accepted as
written and round-tripped, nodes as managed instances (addresses after the instances',
members of the ALB's security groups, never written back), the node configuration of
notes/alb-config.md, every AWS limit named by its field path, and HTTP-API routes to ALB
listeners and Cloud Map services (no root: pure functions of the model)."""
from __future__ import annotations

import copy

import pytest
import yaml

from dataplane.compile import alb as compiled
from dataplane.compile import api_gateway as apigw_compiled
from dataplane.lab.plan import plan as make_plan
from dataplane.model import Lab, TopologyError, loads
from dataplane.model.alb import node_name
from dataplane.model.api_gateway import CloudMapTarget, LbListener, parse_target

ALB_FILE = """
lab: talb
vpcs:
  shop:
    cidr: 10.1.0.0/16
    subnets:
      a: {cidr: 10.1.1.0/24, az: us-east-1a}
      b: {cidr: 10.1.2.0/24, az: us-east-1b}
    security_groups:
      alb-sg: {ingress: [{protocol: tcp, ports: 80, source: 10.1.0.0/16}]}
      web-sg: {ingress: [{protocol: tcp, ports: 8080, source: sg:alb-sg}]}
    instances:
      client: {subnet: a}
      web1: {subnet: a, security_groups: [web-sg]}
      web2: {subnet: b, security_groups: [web-sg]}
    load_balancers:
      web-alb:
        type: application
        subnets: [a, b]
        security_groups: [alb-sg]
        idle_timeout: 60
        listeners:
          - port: 80
            protocol: HTTP
            default: {forward: web-tg}
            rules:
              - {priority: 10, path: ["/api/*"], forward: {api-tg: 3, canary-tg: 1}}
              - {priority: 20, host: ["admin.*"], fixed_response: {status: 403, body: "no"}}
              - {priority: 30, header: {x-debug: ["1"]}, method: [POST], redirect: {path: "/debug", status: 301}}
    target_groups:
      web-tg: {protocol: HTTP, port: 8080, targets: [web1, web2],
               health_check: {path: /healthz, interval: 5, healthy_threshold: 2}}
      api-tg: {protocol: HTTP, port: 8080, targets: [web1], algorithm: least_outstanding_requests}
      canary-tg: {protocol: HTTP, port: 8081, targets: ["10.1.2.9"]}
"""


@pytest.fixture
def lab() -> Lab:
    return loads(ALB_FILE)


def doc() -> dict:
    return yaml.safe_load(ALB_FILE)


def problems_of(d: dict) -> list[str]:
    with pytest.raises(TopologyError) as e:
        loads(yaml.safe_dump(d))
    return [str(p) for p in e.value.problems]


def alb_doc(d: dict) -> dict:
    return d["vpcs"]["shop"]["load_balancers"]["web-alb"]


def rule(d: dict, k: int) -> dict:
    return alb_doc(d)["listeners"][0]["rules"][k]


def test_the_issue_section_is_accepted_and_round_trips(lab: Lab) -> None:
    vpc = lab.vpcs["shop"]
    alb = vpc.albs["web-alb"]
    assert alb.subnets == ["a", "b"] and alb.security_groups == ["alb-sg"]
    assert [r.priority for r in alb.listeners[0].rules] == [10, 20, 30]
    assert alb.listeners[0].rules[0].action.forward == {"api-tg": 3, "canary-tg": 1}
    assert set(vpc.http_target_groups) == {"web-tg", "api-tg", "canary-tg"}
    assert vpc.load_balancers == {} and vpc.target_groups == {}     # none are an NLB's
    out = lab.to_dict()
    assert out["vpcs"]["shop"]["load_balancers"]["web-alb"]["listeners"][0]["rules"][2] == {
        "priority": 30, "header": {"x-debug": ["1"]}, "method": ["POST"],
        "redirect": {"path": "/debug", "status": 301}}
    assert set(out["vpcs"]["shop"]["instances"]) == {"client", "web1", "web2"}
    assert Lab.from_dict(out) == lab


def test_nodes_are_managed_instances_after_the_users_with_the_albs_groups(lab: Lab) -> None:
    vpc = lab.vpcs["shop"]
    nodes = [vpc.instances[node_name("web-alb", s)] for s in ("a", "b")]
    assert all(n.managed_by == "ALB web-alb" and n.security_groups == ["alb-sg"] for n in nodes)
    ips = lab.addresses()
    assert ips[("shop", "client")] == "10.1.1.4" and ips[("shop", "web1")] == "10.1.1.5"
    assert ips[("shop", "web-alb.a")] == "10.1.1.6" and ips[("shop", "web-alb.b")] == "10.1.2.5"
    assert lab.sg_members(vpc)["alb-sg"] == ["10.1.1.6", "10.1.2.5"]
    planned = {i.name: i for i in make_plan(lab)[0].instances}
    node = planned["web-alb.a"]
    assert node.netns == "talb.shop.web-alb.a" and node.managed_by == "ALB web-alb"
    assert len(node.eni) == 15 and node.eni.startswith("eni-")


def test_node_config_follows_the_contract(lab: Lab) -> None:
    vpc = lab.vpcs["shop"]
    cfg = compiled.node_config(lab, "shop", vpc.albs["web-alb"], "b", "/run/vpclab/talb")
    assert cfg["node"] == {"az": "us-east-1b", "subnet": "b", "address": "10.1.2.5"}
    assert cfg["dns_name"].startswith("internal-web-alb-")
    assert cfg["dns_name"].endswith(".us-east-1.elb.amazonaws.com")
    assert cfg["arn"].startswith(f"arn:aws:elasticloadbalancing:us-east-1:{cfg['account_id']}"
                                 f":loadbalancer/app/web-alb/")
    listener = cfg["listeners"][0]
    assert listener["rules"][0]["action"] == {"type": "forward", "target_groups": [
        {"name": "api-tg", "weight": 3}, {"name": "canary-tg", "weight": 1}]}
    assert listener["rules"][1]["action"] == {"type": "fixed-response", "status": 403,
                                              "content_type": "text/plain", "body": "no"}
    assert listener["rules"][2]["conditions"] == [
        {"field": "http-header", "name": "x-debug", "values": ["1"]},
        {"field": "http-request-method", "values": ["POST"]}]
    assert listener["rules"][2]["action"]["path"] == "/debug"
    assert listener["rules"][2]["action"]["host"] == "#{host}"
    web = cfg["target_groups"]["web-tg"]
    assert web["targets"] == [{"id": "web1", "ip": "10.1.1.5", "port": 8080},
                              {"id": "web2", "ip": "10.1.2.4", "port": 8080}]
    # AWS's defaults under the file's values; a timeout left out stays below the interval
    assert web["health_check"] == {"enabled": True, "protocol": "HTTP", "path": "/healthz",
                                   "interval": 5, "timeout": 4, "healthy_threshold": 2,
                                   "unhealthy_threshold": 2, "matcher": "200", "port": 8080}
    assert cfg["target_groups"]["api-tg"]["algorithm"] == "least_outstanding_requests"
    assert cfg["target_groups"]["canary-tg"]["targets"] == [
        {"id": "10.1.2.9", "ip": "10.1.2.9", "port": 8081}]


def test_dns_name_answers_every_node(lab: Lab) -> None:
    (name, ip1), (name2, ip2) = compiled.dns_records(lab)["shop"]
    assert name == name2 and {ip1, ip2} == {"10.1.1.6", "10.1.2.5"}


def test_rules_sorted_by_priority_in_the_config(lab: Lab) -> None:
    d = doc()
    alb_doc(d)["listeners"][0]["rules"].reverse()
    cfg = compiled.node_config(loads(yaml.safe_dump(d)), "shop",
                               loads(yaml.safe_dump(d)).vpcs["shop"].albs["web-alb"], "a", "/r")
    assert [r["priority"] for r in cfg["listeners"][0]["rules"]] == [10, 20, 30]


@pytest.mark.parametrize("change, path, words", [
    (lambda d: rule(d, 1).update(priority=10), "rules[1].priority", "taken by rules[0]"),
    (lambda d: rule(d, 0).update(path=["/a", "/b", "/c", "/d"]), "rules[0].path", "at most 3"),
    (lambda d: rule(d, 0).update(host=["a.example.com"], method=["GET", "PUT"],
                                 header={"x-a": ["1", "2"]}), "rules[0]", "6 match evaluations"),
    (lambda d: rule(d, 0).update(path=["/*/*/*"], host=["*.*.*"]), "rules[0]", "6 wildcards"),
    (lambda d: rule(d, 1).update(host=["localhost"]), "rules[1].host[0]", "at least one '.'"),
    (lambda d: rule(d, 1).update(host=["a.b1"]), "rules[1].host[0]", "only letters"),
    (lambda d: rule(d, 1).update(host=["a_b.com"]), "rules[1].host[0]", "A-Z a-z 0-9"),
    (lambda d: rule(d, 0).update(path=["api/*"]), "rules[0].path[0]", "starts with /"),
    (lambda d: rule(d, 0).update(path=["/a b"]), "rules[0].path[0]", "visible ASCII"),
    (lambda d: rule(d, 2).update(method=["post"]), "rules[2].method[0]", "case-sensitive"),
    (lambda d: rule(d, 2).update(source_ip=["255.255.255.255/32"]), "rules[2].source_ip[0]",
     "not accepted"),
    (lambda d: rule(d, 2).update(source_ip=["10.1.0.1/16"]), "rules[2].source_ip[0]",
     "not a CIDR"),
    (lambda d: rule(d, 2).update(header={"x d": ["1"]}), "rules[2].header.x d", "header name"),
    (lambda d: rule(d, 0).update(forward={"api-tg": 0, "canary-tg": 0}), "rules[0].forward",
     "every weight is 0"),
    (lambda d: rule(d, 0).update(forward={"nope-tg": 1}), "rules[0].forward",
     "unknown target group 'nope-tg'"),
    (lambda d: rule(d, 0).update(forward={"a": 1, "b": 1, "c": 1, "d": 1, "e": 1, "f": 1}),
     "rules[0].forward", "at most 5"),
    (lambda d: rule(d, 0).update(forward={"api-tg": 1000}), "rules[0].forward", "0-999"),
    (lambda d: rule(d, 1)["fixed_response"].update(status=302), "rules[1].fixed_response.status",
     "2XX, 4XX or 5XX"),
    (lambda d: rule(d, 1)["fixed_response"].update(body="x" * 1025),
     "rules[1].fixed_response.body", "1,024"),
    (lambda d: rule(d, 2).update(redirect={"status": 301}), "rules[2].redirect",
     "redirect to itself"),
    (lambda d: rule(d, 2).update(redirect={"status": 307, "path": "/x"}),
     "rules[2].redirect.status", "not one of"),
    (lambda d: rule(d, 2).update(forward="web-tg"), "rules[2]", "exactly one action"),
    (lambda d: rule(d, 0).update(priority=50001), "rules[0].priority", "out of range"),
    (lambda d: alb_doc(d).update(subnets=["a"]), "web-alb.subnets", "at least two"),
    (lambda d: alb_doc(d).update(idle_timeout=4001), "web-alb.idle_timeout", "out of range"),
    (lambda d: alb_doc(d).update(security_groups=["nope"]), "web-alb.security_groups[0]",
     "unknown security group"),
    (lambda d: alb_doc(d)["listeners"][0].pop("default"), "listeners[0].default",
     "required key is missing"),
    (lambda d: d["vpcs"]["shop"]["target_groups"]["web-tg"].update(protocol="HTTPS"),
     "target_groups.web-tg.protocol", "HTTPS target groups are not carried"),
    (lambda d: d["vpcs"]["shop"]["target_groups"]["web-tg"]["health_check"].update(timeout=5),
     "web-tg.health_check.timeout", "below the interval"),
    (lambda d: d["vpcs"]["shop"]["target_groups"]["web-tg"]["health_check"].update(
        matcher="200-502"), "web-tg.health_check.matcher", "200-499"),
    (lambda d: d["vpcs"]["shop"]["target_groups"]["web-tg"].update(algorithm="random"),
     "web-tg.algorithm", "not one of"),
])
def test_every_limit_is_named_by_its_field(change, path, words) -> None:
    d = doc()
    change(d)
    found = problems_of(d)
    assert any(path in p and words in p for p in found), found


def test_nlb_and_alb_groups_do_not_mix() -> None:
    d = doc()
    shop = d["vpcs"]["shop"]
    shop["target_groups"]["tcp-tg"] = {"protocol": "TCP", "port": 80, "targets": ["web1"]}
    shop["load_balancers"]["web-nlb"] = {"type": "network", "subnets": ["a"], "listeners": [
        {"port": 80, "target_group": "web-tg"}]}
    rule(d, 0)["forward"] = "tcp-tg"
    shop["endpoint_services"] = {"svc": {"load_balancers": ["web-alb"]}}
    found = problems_of(d)
    assert any("web-nlb.listeners[0].target_group" in p and "HTTP target group" in p
               for p in found), found
    assert any("rules[0].forward" in p and "TCP target group" in p for p in found), found
    assert any("endpoint_services.svc.load_balancers[0]" in p and "backed by NLBs" in p
               for p in found), found


def test_one_name_for_an_nlb_and_an_alb_is_refused_from_python(lab: Lab) -> None:
    with pytest.raises(TopologyError, match="duplicate load balancer name"):
        lab.vpcs["shop"].add_load_balancer("web-alb", ["a"], [])
    with pytest.raises(TopologyError, match="duplicate target group name"):
        lab.vpcs["shop"].add_target_group("web-tg", 80)
    lab.vpcs["shop"].add_load_balancer("tcp-nlb", ["a"], [])
    lab.vpcs["shop"].add_target_group("tcp-tg", 80)
    with pytest.raises(TopologyError, match="duplicate load balancer name"):
        lab.vpcs["shop"].add_application_load_balancer("tcp-nlb", ["a"], [])
    with pytest.raises(TopologyError, match="duplicate target group name"):
        lab.vpcs["shop"].add_http_target_group("tcp-tg", 80)


def test_python_builder_gives_the_same_lab(lab: Lab) -> None:
    d = doc()
    shop = d["vpcs"]["shop"]
    albs, tgs = shop.pop("load_balancers"), shop.pop("target_groups")
    built = loads(yaml.safe_dump(d))
    for n, tg in tgs.items():
        built.vpcs["shop"].add_http_target_group(n, tg["port"], tg["targets"],
                                                 tg.get("algorithm", "round_robin"),
                                                 tg.get("health_check"))
    a = albs["web-alb"]
    built.vpcs["shop"].add_application_load_balancer("web-alb", a["subnets"], a["listeners"],
                                                     a["security_groups"])
    assert built.to_dict() == lab.to_dict()
    with pytest.raises(TopologyError, match="unknown subnet 'z'"):
        built.vpcs["shop"].add_application_load_balancer("other", ["a", "z"], [])
    assert "other" not in built.vpcs["shop"].albs          # nothing half-made


# -- HTTP-API routes to an ALB listener and to a Cloud Map service ---------------------------
GATEWAY = """
api_gateway:
  vpc_links:
    app-link: {vpc: shop, subnets: [a, b]}
  apis:
    web:
      type: HTTP
      stages: [$default]
      routes:
        "ANY /{proxy+}": {vpc_link: app-link, target: shop/web-alb:80}
"""


def test_a_route_to_an_alb_listener_compiles_to_its_nodes() -> None:
    lab = loads(ALB_FILE + GATEWAY)
    t = parse_target("shop/web-alb:80")
    assert t == LbListener("shop", "web-alb", 80) and t.kind_of(lab) == "alb"
    cfg = apigw_compiled.frontend_config(lab, "/run/vpclab/talb")
    route = cfg["apis"][0]["routes"][0]
    assert route["host"] == compiled.dns_name(lab, "shop", "web-alb")
    assert route["port"] == 80 and route["addresses"] == ["10.1.1.6", "10.1.2.5"]


def test_a_route_to_a_missing_or_https_alb_listener_is_refused() -> None:
    found = problems_of(yaml.safe_load(ALB_FILE + GATEWAY.replace("web-alb:80", "web-alb:81")))
    assert any("has no listener on 81" in p for p in found), found
    d = yaml.safe_load(ALB_FILE + GATEWAY)
    alb_doc(d)["listeners"][0]["protocol"] = "HTTPS"
    found = problems_of(d)
    assert any("is an HTTPS listener" in p for p in found), found


CLOUD_MAP = """
cloud_map:
  namespaces:
    shop.local: {type: DNS_PRIVATE, vpc: shop}
  services:
    inventory:
      namespace: shop.local
      instances:
        i-blue: {instance: shop/web1, port: 8080, attributes: {color: blue}}
"""


def test_cloud_map_targets_parse_with_their_filters() -> None:
    t = parse_target("cloudmap:shop.local/inventory?color=blue&env=prod")
    assert t == CloudMapTarget("shop.local", "inventory", (("color", "blue"), ("env", "prod")))
    assert str(t) == "cloudmap:shop.local/inventory?color=blue&env=prod"


def _cloud_map_gateway(target: str) -> str:
    return GATEWAY.replace("shop/web-alb:80", target)


def test_a_cloud_map_route_is_checked_against_the_file(monkeypatch) -> None:
    d = yaml.safe_load(ALB_FILE + _cloud_map_gateway("cloudmap:shop.local/nope"))
    d.update(yaml.safe_load(CLOUD_MAP))
    found = [p for p in _problems_without_cloud_map_kind(d) if "routes" in p]
    assert any("no Cloud Map service 'nope' in namespace 'shop.local'" in p for p in found), found
    d = yaml.safe_load(ALB_FILE + _cloud_map_gateway("cloudmap:shop.local/inventory"))
    d.update(copy.deepcopy(yaml.safe_load(CLOUD_MAP)))
    d["cloud_map"]["services"]["inventory"]["instances"]["i-blue"].pop("port")
    d["cloud_map"]["services"]["inventory"]["instances"]["i-far"] = {"ip": "10.9.0.5",
                                                                     "port": 80}
    found = [p for p in _problems_without_cloud_map_kind(d) if "routes" in p]
    assert any("i-blue" in p and "has no port" in p for p in found), found
    assert any("i-far" in p and "outside VPC shop" in p for p in found), found


def _problems_without_cloud_map_kind(d: dict) -> list[str]:
    """The API Gateway kind's own check of a document (whatever the Cloud Map kind says
    of its section)."""
    from dataplane.model import api_gateway
    return [str(p) for p in api_gateway.check(d)]
