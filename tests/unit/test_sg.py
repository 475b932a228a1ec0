"""Security groups on engine ports: allow-only, checked when a flow is created, stateful
(replies and later packets of an allowed flow always pass), as AWS tracks every flow on
NLB and PrivateLink ENIs."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, TCP, UDP

from conftest import EP_IP, EP_PORT, NLB_PORT, S, from_client, from_target, make_engine
from dataplane.forwarder.engine import Backend, Engine, SgRule


@pytest.fixture
def eng() -> Engine:
    e = make_engine()
    for vport, proto in ((80, "tcp"), (443, "tcp"), (53, "udp"), (0, "icmp")):
        sid = e.add_service(EP_PORT, NLB_PORT, EP_IP, vport, proto)
        e.set_backends(sid, [Backend("10.0.2.1", vport and 8000 + vport)])
    return e


def send(e: Engine, l4, src: str = "10.0.1.10"):
    return e.simulate(from_client(l4, src=src), EP_PORT, S)


@pytest.mark.parametrize("rules, l4, src, verdict", [
    ([SgRule("tcp", "10.0.0.0/16", 80, 80)], TCP(dport=80, flags="S"), "10.0.1.10", "forward"),
    ([SgRule("tcp", "10.0.0.0/16", 80, 80)], TCP(dport=80, flags="S"), "10.1.1.10", "drop"),
    ([SgRule("tcp", "10.0.0.0/16", 80, 80)], TCP(dport=443, flags="S"), "10.0.1.10", "drop"),
    ([SgRule("tcp", "10.0.0.0/16", 80, 80)], UDP(dport=53), "10.0.1.10", "drop"),
    ([SgRule("tcp", "10.0.1.10/32", 1, 1024)], TCP(dport=443, flags="S"), "10.0.1.10", "forward"),
    ([SgRule("udp", "0.0.0.0/0", 53, 53)], UDP(dport=53), "192.168.7.7", "forward"),
    ([SgRule("all", "10.0.1.0/24")], UDP(dport=53), "10.0.1.99", "forward"),
    ([SgRule("all", "10.0.1.0/24")], TCP(dport=443, flags="S"), "10.0.2.99", "drop"),
    ([SgRule("icmp", "0.0.0.0/0", 8, 8)], ICMP(type=8), "10.0.1.10", "forward"),
    ([SgRule("icmp", "0.0.0.0/0", 0, 0)], ICMP(type=8), "10.0.1.10", "drop"),
    ([], TCP(dport=80, flags="S"), "10.0.1.10", "drop"),  # an empty group admits nothing
    ([SgRule("tcp", "10.0.0.0/16", 80, 80), SgRule("tcp", "10.1.0.0/16", 443, 443)],
     TCP(dport=443, flags="S"), "10.1.5.5", "forward"),  # rules are a union
])
def test_ingress_rules(eng: Engine, rules, l4, src: str, verdict: str) -> None:
    eng.set_security_group(EP_PORT, "ingress", rules)
    r = send(eng, l4, src)
    assert r.verdict == verdict
    if verdict == "drop":
        assert r.drop_reason == "sg_ingress"
        assert eng.drops(EP_PORT)["sg_ingress"] == 1


def test_replies_pass_whatever_the_rules(eng: Engine) -> None:
    eng.set_security_group(EP_PORT, "ingress", [SgRule("tcp", "10.0.0.0/16", 80, 80)])
    eng.set_security_group(NLB_PORT, "ingress", [])  # nothing may come in from the target side
    send(eng, TCP(sport=40000, dport=80, flags="S"))
    (f,) = eng.flows()
    r = eng.simulate(from_target(TCP(sport=8080, dport=f.snat[1], flags="SA"), f.backend[0]), NLB_PORT, S)
    assert r.verdict == "forward"


def test_changing_rules_leaves_existing_flows_running(eng: Engine) -> None:
    eng.set_security_group(EP_PORT, "ingress", [SgRule("tcp", "10.0.0.0/16", 80, 80)])
    send(eng, TCP(sport=40000, dport=80, flags="S"))
    eng.set_security_group(EP_PORT, "ingress", [])
    assert send(eng, TCP(sport=40000, dport=80, flags="A")).verdict == "forward"
    assert send(eng, TCP(sport=40001, dport=80, flags="S")).drop_reason == "sg_ingress"
    eng.clear_security_group(EP_PORT, "ingress")
    assert send(eng, TCP(sport=40001, dport=80, flags="S")).verdict == "forward"


def test_egress_rules_check_the_translated_destination(eng: Engine) -> None:
    eng.set_security_group(NLB_PORT, "egress", [SgRule("tcp", "10.0.2.0/24", 8080, 8080)])
    assert send(eng, TCP(sport=1, dport=80, flags="S")).verdict == "forward"   # → 10.0.2.1:8080
    r = send(eng, TCP(sport=2, dport=443, flags="S"))                           # → 10.0.2.1:8443
    assert (r.verdict, r.drop_reason) == ("drop", "sg_egress")
