"""The lab model: YAML and Python build the same Lab; addresses follow AWS's plan.

No root, no kernel: everything here is pure computation on the model.
"""
import ipaddress
import pathlib

import pytest

from dataplane.model import DEFAULT_SG, Lab, TopologyError, load, loads, names
from dataplane.model.topology import default_security_group

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def demo_in_python() -> Lab:
    lab = Lab("demo", region="us-east-1")
    shop = lab.add_vpc("shop", "10.0.0.0/16")
    shop.add_subnet("web-a", "10.0.1.0/24", az="us-east-1a")
    web_b = shop.add_subnet("web-b", "10.0.2.0/24", az="us-east-1b")
    web_sg = shop.add_security_group("web-sg", ingress=[
        {"protocol": "tcp", "ports": 8080, "source": "10.0.0.0/16"},
        {"protocol": "tcp", "ports": "9000-9100", "source": "sg:admin-sg"}])
    shop.add_security_group("admin-sg", ingress=[], egress=[
        {"protocol": "tcp", "ports": 8080, "destination": "10.0.1.0/24"}])
    shop.add_instance("web1", subnet="web-a", security_groups=[web_sg],
                      run="python3 -m http.server 8080")
    shop.add_instance("web2", subnet=web_b, security_groups=["web-sg"], ip="10.0.2.50")
    shop.add_instance("admin", subnet="web-a", security_groups=["admin-sg"])
    shop.add_instance("plain", subnet="web-b")
    return lab


def test_yaml_and_python_give_the_same_lab():
    from_yaml = load(EXAMPLES / "demo.yaml")
    from_python = demo_in_python().check()
    assert from_yaml == from_python
    assert from_yaml.to_dict() == from_python.to_dict()


def test_to_dict_round_trips():
    lab = load(EXAMPLES / "demo.yaml")
    assert Lab.from_dict(lab.to_dict()) == lab


def test_issue_example_shapes_are_kept():
    lab = load(EXAMPLES / "demo.yaml")
    web_sg = lab.vpcs["shop"].security_groups["web-sg"]
    assert web_sg.ingress[1].port_range == (9000, 9100)
    assert web_sg.ingress[1].peer_group == "admin-sg"
    assert web_sg.ingress[0].port_range == (8080, 8080)
    # no egress list: allow all, as a new AWS security group
    assert web_sg.egress is None
    assert [(r.protocol, r.peer) for r in web_sg.effective_egress] == [("all", "0.0.0.0/0")]
    # egress: [] is "nothing out", not "everything out"
    admin_sg = lab.vpcs["shop"].security_groups["admin-sg"]
    assert len(admin_sg.effective_egress) == 1 and admin_sg.egress[0].peer == "10.0.1.0/24"


def test_default_group_is_implicit_and_used_by_instances_naming_none():
    lab = load(EXAMPLES / "demo.yaml")
    shop = lab.vpcs["shop"]
    assert DEFAULT_SG not in shop.security_groups          # not written into the file
    groups = shop.effective_security_groups()
    assert groups[DEFAULT_SG] == default_security_group()
    assert groups[DEFAULT_SG].ingress[0].peer == "sg:default"
    assert shop.instances["plain"].effective_security_groups == [DEFAULT_SG]
    addrs = lab.addresses()
    assert shop.members("default", addrs) == [addrs[("shop", "plain")]]
    assert sorted(shop.members("web-sg", addrs)) == ["10.0.1.4", "10.0.2.50"]


def test_addresses_skip_the_five_aws_reserves_and_explicit_ones():
    lab = Lab("t")
    v = lab.add_vpc("v", "10.0.0.0/16")
    v.add_subnet("s", "10.0.1.0/28")              # 16 addresses, 11 usable
    v.add_instance("pinned", "s", ip="10.0.1.4")
    for k in range(10):
        v.add_instance(f"i{k}", "s")
    lab.check()
    got = {ipaddress.IPv4Address(ip) for ip in lab.addresses().values()}
    net = ipaddress.IPv4Network("10.0.1.0/28")
    reserved = {net.network_address + k for k in range(4)} | {net.broadcast_address}
    assert got == set(net) - reserved
    assert lab.addresses()[("v", "i0")] == "10.0.1.5"    # .4 is taken by `pinned`


def test_full_subnet_is_a_problem_not_a_crash():
    lab = Lab("t")
    v = lab.add_vpc("v", "10.0.0.0/16")
    v.add_subnet("s", "10.0.1.0/28")
    for k in range(12):
        v.add_instance(f"i{k}", "s")
    with pytest.raises(TopologyError) as e:
        lab.check()
    assert [str(p) for p in e.value.problems] == [
        "vpcs.v.subnets.s: 12 instances need an address but only 11 are free in 10.0.1.0/28"]


def test_vpcs_of_one_lab_may_overlap():
    lab = Lab("t")
    for name in ("a", "b"):
        v = lab.add_vpc(name, "10.0.0.0/16")
        v.add_subnet("s", "10.0.1.0/24")
        v.add_instance("x", "s")
    lab.check()
    assert lab.addresses() == {("a", "x"): "10.0.1.4", ("b", "x"): "10.0.1.4"}


def test_builder_refuses_duplicates_at_once():
    lab = Lab("t")
    v = lab.add_vpc("v", "10.0.0.0/16")
    with pytest.raises(TopologyError, match="vpcs: duplicate VPC name|vpcs.v: duplicate"):
        lab.add_vpc("v", "10.1.0.0/16")
    v.add_subnet("s", "10.0.1.0/24")
    with pytest.raises(TopologyError) as e:
        v.add_subnet("s", "10.0.2.0/24")
    assert str(e.value) == "vpcs.v.subnets.s: duplicate subnet name"
    v.add_instance("x", "s")
    with pytest.raises(TopologyError, match=r"vpcs\.v\.instances\.x: duplicate instance"):
        v.add_instance("x", "s")


def test_names_follow_the_scheme():
    assert names.vpc_netns("demo", "shop") == "demo.shop"
    assert names.instance_netns("demo", "shop", "web1") == "demo.shop.web1"
    assert names.eni_ifname("web1") == "eni-web1"
    assert names.eni_altname("demo", "shop", "web1") == "vpclab.demo.shop.web1.eni"
    assert names.lab_of_mark("vpclab.demo.shop.web1.eni") == "demo"
    assert names.lab_of_mark("someone.else.lo") is None
    longest = names.eth_altname("a" * 12, "b" * 20, "c" * names.MAX_INSTANCE_NAME)
    assert len(longest) <= names.ALTNAMSIZ
    assert len(names.eni_ifname("c" * names.MAX_INSTANCE_NAME)) == names.IFNAMSIZ


def test_loads_accepts_minimal_file_and_defaults_region():
    lab = loads("lab: x\nvpcs:\n  v: {cidr: 10.0.0.0/16}\n")
    assert lab.region == "us-east-1" and lab.vpcs["v"].instances == {}


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_examples_are_valid(example):
    load(EXAMPLES / example)
