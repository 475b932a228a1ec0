"""HTTP-API VPC links compiled into the forwarder spec (compile/vpc_link.py), from
examples/vpc-link.yaml: attachment ports, the ENIs' egress rules, one vpc_nat service per
link with its routes by AZ, and what `vpclab validate` says of the file."""
from __future__ import annotations

import pathlib

from dataplane.cli import main as cli
from dataplane.compile import hyperplane, vpc_link
from dataplane.compile.spec import LinkEni, LinkRoute, SecurityGroups, SgRule, VpcNatService
from dataplane.model import load
from dataplane.model.vpc_link import vpc_link_id

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "vpc-link.yaml"


def compiled():
    lab = load(EXAMPLE)
    ports = hyperplane.ports(lab)
    n = len(ports) + 1 + len(lab.vpc_links)
    macs = {i: (f"02:00:00:00:01:{i:02x}", f"02:00:00:00:02:{i:02x}") for i in range(n)}
    return lab, ports, hyperplane.compile_spec(lab, ports, macs, {})


def test_each_link_gets_an_attachment_port_after_the_health_port() -> None:
    lab, ports, spec = compiled()
    assert [(p.eni.vpc, p.eni.owner, p.eni.subnet, p.eni.ip) for p in ports] == [
        ("app", "app-link", "a", "10.0.1.5"), ("app", "app-link", "b", "10.0.2.5"),
        ("ops", "ops-link", "a", "10.0.1.5")]
    assert vpc_link.attachment_ports(lab, ports) == {"app-link": 4, "ops-link": 5}
    attachments = [p for p in spec.ports if p.name.endswith("/attachment")]
    assert [(p.id, p.ifname, p.addrs) for p in attachments] == [
        (4, "hp4", (vpc_link.GATEWAY_IP,)), (5, "hp5", (vpc_link.GATEWAY_IP,))]
    assert attachments[0].name == f"{vpc_link_id('vl', 'app-link')}/attachment"


def test_a_link_is_one_vpc_nat_service_with_routes_by_az() -> None:
    lab, ports, spec = compiled()
    services = {s.name: s for s in spec.services}
    app = services[vpc_link_id("vl", "app-link")]
    assert app == VpcNatService(name=vpc_link_id("vl", "app-link"), in_port=4,
                                prefixes=("10.0.0.0/16",),
                                enis=(LinkEni(0, "10.0.1.5"), LinkEni(1, "10.0.2.5")),
                                routes=(LinkRoute("10.0.1.0/24", 0), LinkRoute("10.0.2.0/24", 1)),
                                protocols=("tcp", "udp"), idle_timeout_s=350, mtu=8500,
                                mss_clamp=8460)
    ops = services[vpc_link_id("vl", "ops-link")]
    assert (ops.in_port, ops.enis, ops.routes) == (
        5, (LinkEni(2, "10.0.1.5"),), (LinkRoute("10.0.1.0/24", 0),))


def test_a_destination_subnet_in_an_az_without_a_link_eni_gets_no_route() -> None:
    """Such destinations take an ENI by hash in the engine (vpclab's choice)."""
    lab = load(EXAMPLE)
    lab.vpcs["app"].add_subnet("c", "10.0.3.0/24", az="us-east-1c")
    ports = hyperplane.ports(lab)
    macs = {i: ("02:00:00:00:01:01", "02:00:00:00:02:01") for i in range(len(ports) + 3)}
    spec = hyperplane.compile_spec(lab, ports, macs, {})
    app = next(s for s in spec.services if s.name == vpc_link_id("vl", "app-link"))
    assert [r.cidr for r in app.routes] == ["10.0.1.0/24", "10.0.2.0/24"]


def test_link_enis_carry_their_groups_egress_rules() -> None:
    lab, ports, spec = compiled()
    app_eni, ops_eni = spec.ports[0], spec.ports[2]
    assert app_eni.security_groups == SecurityGroups(egress=(SgRule("tcp", "10.0.0.0/16", 8080, 8080),))
    # the VPC's default group: all out
    assert ops_eni.security_groups == SecurityGroups(egress=(SgRule("all", "0.0.0.0/0", 0, 65535),))
    # and the targets' `sg:link-sg` rules admit the link ENIs (nftables' member sets)
    assert lab.sg_members(lab.vpcs["app"])["link-sg"] == ["10.0.1.5", "10.0.2.5"]


def test_validate_counts_the_links(capsys) -> None:
    assert cli.main(["validate", str(EXAMPLE)]) == 0
    assert "OK: lab vl: 2 VPCs, 3 subnets, 3 instances, 2 VPC links" in capsys.readouterr().out


def test_apigw_is_not_a_vpc_name() -> None:
    text = EXAMPLE.read_text().replace("\n  ops:\n", "\n  apigw:\n").replace("vpc: ops", "vpc: apigw")
    from dataplane.model import loads
    from dataplane.model.problems import TopologyError
    try:
        loads(text)
    except TopologyError as e:
        assert any("'apigw' is the name of the lab's API Gateway VPC namespace" in str(p)
                   for p in e.problems)
    else:
        raise AssertionError("a VPC named apigw was accepted")


def test_a_link_whose_vpc_has_more_subnets_in_its_azs_than_the_engine_routes_is_refused() -> None:
    from dataplane.model.problems import TopologyError
    lab = load(EXAMPLE)
    app = lab.vpcs["app"]
    for k in range(63):          # with a and b: 65 subnets in the link's two AZs
        app.add_subnet(f"x{k}", f"10.0.{100 + k}.0/28", az="us-east-1a")
    try:
        lab.check()
    except TopologyError as e:
        assert [str(p) for p in e.problems] == [
            "api_gateway.vpc_links.app-link.subnets: VPC app has 65 subnets in the link's AZs, "
            "each a route of the link; the forwarder takes 64"]
    else:
        raise AssertionError("65 routes were accepted")
    del app.subnets["x62"]
    lab.check()                  # 64 fit
