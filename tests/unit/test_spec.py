"""The forwarder spec as typed dataclasses (dataplane/compile/spec.py), the one contract
between the lab and the forwarder: every spec JSON that exists — what the compilers make
of each example, what tests and bench/e2e write by hand — is read and written back
identically (same keys, same order), and JSON that cannot be used is refused with the
path of the field that is wrong."""
from __future__ import annotations

import json
import pathlib
from types import SimpleNamespace

import pytest

from dataplane.compile import hyperplane, privatelink
from dataplane.compile.spec import (Backend, ForwarderSpec, HealthCheck, PrivateLinkService,
                                    SpecError, VpcNatService, service_identity)
from dataplane.model import load

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
MAC = "02:00:00:00:00:01"


def compiled(example: pathlib.Path) -> ForwarderSpec:
    lab = load(example)
    ports = hyperplane.ports(lab)
    n = len(ports) + 1 + len(lab.vpc_links)       # ENIs, the health port, attachments
    macs = {i: (f"02:00:00:00:01:{i:02x}", f"02:00:00:00:02:{i:02x}") for i in range(n)}
    return hyperplane.compile_spec(lab, ports, macs, privatelink.endpoint_states(lab))


def assert_round_trip(doc: dict) -> ForwarderSpec:
    """`doc` (JSON) read and written back is the same text, and reads as the same spec."""
    spec = ForwarderSpec.from_json(json.loads(json.dumps(doc)))
    assert json.dumps(spec.to_json()) == json.dumps(doc)
    assert ForwarderSpec.from_json(spec.to_json()) == spec
    return spec


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_compiled_example_round_trips(example: pathlib.Path) -> None:
    spec = compiled(example)
    doc = spec.to_json()
    assert ForwarderSpec.from_json(doc) == spec
    assert_round_trip(doc)


def test_the_examples_compile_to_both_kinds_and_health_checks() -> None:
    """So that the round trip above covers every part of the spec."""
    specs = [compiled(e) for e in EXAMPLES]
    kinds = {type(s) for spec in specs for s in spec.services}
    assert kinds == {PrivateLinkService, VpcNatService}
    assert any(spec.health_checks for spec in specs)
    assert any(p.security_groups.ingress for spec in specs for p in spec.ports)
    assert any(p.security_groups.egress for spec in specs for p in spec.ports)


def test_hand_written_specs_of_the_tests_round_trip(monkeypatch) -> None:
    from integration import minilab, test_forwarder_vpc_nat, test_forwarderd
    monkeypatch.setattr(minilab, "link_mac", lambda ns, ifname: MAC)   # no namespaces here
    for doc in (test_forwarderd.spec(), test_forwarder_vpc_nat.spec()):
        assert_round_trip(doc)
    from test_vpc_nat import LINK_SPEC, PORTS
    spec = assert_round_trip({"ports": PORTS, "services": [LINK_SPEC]})
    assert spec.flow_capacity == 65536 and spec.health_checks == ()      # the defaults


def test_the_bench_spec_round_trips() -> None:
    from bench.e2e.paths import VpclabPath
    topo = SimpleNamespace(e0="e0", e1="e1", gen_if="g0", sink_if="s0",
                           macs={n: MAC for n in ("e0", "e1", "g0", "s0")})
    spec = assert_round_trip(VpclabPath(topo, "/nonexistent", 4096, {"slot_size": 8192}).spec())
    assert spec.io.given() == {"slot_size": 8192}
    assert spec.services[0].proto == "udp" and spec.services[2].mss_clamp == 8460


def test_defaults_written_out_are_kept_and_equal_to_left_out() -> None:
    written = {"name": "s", "kind": "privatelink", "in_port": 0, "out_port": 1,
               "vip": "10.0.1.50", "vport": 80, "proto": "tcp", "disabled": False}
    left_out = {k: v for k, v in written.items() if k not in ("kind", "proto", "disabled")}
    a, b = (PrivateLinkService.from_json(d) for d in (written, left_out))
    assert a == b and a.to_json() == written and b.to_json() == left_out


def test_a_built_spec_writes_what_is_not_at_its_default() -> None:
    svc = PrivateLinkService(name="s", in_port=0, out_port=1, vip="10.0.1.50", vport=80,
                             rst_on_miss=True, backends=(Backend("10.0.1.20", 8080),))
    assert svc.to_json() == {"name": "s", "in_port": 0, "out_port": 1, "vip": "10.0.1.50",
                             "vport": 80, "rst_on_miss": True,
                             "backends": [{"ip": "10.0.1.20", "port": 8080}]}
    link = VpcNatService(name="l", in_port=5, prefixes=("10.0.0.0/16",), enis=())
    assert link.to_json() == {"name": "l", "kind": "vpc_nat", "in_port": 5,
                              "prefixes": ["10.0.0.0/16"], "enis": []}


def test_identity_is_what_replaces_a_service() -> None:
    svc = PrivateLinkService(name="s", in_port=0, out_port=1, vip="10.0.1.50", vport=80)
    changed_backends = PrivateLinkService(name="s", in_port=0, out_port=1, vip="10.0.1.50",
                                          vport=80, backends=(Backend("10.0.1.20", 8080),))
    moved = PrivateLinkService(name="s", in_port=0, out_port=1, vip="10.0.1.50", vport=81)
    assert service_identity(svc) == service_identity(changed_backends) != service_identity(moved)


SERVICE = {"name": "s", "in_port": 0, "out_port": 1, "vip": "10.0.1.50", "vport": 80,
           "backends": [{"ip": "10.0.1.20", "port": 8080}]}
LINK = {"name": "l", "kind": "vpc_nat", "in_port": 5, "prefixes": ["10.0.0.0/16"],
        "enis": [{"port": 6, "ip": "10.0.1.4"}]}
PORT = {"id": 0, "mac": MAC}
CHECK = {"group": "g", "node_port": 1, "node_ip": "10.0.1.100", "target": ["10.0.1.20", 8080],
         "vip": "198.18.0.1", "vport": 8080, "check": {"interval": 5}}


@pytest.mark.parametrize("doc, message", [
    ([], r"\[\] is not an object"),
    ({"flow_capacity": 1024, "port": []}, "unknown field 'port'; known: flow_capacity, io, ports"),
    ({"flow_capacity": "big"}, "flow_capacity: 'big' is not an integer"),
    ({"flow_capacity": -1}, "flow_capacity: -1 is not a non-negative integer"),
    ({"ports": {}}, "ports: {} is not a list"),
    ({"ports": [{"id": 0}]}, r"ports\[0\]: 'mac' is missing"),
    ({"ports": [{**PORT, "mac": "02:00"}]}, r"ports\[0\].mac: '02:00' is not a MAC address"),
    ({"ports": [{**PORT, "addrs": ["10.0.1.256"]}]},
     r"ports\[0\].addrs\[0\]: '10.0.1.256' is not an IPv4 address"),
    ({"ports": [PORT, {**PORT, "adrs": []}]}, r"ports\[1\]: unknown field 'adrs'"),
    ({"ports": [{**PORT, "security_groups": {"ingress": [{"cidr": "10.0.0.0/8"}]}}]},
     r"ports\[0\].security_groups.ingress\[0\]: 'protocol' is missing"),
    ({"ports": [{**PORT, "security_groups": {"egress": [{"protocol": "tcp", "cidr": "10.0.0/33"}]}}]},
     r"ports\[0\].security_groups.egress\[0\].cidr: '10.0.0/33' is not an IPv4 CIDR"),
    ({"ports": [PORT, PORT]}, "ports: duplicate port ids: 0"),
    ({"services": [{k: v for k, v in SERVICE.items() if k != "vip"}]}, r"services\[0\]: 'vip' is missing"),
    ({"services": [{**SERVICE, "vport": "80"}]}, r"services\[0\].vport: '80' is not an integer"),
    ({"services": [{**SERVICE, "disabled": 0}]}, r"services\[0\].disabled: 0 is not true or false"),
    ({"services": [{**SERVICE, "snat_ports": [1024]}]},
     r"services\[0\].snat_ports: \[1024\] is not a list of 2 items"),
    ({"services": [{**SERVICE, "backends": [{"ip": "10.0.1.20"}]}]},
     r"services\[0\].backends\[0\]: 'port' is missing"),
    ({"services": [{**SERVICE, "preferred": [["10.0.1.x", 8080]]}]},
     r"services\[0\].preferred\[0\]\[0\]: '10.0.1.x' is not an IPv4 address"),
    ({"services": [SERVICE, {**LINK, "kind": "nat"}]},
     r"services\[1\].kind: unknown kind 'nat'; use one of privatelink, vpc_nat"),
    ({"services": [{**LINK, "backends": []}]}, r"services\[0\]: unknown field 'backends'"),
    ({"services": [{**LINK, "routes": [{"cidr": "10.0.1.0/24", "eni": "a"}]}]},
     r"services\[0\].routes\[0\].eni: 'a' is not an integer"),
    ({"services": [SERVICE, {**SERVICE, "vport": 81}]}, "services: duplicate service names: s"),
    ({"services": ["s"]}, r"services\[0\]: 's' is not an object"),
    ({"health_checks": [{**CHECK, "target": "10.0.1.20:8080"}]},
     r"health_checks\[0\].target: '10.0.1.20:8080' is not a list"),
    ({"health_checks": [{**CHECK, "check": {"interval": 1}}]},
     r"health_checks\[0\].check.interval: 1 is outside 5-300"),
    ({"health_checks": [{**CHECK, "check": {"protocol": "UDP"}}]},
     r"health_checks\[0\].check.protocol: 'UDP' is not one of TCP, HTTP, HTTPS"),
    ({"io": {"slot_size": 4096, "rings": 2}}, "io: unknown field 'rings'"),
])
def test_bad_specs_are_refused_naming_the_field(doc, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        ForwarderSpec.from_json(doc)


def test_a_health_check_made_in_python_is_checked_too() -> None:
    with pytest.raises(SpecError, match="matcher: 'ok' is not like 200"):
        HealthCheck(protocol="HTTP", matcher="ok")
