"""`vpclab trace` against reality, in a lab (named `ttr…`, removed whatever happens).

For the allowed path and for each refusal trace can name — the source's egress SG, the
endpoint ENI's SG in the engine, the NLB listener port, the target's ingress SG, no route
— trace's verdict (reachable or not, and what the client would see) is compared with a
real connection from the same instance: connected (the target's tag comes back) or
timeout. And tracing a live lab changes nothing: the forwarder's flows and every counter
are the same after a burst of traces as before.
"""
from __future__ import annotations

import json

import pytest

from dataplane import lab as labmod
from dataplane.forwarder import control
from dataplane.pytest_plugin import lab_name

from .conftest import connect, serve, vpclab, write_topology

LAB = lab_name("ttrpl")


def topology() -> dict:
    return {
        "lab": LAB, "region": "us-east-1",
        "vpcs": {
            "consumer": {
                "cidr": "10.0.0.0/16",
                "subnets": {"app-a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"}},
                "security_groups": {
                    "endpoint-sg": {"ingress": [{"protocol": "tcp", "ports": "80-81",
                                                 "source": "10.0.0.0/16"}]},
                    "dns-only": {"ingress": [],
                                 "egress": [{"protocol": "udp", "ports": 53,
                                             "destination": "0.0.0.0/0"}]}},
                "instances": {"client": {"subnet": "app-a"},
                              "locked": {"subnet": "app-a", "security_groups": ["dns-only"]}},
                "endpoints": {"web-ep": {"service": "provider/web-svc", "subnets": ["app-a"],
                                         "security_groups": ["endpoint-sg"],
                                         "private_dns": True}},
            },
            "provider": {
                "cidr": "10.0.0.0/16",
                "subnets": {"svc-a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"}},
                "security_groups": {"web-sg": {"ingress": [
                    {"protocol": "tcp", "ports": 8080, "source": "10.0.0.0/16"}]}},
                "instances": {"web1": {"subnet": "svc-a", "security_groups": ["web-sg"],
                                       "run": serve("web1-{peer}", 8080, 8081)}},
                "load_balancers": {"web-nlb": {"type": "network", "subnets": ["svc-a"],
                                               "listeners": [
                    {"port": 80, "protocol": "TCP", "target_group": "web-tg"},
                    {"port": 81, "protocol": "TCP", "target_group": "alt-tg"},
                    {"port": 82, "protocol": "TCP", "target_group": "web-tg"}]}},
                "target_groups": {"web-tg": {"protocol": "TCP", "port": 8080, "targets": ["web1"]},
                                  "alt-tg": {"protocol": "TCP", "port": 8081, "targets": ["web1"]}},
                "endpoint_services": {"web-svc": {"load_balancers": ["web-nlb"],
                                                  "acceptance_required": False,
                                                  "private_dns_name": "web.provider.internal"}},
            },
        },
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    path = write_topology(tmp_path_factory.mktemp("ttr"), topology())
    try:
        vpclab("up", str(path), check=True, timeout=180)
        yield labmod.status(LAB)
    finally:
        labmod.cleanup(LAB, everything=True)


def trace(src: str, dst: str, *extra: str) -> dict:
    out = vpclab("trace", "-l", LAB, src, dst, "--json", *extra, check=True)
    doc = json.loads(out.stdout)
    assert list(doc)[:2] == ["version", "lab"] and doc["version"] == 1
    return doc


# (source, destination as traced, what connect() is given, the explanation code or None)
CASES = [
    ("consumer/client", "web.provider.internal:80", ("web.provider.internal", 80), None),
    ("consumer/locked", "web.provider.internal:80", ("web.provider.internal", 80),
     "ENI_SG_RULES_MISMATCH"),                                   # source egress
    ("consumer/client", "web.provider.internal:82", ("web.provider.internal", 82),
     "ENI_SG_RULES_MISMATCH"),                                   # endpoint SG, in the engine
    ("consumer/client", "web.provider.internal:81", ("web.provider.internal", 81),
     "ENI_SG_RULES_MISMATCH"),                                   # target SG (8081 not allowed)
    ("consumer/client", "web.provider.internal:83", ("web.provider.internal", 83),
     "ELBV2_LISTENER_PORT_RESTRICTION"),                         # no listener
    ("consumer/client", "10.0.1.200:80", ("10.0.1.200", 80), "NO_ROUTE_TO_DESTINATION"),
]


@pytest.mark.parametrize("src, dst, real, code", CASES, ids=[
    "allowed", "source-sg", "endpoint-sg", "target-sg", "listener", "no-route"])
def test_trace_and_a_real_connection_agree(lab, src: str, dst: str, real, code) -> None:
    doc = trace(src, dst)
    verdict = doc["verdict"]
    assert verdict["explanation_code"] == code, verdict
    got = connect(LAB, src, *real, wait=2.0)
    if code is None:
        assert verdict["reachable"] and verdict["client_sees"] == "connected"
        assert got.startswith("web1-"), got
        nlb = doc["hops"][-1]["lines"][0].split()[2].rsplit(":", 1)[0]
        assert got == f"web1-{nlb}"   # the target saw the NLB address trace said it would
    else:
        assert not verdict["reachable"]
        assert verdict["client_sees"] == "timeout" and got == "timeout", (verdict, got)


def test_tracing_a_live_lab_changes_nothing(lab) -> None:
    """What a trace would move if it processed its packet — a flow, flows_created, a drop
    count — is the same after traces of an allowed, an unserved and a refused packet.
    (The NLB's health checks keep other counters moving meanwhile, so rx/tx are not
    compared; the unit tests compare the whole engine byte for byte.)"""
    sock = lab["hyperplane"]["socket"]
    assert connect(LAB, "consumer/client", "web.provider.internal", 80).startswith("web1-")
    assert connect(LAB, "consumer/client", "web.provider.internal", 83, wait=1.0) == "timeout"

    def snapshot():
        ports = control.call(sock, "stats")["ports"]
        return {n: (p["counters"]["flows_created"], p["drops"]) for n, p in ports.items()
                if n != "health"}
    before = snapshot()
    for dst in ("web.provider.internal:80", "web.provider.internal:83", "web.provider.internal:82"):
        trace("consumer/client", dst)
    assert snapshot() == before
    assert any(drops for _, drops in before.values())  # the comparison covers drops
    # the traced packet's own tuple (source port 40000) opened no flow
    flows = control.call(sock, "flows")["flows"]
    assert not [f for f in flows if f["client"][1] == 40000], flows


def test_text_output_is_a_tree(lab) -> None:
    out = vpclab("trace", "-l", LAB, "consumer/client", "web.provider.internal:80", check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "trace consumer/client → web.provider.internal:80 (tcp)"
    assert any("Hyperplane engine" in line for line in lines)
    assert lines[-1].startswith("verdict: reachable")
    bad = vpclab("trace", "-l", LAB, "consumer/nobody", "10.0.0.2:53", "--proto", "udp")
    assert bad.returncode == 2 and "no instance 'nobody'" in bad.stderr
