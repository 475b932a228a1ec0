"""PrivateLink in the topology model: the issue's file accepted as written, every
mistake named by its path, ENI addresses and IDs, DNS names, and the forwarder spec the
lab compiles to (no root: pure functions of the model)."""
from __future__ import annotations

import pathlib
import re

import pytest

from dataplane.compile import hyperplane, privatelink
from dataplane.compile.spec import HealthCheck, SgRule
from dataplane.model import Lab, load, loads
from dataplane.model.topology import TopologyError

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "privatelink.yaml"


@pytest.fixture
def lab() -> Lab:
    return load(str(EXAMPLE))


def test_the_issue_file_is_accepted_and_round_trips(lab: Lab) -> None:
    assert set(lab.vpcs["provider"].load_balancers) == {"web-nlb"}
    assert lab.vpcs["consumer"].endpoints["web-ep"].service_ref == ("provider", "web-svc")
    assert Lab.from_dict(lab.to_dict()) == lab


def test_python_builder_gives_the_same_lab(lab: Lab) -> None:
    built = Lab.from_dict(lab.to_dict())
    p = built.vpcs["provider"]
    assert p.add_target_group("x-tg", 9000, ["web1"]).target_addresses({"web1": "10.0.1.4"}) == [("10.0.1.4", 9000)]


BAD = """
lab: bad
vpcs:
  hyperplane: {cidr: 10.9.0.0/16}
  consumer:
    cidr: 10.0.0.0/16
    subnets: {a: {cidr: 10.0.1.0/24, az: us-east-1a}, a2: {cidr: 10.0.3.0/24, az: us-east-1a}, c: {cidr: 10.0.2.0/24, az: us-east-1c}}
    endpoints:
      ep: {service: provider/web-svc, subnets: [a, a2, c], security_groups: [nope]}
      ep2: {service: provider/nothing, subnets: [a], ip_address_type: ipv4}
  provider:
    cidr: 10.0.0.0/16
    subnets: {a: {cidr: 10.0.1.0/24, az: us-east-1a}, b: {cidr: 10.0.2.0/24}}
    instances: {web1: {subnet: a}}
    load_balancers:
      nlb: {subnets: [a, b, zz], listeners: [{port: 80, target_group: tg}, {port: 80, target_group: nope}]}
    target_groups:
      tg: {port: 8080, targets: [web1, web9, 8.8.8.8, "10.0.1.7:99999"]}
    endpoint_services:
      web-svc: {load_balancers: [nlb]}
      other: {load_balancers: [nlb, ghost]}
"""


def test_every_mistake_is_named_by_its_path() -> None:
    with pytest.raises(TopologyError) as e:
        loads(BAD)
    got = {str(p) for p in e.value.problems}
    want = {
        "vpcs.hyperplane: 'hyperplane' is the name of the lab's Hyperplane namespace; choose another VPC name",
        "vpcs.consumer.endpoints.ep.subnets[1]: subnets a and a2 are both in us-east-1a: an endpoint takes at most one subnet per availability zone",
        "vpcs.consumer.endpoints.ep.security_groups[0]: unknown security group 'nope' in VPC consumer",
        "vpcs.consumer.endpoints.ep.subnets[2]: c is in us-east-1c, where provider/web-svc has no load balancer node (its AZs: us-east-1a)",
        "vpcs.consumer.endpoints.ep2.service: no endpoint service 'nothing' in VPC 'provider'",
        "vpcs.provider.load_balancers.nlb.subnets[1]: subnet b has no az; a load balancer needs the availability zone of each of its subnets",
        "vpcs.provider.load_balancers.nlb.subnets[2]: unknown subnet 'zz' (subnets: a, b)",
        "vpcs.provider.load_balancers.nlb.listeners[1].port: port 80 has a listener already",
        "vpcs.provider.load_balancers.nlb.listeners[1].target_group: unknown target group 'nope' in VPC provider",
        "vpcs.provider.target_groups.tg.targets[1]: 'web9' is neither an instance of VPC provider nor an IP address",
        "vpcs.provider.target_groups.tg.targets[2]: 8.8.8.8 is publicly routable: ip targets must be in the VPC, RFC 1918 ranges or 100.64.0.0/10",
        "vpcs.provider.target_groups.tg.targets[3]: port 99999 is not 1-65535",
        "vpcs.provider.endpoint_services.other.load_balancers[0]: NLB nlb already backs endpoint service web-svc (an NLB backs at most one)",
        "vpcs.provider.endpoint_services.other.load_balancers[1]: unknown load balancer 'ghost' in VPC provider",
    }
    assert want <= got, sorted(want - got)


def test_ipv6_endpoints_are_refused_by_name() -> None:
    doc = EXAMPLE.read_text().replace("private_dns: true}", "private_dns: true, ip_address_type: dualstack}")
    with pytest.raises(TopologyError, match="ip_address_type: 'dualstack' is not one of ipv4"):
        loads(doc)


def test_eni_addresses_follow_the_instances_and_ids_are_stable(lab: Lab) -> None:
    enis = lab.hyperplane_enis()
    by = {(e.vpc, e.kind, e.subnet): e for e in enis}
    assert by[("provider", "nlb", "svc-a")].ip == "10.0.1.5"      # web1 holds .4
    assert by[("consumer", "vpce", "app-a")].ip == "10.0.1.5"     # client holds .4
    assert by[("consumer", "vpce", "app-b")].ip == "10.0.2.4"
    for e in enis:
        assert re.fullmatch(r"eni-[0-9a-f]{17}", e.eni_id) and len(e.ifname) <= 15
    assert [e.eni_id for e in load(str(EXAMPLE)).hyperplane_enis()] == [e.eni_id for e in enis]


def test_dns_names_follow_aws(lab: Lab) -> None:
    records = privatelink.dns_records(lab)
    assert set(records) == {"consumer"}                            # the consumer VPC only
    names = {n for n, _ in records["consumer"]}
    regional = [n for n in names if re.fullmatch(
        r"vpce-[0-9a-f]{17}-[0-9a-f]{8}\.vpce-svc-[0-9a-f]{17}\.us-east-1\.vpce\.amazonaws\.com", n)]
    zonal = [n for n in names if re.fullmatch(
        r"vpce-[0-9a-f]{17}-[0-9a-f]{8}-us-east-1[ab]\.vpce-svc-[0-9a-f]{17}\.us-east-1\.vpce\.amazonaws\.com", n)]
    assert len(regional) == 1 and len(zonal) == 2 and "web.provider.internal" in names
    ips = {n: {ip for m, ip in records["consumer"] if m == n} for n in names}
    assert ips[regional[0]] == {"10.0.1.5", "10.0.2.4"} and ips["web.provider.internal"] == ips[regional[0]]


def test_compiled_spec(lab: Lab) -> None:
    ports = hyperplane.ports(lab)
    macs = {i: (f"02:00:00:00:01:{i:02x}", f"02:00:00:00:02:{i:02x}") for i in range(len(ports) + 1)}
    pending = {k: {**v, "state": "pendingAcceptance"} for k, v in privatelink.endpoint_states(lab).items()}
    spec = hyperplane.compile_spec(lab, ports, macs, pending)
    by_port = {p.id: p.eni for p in ports}
    svcs = [s for s in spec.services if not s.name.startswith("health:")]
    assert len(svcs) == 2                                          # 2 endpoint ENIs × 1 listener
    for s in svcs:
        ep, node = by_port[s.in_port], by_port[s.out_port]
        assert ep.kind == "vpce" and node.kind == "nlb" and ep.az == node.az
        assert (s.vip, s.vport, s.snat_ip) == (ep.ip, 80, node.ip)
        assert s.mtu == 8500 and s.mss_clamp == 8460 and s.rst_on_miss and s.hash_tcp_seq
        assert s.disabled                                          # pendingAcceptance
        assert len(s.backends) == 2 and len(s.preferred) == 1      # the node's own AZ first
    ep_port = next(p for p in spec.ports if p.id == svcs[0].in_port)
    assert ep_port.security_groups.ingress == (SgRule("tcp", "10.0.0.0/16", 80, 80),)
    checks = spec.health_checks
    assert len(checks) == 4                                        # 2 nodes × 2 targets
    assert {c.node_ip for c in checks} == {"10.0.1.5", "10.0.2.5"}
    assert len({c.vip for c in checks}) == 4
    assert checks[0].check == HealthCheck(protocol="TCP", interval=5, healthy_threshold=2,
                                          unhealthy_threshold=2)
    health_port = spec.ports[-1]
    assert health_port.name == "health" and health_port.addrs == (privatelink.HEALTH_PORT_IP,)


def test_validate_counts_the_privatelink_resources(capsys) -> None:
    from dataplane.cli.main import main
    assert main(["validate", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.strip() == (
        "OK: lab pl: 2 VPCs, 4 subnets, 3 instances, 1 NLB, 1 endpoint service, 1 endpoint")
