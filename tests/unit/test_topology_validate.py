"""`vpclab validate`: every problem is caught before anything is made, and named by path.

Each case is (a change to a good file, the exact lines expected). No root needed.
"""
import copy
import json

import jsonschema
import pytest
import yaml

from dataplane.cli.main import main
from dataplane.model import TopologyError, check_document, loads, schema

GOOD = {
    "lab": "demo", "region": "us-east-1",
    "vpcs": {"shop": {
        "cidr": "10.0.0.0/16",
        "subnets": {"web-a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"},
                    "web-b": {"cidr": "10.0.2.0/24", "az": "us-east-1b"}},
        "security_groups": {
            "web-sg": {"ingress": [{"protocol": "tcp", "ports": 8080, "source": "10.0.0.0/16"},
                                   {"protocol": "tcp", "ports": "9000-9100",
                                    "source": "sg:admin-sg"}]},
            "admin-sg": {"ingress": [], "egress": [{"protocol": "tcp", "ports": 8080,
                                                    "destination": "10.0.1.0/24"}]}},
        "instances": {
            "web1": {"subnet": "web-a", "security_groups": ["web-sg"],
                     "run": "python3 -m http.server 8080"},
            "web2": {"subnet": "web-b", "security_groups": ["web-sg"], "ip": "10.0.2.50"},
            "admin": {"subnet": "web-a", "security_groups": ["admin-sg"]},
            "plain": {"subnet": "web-b"}}}}}


def shop(doc):
    return doc["vpcs"]["shop"]


def problems_after(change):
    doc = copy.deepcopy(GOOD)
    change(doc)
    return [str(p) for p in check_document(doc)]


def test_good_document_has_no_problem():
    assert check_document(GOOD) == []


CASES = [
    ("subnet outside the VPC (the issue's example)",
     lambda d: shop(d)["subnets"]["web-b"].update(cidr="10.1.2.0/24"),
     ["vpcs.shop.subnets.web-b.cidr: 10.1.2.0/24 is outside the VPC CIDR 10.0.0.0/16"]),
    ("overlapping subnets",
     lambda d: shop(d)["subnets"].update({"web-c": {"cidr": "10.0.1.128/25"}}),
     ["vpcs.shop.subnets.web-c.cidr: 10.0.1.128/25 overlaps subnet web-a (10.0.1.0/24)"]),
    ("unknown key",
     lambda d: shop(d)["subnets"]["web-a"].update(zone="x"),
     ["vpcs.shop.subnets.web-a.zone: unknown key (allowed: az, cidr)"]),
    ("unknown top-level key",
     lambda d: d.update(vpc={}),
     ["vpc: unknown key (allowed: api_gateway, cloud_map, lab, region, vpcs)"]),
    ("missing key",
     lambda d: shop(d)["subnets"]["web-a"].pop("cidr"),
     ["vpcs.shop.subnets.web-a.cidr: required key is missing",
      "vpcs.shop.instances.web1.subnet: unknown subnet 'web-a' in VPC shop (subnets: web-a, web-b)"]
     [:1]),
    ("unknown subnet",
     lambda d: shop(d)["instances"]["web1"].update(subnet="web-z"),
     ["vpcs.shop.instances.web1.subnet: unknown subnet 'web-z' in VPC shop (subnets: web-a, web-b)"]),
    ("unknown security group on an instance",
     lambda d: shop(d)["instances"]["admin"].update(security_groups=["nope"]),
     ["vpcs.shop.instances.admin.security_groups[0]: unknown security group 'nope' in VPC shop"]),
    ("unknown sg: reference",
     lambda d: shop(d)["security_groups"]["web-sg"]["ingress"][1].update(source="sg:nope"),
     ["vpcs.shop.security_groups.web-sg.ingress[1].source: unknown security group 'nope' "
      "(sg: refers to a group of the same VPC)"]),
    ("group listed twice",
     lambda d: shop(d)["instances"]["web1"].update(security_groups=["web-sg", "web-sg"]),
     ["vpcs.shop.instances.web1.security_groups[1]: security group 'web-sg' is listed twice"]),
    ("address outside the subnet",
     lambda d: shop(d)["instances"]["web2"].update(ip="10.0.1.50"),
     ["vpcs.shop.instances.web2.ip: 10.0.1.50 is outside subnet web-b (10.0.2.0/24)"]),
    ("network address",
     lambda d: shop(d)["instances"]["web2"].update(ip="10.0.2.0"),
     ["vpcs.shop.instances.web2.ip: 10.0.2.0 is the network address of subnet web-b "
      "(AWS reserves the first four and the last address)"]),
    ("router address",
     lambda d: shop(d)["instances"]["web2"].update(ip="10.0.2.1"),
     ["vpcs.shop.instances.web2.ip: 10.0.2.1 is reserved for the VPC router of subnet web-b "
      "(AWS reserves the first four and the last address)"]),
    ("DNS address",
     lambda d: shop(d)["instances"]["web2"].update(ip="10.0.2.2"),
     ["vpcs.shop.instances.web2.ip: 10.0.2.2 is reserved for the Amazon DNS server of subnet "
      "web-b (AWS reserves the first four and the last address)"]),
    ("future-use address",
     lambda d: shop(d)["instances"]["web2"].update(ip="10.0.2.3"),
     ["vpcs.shop.instances.web2.ip: 10.0.2.3 is reserved by AWS for future use of subnet "
      "web-b (AWS reserves the first four and the last address)"]),
    ("broadcast address",
     lambda d: shop(d)["instances"]["web2"].update(ip="10.0.2.255"),
     ["vpcs.shop.instances.web2.ip: 10.0.2.255 is the broadcast address of subnet web-b "
      "(AWS reserves the first four and the last address)"]),
    ("address taken twice",
     lambda d: shop(d)["instances"]["plain"].update(ip="10.0.2.50"),
     ["vpcs.shop.instances.plain.ip: 10.0.2.50 is already the address of instance web2"]),
    ("name too long for an interface",
     lambda d: shop(d)["instances"].update({"averylongname": {"subnet": "web-a"}}),
     ["vpcs.shop.instances.averylongname: instance name is 13 characters; its ENI "
      "'eni-averylongname' must fit an interface name (15 characters), so at most 11"]),
    ("bad lab name",
     lambda d: d.update(lab="Demo"),
     ["lab: 'Demo' is not valid: a lab name is 1-12 characters of [a-z0-9-] starting "
      "with a letter (it prefixes every kernel object)"]),
    ("lab name too long",
     lambda d: d.update(lab="a-much-too-long-lab"),
     ["lab: 'a-much-too-long-lab' is not valid: a lab name is 1-12 characters of [a-z0-9-] "
      "starting with a letter (it prefixes every kernel object)"]),
    ("bad instance name",
     lambda d: shop(d)["instances"].update({"Web_1": {"subnet": "web-a"}}),
     ["vpcs.shop.instances.Web_1: bad name: 'Web_1' is not valid: a name is 1-32 "
      "characters of [a-z0-9-], not starting or ending with '-'"]),
    ("unknown protocol",
     lambda d: shop(d)["security_groups"]["web-sg"]["ingress"][0].update(protocol="sctp"),
     ["vpcs.shop.security_groups.web-sg.ingress[0].protocol: 'sctp' is not one of tcp, "
      "udp, icmp, all"]),
    ("ports on icmp",
     lambda d: shop(d)["security_groups"]["web-sg"]["ingress"][0].update(protocol="icmp"),
     ["vpcs.shop.security_groups.web-sg.ingress[0].ports: ports apply to tcp and udp only, "
      "not to icmp"]),
    ("backwards port range",
     lambda d: shop(d)["security_groups"]["web-sg"]["ingress"][1].update(ports="9100-9000"),
     ["vpcs.shop.security_groups.web-sg.ingress[1].ports: 9100-9000 is not a port range "
      "(lo-hi with lo <= hi <= 65535)"]),
    ("malformed ports",
     lambda d: shop(d)["security_groups"]["web-sg"]["ingress"][1].update(ports="http"),
     ["vpcs.shop.security_groups.web-sg.ingress[1].ports: 'http' is not valid: ports are "
      "a number (8080) or a range (9000-9100)"]),
    ("egress rule with a source",
     lambda d: shop(d)["security_groups"]["admin-sg"]["egress"][0].update(source="10.0.0.0/8"),
     ["vpcs.shop.security_groups.admin-sg.egress[0].source: unknown key "
      "(allowed: description, destination, ports, protocol)"]),
    ("host bits set",
     lambda d: shop(d).update(cidr="10.0.0.1/16"),
     ["vpcs.shop.cidr: 10.0.0.1/16 has host bits set (did you mean 10.0.0.0/16?)"]),
    ("VPC too large for AWS",
     lambda d: shop(d).update(cidr="10.0.0.0/8"),
     ["vpcs.shop.cidr: a VPC CIDR must be /16 to /28, not /8"]),
    ("AZ of another region",
     lambda d: shop(d)["subnets"]["web-a"].update(az="eu-west-1a"),
     ["vpcs.shop.subnets.web-a.az: eu-west-1a is not an availability zone of the lab's "
      "region us-east-1"]),
    ("wrong type",
     lambda d: shop(d)["instances"]["web1"].update(security_groups="web-sg"),
     ["vpcs.shop.instances.web1.security_groups: expected a list, got a string"]),
    ("no VPC",
     lambda d: d.update(vpcs={}),
     ["vpcs: must not be empty"]),
]


@pytest.mark.parametrize("what,change,expected", CASES, ids=[c[0] for c in CASES])
def test_each_problem_is_named_by_path_and_reason(what, change, expected):
    assert problems_after(change) == expected


def test_every_problem_is_reported_at_once():
    def many(d):
        shop(d)["subnets"]["web-b"]["cidr"] = "10.1.2.0/24"
        shop(d)["instances"]["web1"]["subnet"] = "web-z"
        shop(d)["instances"]["web2"]["ip"] = "10.0.2.1"
        d["lab"] = "Bad"
    got = problems_after(many)
    assert len(got) == 3   # web2's address isn't checked: its subnet web-b is itself wrong
    assert {p.split(":")[0] for p in got} == {
        "lab", "vpcs.shop.subnets.web-b.cidr", "vpcs.shop.instances.web1.subnet"}


def test_duplicate_yaml_keys_are_caught_with_their_path():
    text = yaml.safe_dump(GOOD, sort_keys=False) + ""
    text = text.replace("    instances:\n", "    instances:\n      admin:\n        subnet: web-b\n")
    with pytest.raises(TopologyError) as e:
        loads(text)
    (p,) = e.value.problems
    assert p.path == "vpcs.shop.instances.admin"
    assert p.reason.startswith("duplicate key (line ")


def test_bad_yaml_is_a_problem_not_a_traceback():
    with pytest.raises(TopologyError, match="not valid YAML"):
        loads("lab: x\nvpcs: [\n")
    with pytest.raises(TopologyError, match="a topology file is a mapping"):
        loads("- just\n- a list\n")


def test_schema_is_package_data_and_a_valid_schema():
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["required"] == ["lab", "vpcs"]


def test_cli_validate_exit_status_and_output(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(GOOD))
    assert main(["validate", str(good)]) == 0
    assert "OK: lab demo: 1 VPC, 2 subnets, 4 instances" in capsys.readouterr().out
    bad = copy.deepcopy(GOOD)
    shop(bad)["subnets"]["web-b"]["cidr"] = "10.1.2.0/24"
    shop(bad)["instances"]["web1"]["bogus"] = 1
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(bad))          # JSON is YAML too
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "2 problems" in err
    assert "vpcs.shop.subnets.web-b.cidr: 10.1.2.0/24 is outside the VPC CIDR 10.0.0.0/16" in err
    assert "vpcs.shop.instances.web1.bogus: unknown key" in err
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2


from hypothesis import given, settings, strategies as st  # noqa: E402

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000),
                     st.sampled_from(["10.0.1.0/24", "10.0.0.0/16", "sg:web-sg", "tcp", "all",
                                      "web-a", "9000-9100", "1.2.3", "x-y", "10.0.1.1",
                                      "99999-1", ""]))
_docs = st.recursive(_scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=3),
    st.dictionaries(st.sampled_from(["lab", "vpcs", "cidr", "subnets", "instances", "ip",
                                     "security_groups", "ingress", "egress", "ports",
                                     "protocol", "source", "destination", "subnet", "shop",
                                     "web-a", "web1", "az", "run"]), kids, max_size=4)),
    max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(_docs)
def test_validation_never_raises_on_garbage(doc):
    problems = check_document(doc)
    assert all(isinstance(str(p), str) for p in problems)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(GOOD["vpcs"]["shop"]["instances"])), _scalars, _scalars)
def test_validation_never_raises_on_mutated_good_file(inst, key_value, other):
    doc = copy.deepcopy(GOOD)
    shop(doc)["instances"][inst]["ip"] = key_value
    shop(doc)["security_groups"]["web-sg"]["ingress"][0]["ports"] = other
    check_document(doc)
