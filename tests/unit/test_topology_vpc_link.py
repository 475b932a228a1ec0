"""HTTP-API VPC links in the topology model: the issue's section accepted as written,
the Python builder, every mistake named by its field path, stable IDs, link ENI
addresses after the instances' and PrivateLink's ENIs, security-group membership, and
the forwarder-port limit (no root: pure functions of the model)."""
from __future__ import annotations

import re

import pytest

from dataplane import kinds
from dataplane.lab import plan
from dataplane.model import Lab, TopologyError, loads
from dataplane.model.constants import MAX_FORWARDER_PORTS
from dataplane.model.vpc_link import VpcLink, vpc_link_id

LINK_FILE = """
lab: gw
vpcs:
  app:
    cidr: 10.0.0.0/16
    subnets:
      a: {cidr: 10.0.1.0/24, az: us-east-1a}
      b: {cidr: 10.0.2.0/24, az: us-east-1b}
      a2: {cidr: 10.0.3.0/24, az: us-east-1a}
    security_groups:
      link-sg: {ingress: [], egress: [{protocol: tcp, ports: 8080, destination: 10.0.0.0/16}]}
      web-sg: {ingress: [{protocol: tcp, ports: 8080, source: sg:link-sg}]}
    instances:
      web1: {subnet: a, security_groups: [web-sg]}
      web2: {subnet: a, security_groups: [web-sg]}
  other:
    cidr: 10.0.0.0/16
    subnets:
      c: {cidr: 10.0.1.0/24, az: us-east-1a}
api_gateway:
  vpc_links:
    app-link:                         # an HTTP-API (V2) VPC link
      vpc: app
      subnets: [a, b]                 # one ENI per subnet
      security_groups: [link-sg]      # the VPC's default group when omitted
"""


@pytest.fixture
def lab() -> Lab:
    return loads(LINK_FILE)


def problems(text: str) -> list[str]:
    with pytest.raises(TopologyError) as e:
        loads(text)
    return [str(p) for p in e.value.problems]


def with_link(link: str) -> str:
    """LINK_FILE with its link replaced by the flow mapping `link`."""
    head = LINK_FILE.split("api_gateway:")[0]
    return head + f"api_gateway:\n  vpc_links:\n    app-link: {link}\n"


def test_the_issue_section_is_accepted_and_round_trips(lab: Lab) -> None:
    assert lab.vpc_links == {"app-link": VpcLink("app-link", "app", ["a", "b"], ["link-sg"])}
    doc = lab.to_dict()
    assert doc["api_gateway"] == {"vpc_links": {"app-link": {
        "vpc": "app", "subnets": ["a", "b"], "security_groups": ["link-sg"]}}}
    assert Lab.from_dict(doc) == lab


def test_python_builder_gives_the_same_lab(lab: Lab) -> None:
    built = Lab("gw")
    for name, vpc in lab.vpcs.items():
        v = built.add_vpc(name, vpc.cidr)
        for s in vpc.subnets.values():
            v.add_subnet(s.name, s.cidr, s.az)
        for g in vpc.security_groups.values():
            v.add_security_group(g.name, g.ingress, g.egress)
        for i in vpc.instances.values():
            v.add_instance(i.name, i.subnet, security_groups=i.security_groups)
    app = built.vpcs["app"]
    built.add_vpc_link("app-link", vpc=app, subnets=[app.subnets["a"], "b"],
                       security_groups=["link-sg"])
    assert built.check() == lab
    assert Lab.from_dict(built.to_dict()) == built
    with pytest.raises(TopologyError, match=r"api_gateway.vpc_links.app-link: duplicate VPC link name"):
        built.add_vpc_link("app-link", vpc="app", subnets=["a"])


def test_no_api_gateway_section_leaves_documents_as_they_were() -> None:
    text = LINK_FILE.split("api_gateway:")[0]
    lab = loads(text)
    assert lab.vpc_links == {} and "api_gateway" not in lab.to_dict()


def test_ids_are_stable_and_in_aws_formats(lab: Lab) -> None:
    link_id = vpc_link_id("gw", "app-link")
    assert re.fullmatch(r"vpclink-[0-9a-f]{17}", link_id)
    assert link_id == vpc_link_id("gw", "app-link") != vpc_link_id("gw", "other-link")
    assert vpc_link_id("gw2", "app-link") != link_id
    enis = [e for e in lab.hyperplane_enis() if e.kind == "vpclink"]
    assert [(e.owner, e.subnet, e.az) for e in enis] == [("app-link", "a", "us-east-1a"),
                                                         ("app-link", "b", "us-east-1b")]
    for e in enis:
        assert re.fullmatch(r"eni-[0-9a-f]{17}", e.eni_id) and e.ifname == e.eni_id[:15]
    again = [e.eni_id for e in loads(LINK_FILE).hyperplane_enis()]
    assert again == [e.eni_id for e in lab.hyperplane_enis()]
    assert len(set(again)) == len(again)


def test_link_enis_take_the_lowest_free_address_after_instances(lab: Lab) -> None:
    addresses = lab.addresses()
    assert addresses[("app", "web1")] == "10.0.1.4" and addresses[("app", "web2")] == "10.0.1.5"
    ips = {e.subnet: e.ip for e in lab.hyperplane_enis() if e.kind == "vpclink"}
    assert ips == {"a": "10.0.1.6", "b": "10.0.2.4"}


def test_link_enis_come_after_nlb_and_endpoint_enis() -> None:
    text = LINK_FILE.replace("  other:", """    load_balancers:
      nlb: {type: network, subnets: [a], listeners: [{port: 80, protocol: TCP, target_group: tg}]}
    target_groups:
      tg: {protocol: TCP, port: 8080, targets: [web1]}
    endpoint_services:
      svc: {load_balancers: [nlb], acceptance_required: false}
    endpoints:
      ep: {service: app/svc, subnets: [a]}
  other:""")
    enis = loads(text).hyperplane_enis()
    in_a = [(e.kind, e.ip) for e in enis if e.subnet == "a"]
    assert in_a == [("nlb", "10.0.1.6"), ("vpce", "10.0.1.7"), ("vpclink", "10.0.1.8")]


def test_link_enis_are_members_of_their_groups(lab: Lab) -> None:
    app = lab.vpcs["app"]
    members = lab.sg_members(app)
    assert members["link-sg"] == ["10.0.1.6", "10.0.2.4"]
    assert members["web-sg"] == ["10.0.1.4", "10.0.1.5"]
    # ... in the VPC's nftables sets too, so web-sg's `sg:link-sg` rule admits them
    (app_plan,) = [p for p in plan(lab) if p.name == "app"]
    assert app_plan.groups["link-sg"] == ["10.0.1.6", "10.0.2.4"]


def test_a_link_without_groups_is_in_the_default_group() -> None:
    lab = loads(with_link("{vpc: app, subnets: [b]}"))
    (eni,) = [e for e in lab.hyperplane_enis() if e.kind == "vpclink"]
    assert eni.security_groups == ["default"]
    assert lab.sg_members(lab.vpcs["app"])["default"] == [eni.ip]
    assert "security_groups" not in lab.to_dict()["api_gateway"]["vpc_links"]["app-link"]


@pytest.mark.parametrize("link,expected", [
    ("{vpc: nope, subnets: [a]}",
     "api_gateway.vpc_links.app-link.vpc: unknown VPC 'nope' (VPCs: app, other)"),
    ("{vpc: app, subnets: [a, zz]}",
     "api_gateway.vpc_links.app-link.subnets[1]: unknown subnet 'zz' in VPC app (subnets: a, b, a2)"),
    ("{vpc: app, subnets: [a, c]}",        # c is a subnet of VPC other, not of app
     "api_gateway.vpc_links.app-link.subnets[1]: unknown subnet 'c' in VPC app (subnets: a, b, a2)"),
    ("{vpc: app, subnets: [a, a2]}",
     "api_gateway.vpc_links.app-link.subnets[1]: subnets a and a2 are both in us-east-1a: "
     "a VPC link takes at most one subnet per availability zone"),
    ("{vpc: app, subnets: [a], security_groups: [link-sg, nope]}",
     "api_gateway.vpc_links.app-link.security_groups[1]: unknown security group 'nope' in VPC app"),
    ("{vpc: app, subnets: []}",
     "api_gateway.vpc_links.app-link.subnets: must not be empty"),
    ("{vpc: app, subnets: [a], stage: x}",
     "api_gateway.vpc_links.app-link.stage: unknown key (allowed: security_groups, subnets, target, type, vpc)"),
    ("{subnets: [a]}",
     "api_gateway.vpc_links.app-link.vpc: required key is missing (an HTTP-API VPC link names its vpc and subnets)"),
])
def test_each_mistake_is_named_by_its_field(link: str, expected: str) -> None:
    assert problems(with_link(link)) == [expected]


def test_more_than_ten_subnets_is_refused() -> None:
    subnets = "\n".join(f"      s{k}: {{cidr: 10.0.{10 + k}.0/24, az: us-east-1{'abcdef'[k % 6]}}}"
                        for k in range(11))
    text = with_link("{vpc: app, subnets: [%s]}" % ", ".join(f"s{k}" for k in range(11)))
    text = text.replace("      a2: {cidr: 10.0.3.0/24, az: us-east-1a}\n",
                        "      a2: {cidr: 10.0.3.0/24, az: us-east-1a}\n" + subnets + "\n")
    found = problems(text)
    assert "api_gateway.vpc_links.app-link.subnets: 11 subnets; a VPC link takes at most 10 " \
           "(AWS quota)" in found


def test_the_registry_holds_the_kind_in_one_line() -> None:
    (kind,) = [k for k in kinds.KINDS if k.name == "vpc_link"]
    assert (kind.model, kind.compile, kind.realise) == (
        "dataplane.model.vpc_link", "dataplane.compile.vpc_link", "dataplane.lab.realise_vpc_link")
    assert [k.name for k in kinds.KINDS].index("privatelink") < [k.name for k in kinds.KINDS].index("vpc_link")


def test_link_enis_and_attachments_count_toward_the_forwarder_ports() -> None:
    # Each link over 4 subnets takes 5 forwarder ports: 4 ENIs and its attachment on API
    # Gateway's side; one port more is the health port's.
    per_link = 5
    n_links = (MAX_FORWARDER_PORTS - 1) // per_link + 1
    text = LINK_FILE.split("api_gateway:")[0].replace(
        "      a2: {cidr: 10.0.3.0/24, az: us-east-1a}\n",
        "      a2: {cidr: 10.0.3.0/24, az: us-east-1a}\n"
        "      c: {cidr: 10.0.4.0/24, az: us-east-1c}\n      d: {cidr: 10.0.5.0/24, az: us-east-1d}\n")
    links = "".join(f"    l{k}: {{vpc: app, subnets: [a, b, c, d]}}\n" for k in range(n_links))
    found = problems(text + "api_gateway:\n  vpc_links:\n" + links)
    assert found == [f"the lab asks for {4 * n_links} Hyperplane ENIs (NLB nodes, endpoints, "
                     f"VPC links) and {n_links} VPC link attachments; the forwarder has "
                     f"{MAX_FORWARDER_PORTS} ports, one for health checks, so at most "
                     f"{MAX_FORWARDER_PORTS - 1} together"]
    fits = "".join(f"    l{k}: {{vpc: app, subnets: [a, b, c, d]}}\n" for k in range(n_links - 1))
    assert len(loads(text + "api_gateway:\n  vpc_links:\n" + fits).hyperplane_enis()) == 4 * (n_links - 1)


def test_a_full_subnet_is_named_for_the_link_eni() -> None:
    text = LINK_FILE.replace("b: {cidr: 10.0.2.0/24, az: us-east-1b}",
                             "b: {cidr: 10.0.2.0/28, az: us-east-1b}")
    text = text.replace("      web2: {subnet: a, security_groups: [web-sg]}\n",
                        "".join(f"      w{k}: {{subnet: b}}\n" for k in range(11)))
    assert problems(text) == ["vpcs.app.subnets.b: no free address for the vpclink ENI of app-link"]
