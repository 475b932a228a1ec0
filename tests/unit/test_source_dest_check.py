"""The source/destination check of instance ENIs in the model and in nftables text
(no root: the ruleset is only rendered; tests/integration/test_source_dest_check.py
sends the spoofed packets)."""
import copy

from dataplane import lab as labmod
from dataplane.model import Lab, check_document, loads
from netns_setup import nft

DOC = {"lab": "demo", "vpcs": {"shop": {
    "cidr": "10.0.0.0/16", "subnets": {"a": {"cidr": "10.0.1.0/24"}},
    "instances": {"web": {"subnet": "a"},
                  "nat": {"subnet": "a", "source_dest_check": False}}}}}


def test_the_check_is_on_unless_the_file_turns_it_off():
    lab = Lab.from_dict(DOC)
    assert lab.vpcs["shop"].instances["web"].source_dest_check is True
    assert lab.vpcs["shop"].instances["nat"].source_dest_check is False


def test_builder_and_file_agree_and_round_trip():
    lab = Lab("demo")
    shop = lab.add_vpc("shop", "10.0.0.0/16")
    shop.add_subnet("a", "10.0.1.0/24")
    shop.add_instance("web", "a")
    shop.add_instance("nat", "a", source_dest_check=False)
    assert lab == Lab.from_dict(DOC)
    doc = lab.to_dict()
    assert "source_dest_check" not in doc["vpcs"]["shop"]["instances"]["web"]
    assert doc["vpcs"]["shop"]["instances"]["nat"]["source_dest_check"] is False
    assert Lab.from_dict(doc) == lab


def test_a_value_that_is_not_a_boolean_is_refused():
    doc = copy.deepcopy(DOC)
    doc["vpcs"]["shop"]["instances"]["nat"]["source_dest_check"] = "no"
    assert [str(p) for p in check_document(doc)] == [
        "vpcs.shop.instances.nat.source_dest_check: expected a boolean, got a string"]


def rendered() -> str:
    (p,) = labmod.plan(Lab.from_dict(DOC))
    return nft.render("demo-sg", p.groups, p.enis)


def test_checked_eni_gets_both_checks_with_counters():
    script = rendered()
    assert "  counter source_eni_web { }" in script
    assert "  counter destination_eni_web { }" in script
    assert ("  chain source_check {\n"
            "    type filter hook prerouting priority raw; policy accept;\n"
            '    iifname vmap { "eni-web" : jump source_eni_web }\n  }') in script
    assert ("  chain source_eni_web {\n    ip saddr 10.0.1.4 return\n"
            '    counter name "source_eni_web" drop\n  }') in script
    assert ("  chain destination_check {\n"
            "    type filter hook postrouting priority filter; policy accept;\n"
            '    oifname vmap { "eni-web" : jump destination_eni_web }\n  }') in script
    assert ("  chain destination_eni_web {\n    ip daddr 10.0.1.4 return\n"
            '    counter name "destination_eni_web" drop\n  }') in script


def test_an_eni_without_the_check_has_none():
    script = rendered()
    assert "eni_nat" in script                # its security-group chains are there
    assert "source_eni_nat" not in script and "destination_eni_nat" not in script


def test_no_checked_eni_no_hooks():
    doc = copy.deepcopy(DOC)
    doc["vpcs"]["shop"]["instances"]["web"]["source_dest_check"] = False
    (p,) = labmod.plan(Lab.from_dict(doc))
    script = nft.render("demo-sg", p.groups, p.enis)
    assert "source_check" not in script and "counter" not in script


def test_yaml_accepts_the_field():
    lab = loads("lab: demo\nvpcs:\n  shop:\n    cidr: 10.0.0.0/16\n"
                "    subnets: {a: {cidr: 10.0.1.0/24}}\n"
                "    instances: {nat: {subnet: a, source_dest_check: false}}\n")
    assert lab.vpcs["shop"].instances["nat"].source_dest_check is False
