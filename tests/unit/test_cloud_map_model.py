"""Cloud Map in the topology model and compiled (no root): the issue's section accepted and
written back, the Python builder, IDs in AWS's formats, every mistake named by its field
path, what API Gateway asks of a service, the registry's first contents, the VPC
resolver's arguments and the DNS answers made from the registry."""
from __future__ import annotations

import random
import re

import dns.message
import dns.rdatatype
import pytest

from dataplane.compile import cloud_map as compiled
from dataplane.compile.hyperplane import resolver_args
from dataplane.model import Lab, TopologyError, loads
from dataplane.model.cloud_map import (CloudMapInstance, find_service, namespace_id,
                                       problems_for_link_target, service_id)
from dataplane.services.cloudmap import dns as cmdns

FILE = """
lab: cm
vpcs:
  shop:
    cidr: 10.0.0.0/16
    subnets:
      a: {cidr: 10.0.1.0/24, az: us-east-1a}
      b: {cidr: 10.0.2.0/24, az: us-east-1b}
    instances:
      inv1: {subnet: a}
  other:
    cidr: 10.1.0.0/16
cloud_map:
  namespaces:
    shop.local: {type: DNS_PRIVATE, vpc: shop}
    jobs: {type: HTTP}
  services:
    inventory:
      namespace: shop.local
      dns: {A: 60, SRV: 30}
      health_check: {type: custom}
      instances:
        i-blue:  {instance: shop/inv1, port: 8080, attributes: {color: blue}}
        i-green: {ip: 10.0.2.9, port: 8080, attributes: {color: green, AWS_INIT_HEALTH_STATUS: UNHEALTHY}}
    worker:
      namespace: jobs
      instances:
        w1: {ip: 10.1.0.7}
"""


@pytest.fixture
def lab() -> Lab:
    return loads(FILE)


def problems(text: str) -> list[str]:
    with pytest.raises(TopologyError) as e:
        loads(text)
    return [str(p) for p in e.value.problems]


def test_the_issue_section_round_trips_and_the_builder_agrees(lab: Lab) -> None:
    doc = lab.to_dict()
    assert Lab.from_dict(doc) == lab
    built = Lab("cm")
    shop = built.add_vpc("shop", "10.0.0.0/16")
    shop.add_subnet("a", "10.0.1.0/24", "us-east-1a")
    shop.add_subnet("b", "10.0.2.0/24", "us-east-1b")
    shop.add_instance("inv1", "a")
    built.add_vpc("other", "10.1.0.0/16")
    built.add_cloud_map_namespace("shop.local", "DNS_PRIVATE", vpc=shop)
    built.add_cloud_map_namespace("jobs", "HTTP")
    built.add_cloud_map_service("inventory", "shop.local", dns={"A": 60, "SRV": 30},
                                health_check="custom")
    built.add_cloud_map_instance("inventory", "i-blue", instance="shop/inv1", port=8080,
                                 attributes={"color": "blue"})
    built.add_cloud_map_instance("inventory", "i-green", ip="10.0.2.9", port=8080,
                                 attributes={"color": "green",
                                             "AWS_INIT_HEALTH_STATUS": "UNHEALTHY"})
    built.add_cloud_map_service("worker", "jobs", instances={"w1": {"ip": "10.1.0.7"}})
    assert built.check() == lab
    with pytest.raises(TopologyError, match="cloud_map.services.inventory.instances.i-blue: "
                                            "duplicate instance ID"):
        built.add_cloud_map_instance("inventory", "i-blue", ip="10.0.2.10")


def test_ids_are_aws_shaped_and_stable() -> None:
    assert re.fullmatch(r"ns-[0-9a-f]{16}", namespace_id("cm", "shop.local"))
    assert re.fullmatch(r"srv-[0-9a-f]{16}", service_id("cm", "shop.local", "inventory"))
    assert namespace_id("cm", "shop.local") == namespace_id("cm", "shop.local") != \
        namespace_id("cm2", "shop.local")


def test_find_service_and_link_target_problems(lab: Lab) -> None:
    svc = find_service(lab, "shop.local", "inventory")
    assert (svc.namespace, svc.name, [i.port for i in svc.instances]) == \
        ("shop.local", "inventory", [8080, 8080])
    assert find_service(lab, "jobs", "inventory") is None
    assert problems_for_link_target(lab, "shop.local", "inventory") == []
    assert problems_for_link_target(lab, "jobs", "worker") == [
        "Cloud Map service jobs/worker has instances without a port (w1); API Gateway "
        "connects to AWS_INSTANCE_PORT"]
    assert "no Cloud Map service x/y" in problems_for_link_target(lab, "x", "y")[0]


def with_section(section: str) -> str:
    return FILE.split("cloud_map:")[0] + "cloud_map:\n" + section


BROKEN = [
    ("  namespaces:\n    shop.local: {type: DNS_PRIVATE}\n",
     "cloud_map.namespaces.shop.local.vpc: required: a DNS_PRIVATE namespace is answered by "
     "one VPC's resolver"),
    ("  namespaces:\n    shop.local: {type: DNS_PRIVATE, vpc: nope}\n",
     "cloud_map.namespaces.shop.local.vpc: unknown VPC 'nope' (VPCs: shop, other)"),
    ("  namespaces:\n    jobs: {type: HTTP, vpc: shop}\n",
     "cloud_map.namespaces.jobs.vpc: an HTTP namespace is discovered through the API only; "
     "it has no VPC"),
    ("  namespaces:\n    x.local: {type: PUBLIC_DNS}\n",
     "cloud_map.namespaces.x.local.type: 'PUBLIC_DNS' is not one of DNS_PRIVATE, HTTP"),
    ("  namespaces:\n    Shop_Local: {type: HTTP}\n",
     "cloud_map.namespaces.Shop_Local: bad name: 'Shop_Local' is not valid: a namespace name is "
     "a DNS name"),
    ("  namespaces:\n    us-east-1.compute.internal: {type: DNS_PRIVATE, vpc: shop}\n",
     "cloud_map.namespaces.us-east-1.compute.internal: us-east-1.compute.internal is under "
     "compute.internal"),
    ("  namespaces:\n" + "".join(f"    n{k}: {{type: HTTP}}\n" for k in range(51)),
     "cloud_map.namespaces: 51 namespaces; AWS allows 50 per Region"),
    ("  services:\n    s: {namespace: nope}\n",
     "cloud_map.services.s.namespace: unknown namespace 'nope' (namespaces: none)"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s: {namespace: jobs, dns: {A: 5}}\n",
     "cloud_map.services.s.dns: namespace jobs is an HTTP namespace: it has no DNS records"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s: {namespace: jobs, dns: {AAAA: 5}}\n",
     "cloud_map.services.s.dns.AAAA: unknown key (allowed: A, SRV)"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s: {namespace: jobs, "
     "health_check: {type: route53}}\n",
     "cloud_map.services.s.health_check.type: 'route53' is not one of custom"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      instances: {i1: {port: 80}}\n",
     "cloud_map.services.s.instances.i1: an instance names exactly one of `instance`"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      instances: {i1: {ip: 10.0.1.9, instance: shop/inv1}}\n",
     "cloud_map.services.s.instances.i1: an instance names exactly one of `instance`"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      instances: {i1: {instance: shop/nope}}\n",
     "cloud_map.services.s.instances.i1.instance: VPC shop has no instance 'nope'"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      instances: {i1: {instance: nope/inv1}}\n",
     "cloud_map.services.s.instances.i1.instance: unknown VPC 'nope'"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      instances: {i1: {ip: 192.168.1.1}}\n",
     "cloud_map.services.s.instances.i1.ip: 192.168.1.1 is outside every VPC of the lab "
     "(VPCs: shop 10.0.0.0/16, other 10.1.0.0/16)"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      instances: {i1: {ip: 10.0.1.9, port: 70000}}\n",
     "cloud_map.services.s.instances.i1.port: 70000 is out of range (1..65535)"),
    ("  namespaces:\n    shop.local: {type: DNS_PRIVATE, vpc: shop}\n  services:\n    s:\n"
     "      namespace: shop.local\n      dns: {SRV: 10}\n      instances: {i1: {ip: 10.0.1.9}}\n",
     "cloud_map.services.s.instances.i1.port: required: the service has SRV records"),
    ("  namespaces:\n    shop.local: {type: DNS_PRIVATE, vpc: shop}\n  services:\n    s:\n"
     "      namespace: shop.local\n      instances: {a.b: {ip: 10.0.1.9}}\n",
     "cloud_map.services.s.instances.a.b: instance ID 'a.b' names the DNS record"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     f"      instances: {{{'i' * 65}: {{ip: 10.0.1.9}}}}\n",
     f"cloud_map.services.s.instances.{'i' * 65}: instance ID is 65 characters; AWS allows 64"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      instances: {'i 1': {ip: 10.0.1.9}}\n",
     "cloud_map.services.s.instances.i 1: bad name: 'i 1' is not valid: an instance ID"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      instances: {i1: {ip: 10.0.1.9, attributes: {AWS_INSTANCE_IPV4: 10.0.1.8}}}\n",
     "cloud_map.services.s.instances.i1.attributes.AWS_INSTANCE_IPV4: AWS_INSTANCE_IPV4 is set "
     "by vpclab from the instance's ip or instance"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      instances: {i1: {ip: 10.0.1.9, attributes: {AWS_INSTANCE_CNAME: x}}}\n",
     "cloud_map.services.s.instances.i1.attributes.AWS_INSTANCE_CNAME: reserved attribute "
     "AWS_INSTANCE_CNAME is not modelled by vpclab"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      instances: {i1: {ip: 10.0.1.9, attributes: {AWS_INIT_HEALTH_STATUS: UNHEALTHY}}}\n",
     "cloud_map.services.s.instances.i1.attributes.AWS_INIT_HEALTH_STATUS: AWS_INIT_HEALTH_STATUS "
     "needs the service's custom health check"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      health_check: {type: custom}\n"
     "      instances: {i1: {ip: 10.0.1.9, attributes: {AWS_INIT_HEALTH_STATUS: SICK}}}\n",
     "cloud_map.services.s.instances.i1.attributes.AWS_INIT_HEALTH_STATUS: 'SICK' is not one of "
     "HEALTHY, UNHEALTHY"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      instances: {i1: {ip: 10.0.1.9, attributes: {k: " + "v" * 1025 + "}}}\n",
     "cloud_map.services.s.instances.i1.attributes.k: an attribute value is at most 1024 "
     "printable ASCII characters"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      instances: {i1: {ip: 10.0.1.9, attributes: {" + "k" * 256 + ": v}}}\n",
     f"cloud_map.services.s.instances.i1.attributes.{'k' * 256}: an attribute key is 1-255"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      instances: {i1: {ip: 10.0.1.9, attributes: {k: 7}}}\n",
     "cloud_map.services.s.instances.i1.attributes.k: expected a string, got a whole number"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      instances: {i1: {ip: 10.0.1.9, attributes: {"
     + ", ".join(f"k{n}: v" for n in range(31)) + "}}}\n",
     "cloud_map.services.s.instances.i1.attributes: 31 custom attributes; AWS allows 30 per "
     "instance"),
    ("  namespaces:\n    jobs: {type: HTTP}\n  services:\n    s:\n      namespace: jobs\n"
     "      instances:\n" + "".join(f"        i{n}: {{ip: 10.0.1.9}}\n" for n in range(1001)),
     "cloud_map.services.s.instances: 1001 instances; AWS allows 1000 per service"),
]


@pytest.mark.parametrize("section,expected", BROKEN, ids=[b[1][:60] for b in BROKEN])
def test_every_mistake_is_named_by_its_field(section: str, expected: str) -> None:
    found = problems(with_section(section))
    assert any(p.startswith(expected) for p in found), found


def test_registry_contents(lab: Lab) -> None:
    doc = compiled.registry(lab)
    shop = doc["namespaces"]["shop.local"]
    assert (shop["id"], shop["type"], shop["vpc"]) == (namespace_id("cm", "shop.local"),
                                                       "DNS_PRIVATE", "shop")
    inv = shop["services"]["inventory"]
    assert inv["arn"] == (f"arn:aws:servicediscovery:us-east-1:{compiled.account_id('cm')}:"
                          f"service/{service_id('cm', 'shop.local', 'inventory')}")
    assert inv["instances"]["i-blue"] == {"attributes": {
        "color": "blue", "AWS_INSTANCE_IPV4": "10.0.1.4", "AWS_INSTANCE_PORT": "8080"},
        "health": "HEALTHY", "instance": "shop/inv1"}
    assert inv["instances"]["i-green"]["health"] == "UNHEALTHY"     # AWS_INIT_HEALTH_STATUS
    w1 = doc["namespaces"]["jobs"]["services"]["worker"]["instances"]["w1"]
    assert w1 == {"attributes": {"AWS_INSTANCE_IPV4": "10.1.0.7"}, "health": None,
                  "instance": None}


def test_resolver_seam_and_api_names(lab: Lab) -> None:
    assert resolver_args(lab) == {"shop": ["--server=/shop.local/10.0.0.2#5300"]}
    assert compiled.dns_records(lab) == {
        "shop": [("data-servicediscovery.us-east-1.amazonaws.com", "10.0.0.2"),
                 ("servicediscovery.us-east-1.amazonaws.com", "10.0.0.2")],
        "other": [("data-servicediscovery.us-east-1.amazonaws.com", "10.1.0.2"),
                  ("servicediscovery.us-east-1.amazonaws.com", "10.1.0.2")]}
    config = compiled.service_config(lab, "/run/vpclab/cm")
    assert [(v["vpc"], v["address"], v["http_port"], v["dns_port"]) for v in config["vpcs"]] == \
        [("shop", "10.0.0.2", 80, 5300), ("other", "10.1.0.2", 80, None)]
    assert compiled.dns_records(loads(FILE.split("cloud_map:")[0])) == {}


def registry_with(n_healthy: int = 2) -> dict:
    lab = loads(FILE)
    svc = lab.cloud_map_services["inventory"]
    svc.instances = [CloudMapInstance(f"i{k}", ip=f"10.0.1.{10 + k}", port=8000 + k)
                     for k in range(n_healthy)]
    return compiled.registry(lab)


@pytest.mark.parametrize("qname,qtype,rcode,answers", [
    ("inventory.shop.local", "A", "NOERROR", [(60, "10.0.1.10"), (60, "10.0.1.11")]),
    ("INVENTORY.Shop.Local.", "A", "NOERROR", [(60, "10.0.1.10"), (60, "10.0.1.11")]),
    ("inventory.shop.local", "SRV", "NOERROR", [(30, "1 1 8000 i0.inventory.shop.local."),
                                                (30, "1 1 8001 i1.inventory.shop.local.")]),
    ("i1.inventory.shop.local", "A", "NOERROR", [(60, "10.0.1.11")]),
    ("i1.inventory.shop.local", "AAAA", "NOERROR", []),
    ("inventory.shop.local", "TXT", "NOERROR", []),
    ("shop.local", "A", "NOERROR", []),
    ("nope.shop.local", "A", "NXDOMAIN", []),
    ("i9.inventory.shop.local", "A", "NXDOMAIN", []),
    ("a.b.inventory.shop.local", "A", "NXDOMAIN", []),
    ("inventory.other.local", "A", "REFUSED", []),
])
def test_dns_records(qname, qtype, rcode, answers) -> None:
    got = cmdns.records(registry_with(), "shop", qname, qtype)
    assert (got[0], sorted(got[1])) == (rcode, answers)


def test_dns_only_in_the_namespace_vpc_and_only_healthy_and_at_most_eight() -> None:
    doc = registry_with(12)
    assert cmdns.records(doc, "other", "inventory.shop.local", "A") == ("REFUSED", [])
    assert len(cmdns.records(doc, "shop", "inventory.shop.local", "A",
                             random.Random(3))[1]) == cmdns.MAX_ANSWERS
    instances = doc["namespaces"]["shop.local"]["services"]["inventory"]["instances"]
    for k in range(11):
        instances[f"i{k}"]["health"] = "UNHEALTHY"
    assert cmdns.records(doc, "shop", "inventory.shop.local", "A") == \
        ("NOERROR", [(60, "10.0.1.21")])
    assert cmdns.records(doc, "shop", "i0.inventory.shop.local", "A") == ("NOERROR", [])
    # without a health check every instance is answered
    doc["namespaces"]["shop.local"]["services"]["inventory"]["health_check"] = None
    assert len(cmdns.records(doc, "shop", "inventory.shop.local", "SRV")[1]) == 8


def test_dns_the_most_specific_namespace_answers() -> None:
    doc = registry_with()
    doc["namespaces"] = {"local": {"type": "DNS_PRIVATE", "vpc": "shop", "services": {}},
                         **doc["namespaces"]}
    assert cmdns.records(doc, "shop", "i0.inventory.shop.local", "A") == \
        ("NOERROR", [(60, "10.0.1.10")])
    assert cmdns.records(doc, "shop", "x.local", "A") == ("NXDOMAIN", [])


def test_dns_wire_answers() -> None:
    query = dns.message.make_query("inventory.shop.local", "SRV")
    response = dns.message.from_wire(cmdns.respond(registry_with(), "shop", query.to_wire()))
    assert response.id == query.id and response.rcode() == 0
    (rrset,) = response.answer
    assert rrset.ttl == 30 and rrset.rdtype == dns.rdatatype.SRV
    assert sorted((r.port, r.target.to_text()) for r in rrset) == [
        (8000, "i0.inventory.shop.local."), (8001, "i1.inventory.shop.local.")]
    nx = dns.message.from_wire(cmdns.respond(registry_with(), "shop", dns.message.make_query(
        "x.shop.local", "A").to_wire()))
    assert nx.rcode() == 3 and not nx.answer
    assert cmdns.respond(registry_with(), "shop", b"\x00junk") is None
