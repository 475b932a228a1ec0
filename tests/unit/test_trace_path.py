"""`vpclab trace`'s hop tree built from a model with no root and no lab: the PrivateLink
example (examples/privatelink.yaml) compiled into a forwarder spec, applied to a real
Engine in this process, and asked through the forwarder's own `trace` command handler
(dataplane/trace/dryrun.py) — so every hop but the kernel's is the code a live lab runs.

Cases: the allowed path through DNS, the endpoint, the engine and the NLB to a target;
each refusal with its explanation code (source egress, endpoint ingress, target ingress,
listener port, pending endpoint, no route); the JSON shape; the security-group evaluator
against the rules' meaning."""
from __future__ import annotations

import contextlib
import json
import pathlib
from dataclasses import dataclass, field, replace

import pytest

from dataplane.compile import hyperplane
from dataplane.compile.privatelink import endpoint_states
from dataplane.forwarder.engine import Engine
from dataplane.forwarder.spec import Applied, apply_spec
from dataplane.model import load
from dataplane.model.topology import Rule
from dataplane.trace import TraceError, World, render, trace
from dataplane.trace import dryrun, sg

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "privatelink.yaml"


@dataclass
class LocalForwarder:
    """What dryrun.answer() reads of the daemon, around an Engine in this process."""
    engine: Engine
    applied: Applied = field(default_factory=Applied)
    forwarder: object = None

    def __post_init__(self) -> None:
        self.forwarder = type("Loop", (), {"locked": staticmethod(contextlib.nullcontext)})()

    def port_name(self, pid: int) -> str:
        port = self.applied.ports.get(pid)
        return port.label if port else str(pid)

    def ask(self, port, proto, src, sport, dst, dport) -> dict:
        return dryrun.answer(self, {"cmd": "trace", "port": port, "proto": proto, "src": src,
                                    "sport": sport, "dst": dst, "dport": dport})["trace"]


def lab_and_engine(lab=None, states=None):
    lab = lab or load(EXAMPLE)
    ports = hyperplane.ports(lab)
    macs = {i: (f"02:00:00:00:01:{i:02x}", f"02:00:00:00:02:{i:02x}") for i in range(len(ports) + 4)}
    spec = hyperplane.compile_spec(lab, ports, macs, states or endpoint_states(lab))
    fwd = LocalForwarder(Engine(flow_capacity=1024))
    apply_spec(fwd.engine, fwd.applied, spec)
    return World(lab), fwd


@pytest.fixture(scope="module")
def world_fwd():
    return lab_and_engine()


def hops(t):
    return [(h.kind, h.verdict) for h in t.hops]


def test_the_allowed_path_through_the_endpoint_to_a_target(world_fwd) -> None:
    world, fwd = world_fwd
    t = trace(world, "consumer/client", "web.provider.internal", "tcp", 80, fwd.ask)
    assert t.reachable and t.client_sees == "connected" and t.code is None
    assert hops(t) == [("dns", "info"), ("source_eni", "pass"), ("vpc_router", "pass"),
                       ("hyperplane_eni", "info"), ("engine", "pass"), ("egress_eni", "info"),
                       ("vpc_router", "pass"), ("target_eni", "pass")]
    dns = t.hops[0].facts
    assert dns["chosen"] in dns["answers"] and len(dns["answers"]) == 2  # one ENI per subnet
    client = world.instance("consumer/client").ip
    assert dns["chosen"].rsplit(".", 1)[0] == client.rsplit(".", 1)[0]  # its own subnet's
    engine = t.hops[4].facts["engine"]
    assert engine["kind"] == "privatelink" and engine["backend_how"] == "maglev"
    assert engine["sg_ingress"] == 0 and engine["sg_ingress_rule"]["port_lo"] == 80
    assert engine["out_dst"][1] == 8080 and engine["snat_how"] == "free"
    assert (engine["mtu"], engine["mss_clamp"], engine["mss_out"]) == (8500, 8460, 1460)
    target = t.hops[7].facts
    assert target["instance"] in ("provider/web1", "provider/web2") and target["rule"] == 0
    assert fwd.engine.flow_count == 0   # the dry run opened nothing
    text = render(t)
    assert "Maglev entry" in text and "verdict: reachable" in text and "proxy ARP" in text


def test_json_shape(world_fwd) -> None:
    world, fwd = world_fwd
    doc = trace(world, "consumer/client", "provider/web1", "tcp", 8080, fwd.ask).to_json()
    json.dumps(doc)
    assert list(doc) == ["source", "destination", "protocol", "port", "hops", "verdict"]
    assert doc["verdict"] == {"reachable": False, "explanation_code": "NO_ROUTE_TO_DESTINATION",
                              "component": "vpc_router", "client_sees": "timeout",
                              "reason": doc["verdict"]["reason"]}


def test_a_listener_port_the_nlb_lacks(world_fwd) -> None:
    world, fwd = world_fwd
    ep = world.resolve("consumer", "web.provider.internal")[0]
    t = trace(world, "consumer/client", ep, "tcp", 81, fwd.ask)
    # the NLB has no listener on 81: the engine has no service for it, whatever the SG says
    assert (t.code, t.component, t.client_sees) == \
        ("ELBV2_LISTENER_PORT_RESTRICTION", "engine", "timeout")
    assert t.hops[-1].facts["engine"]["drop_reason"] == "no_service"


def test_each_refusal_names_its_aws_code() -> None:
    lab = load(EXAMPLE)
    consumer, provider = lab.vpcs["consumer"], lab.vpcs["provider"]
    consumer.security_groups["endpoint-sg"].ingress[0] = Rule("tcp", "10.0.9.0/24", 80)
    world, fwd = lab_and_engine(lab)
    t = trace(world, "consumer/client", "web.provider.internal", "tcp", 80, fwd.ask)
    assert (t.code, t.component, t.hops[-1].facts["engine"]["drop_reason"]) == \
        ("ENI_SG_RULES_MISMATCH", "engine", "sg_ingress")
    consumer.security_groups["endpoint-sg"].ingress[0] = Rule("tcp", "10.0.0.0/16", 80)

    provider.security_groups["web-sg"].ingress[0] = Rule("tcp", "192.168.0.0/16", 8080)
    world, fwd = lab_and_engine(lab)
    t = trace(world, "consumer/client", "web.provider.internal", "tcp", 80, fwd.ask)
    assert (t.code, t.component, t.client_sees) == ("ENI_SG_RULES_MISMATCH", "target_eni", "timeout")
    assert "no rule matches" in t.hops[-1].lines[-1]

    consumer.add_security_group("locked", egress=[Rule("udp", "0.0.0.0/0", 53)])
    consumer.instances["client"].security_groups = ["locked"]
    world, fwd = lab_and_engine(lab)
    t = trace(world, "consumer/client", "web.provider.internal", "tcp", 80, fwd.ask)
    assert (t.code, t.component) == ("ENI_SG_RULES_MISMATCH", "source_eni")
    dns = trace(world, "consumer/client", "10.0.0.2", "udp", 53, fwd.ask)
    assert dns.reachable and hops(dns)[-1] == ("vpc_router", "pass")

    states = {k: {**v, "state": "pendingAcceptance"} for k, v in endpoint_states(lab).items()}
    world, fwd = lab_and_engine(load(EXAMPLE), states)
    t = trace(world, "consumer/client", "web.provider.internal", "tcp", 80, fwd.ask)
    assert (t.code, t.hops[-1].facts["engine"]["drop_reason"]) == ("BAD_STATE", "service_disabled")


def test_no_route_and_bad_arguments(world_fwd) -> None:
    world, fwd = world_fwd
    t = trace(world, "consumer/client", "10.9.9.9", "tcp", 80, fwd.ask)
    assert (t.code, t.component) == ("NO_ROUTE_TO_DESTINATION", "vpc_router")
    t = trace(world, "consumer/client", "10.0.1.77", "tcp", 80, fwd.ask)
    assert "no ENI in the VPC has this address" in t.hops[-1].lines[0]
    with pytest.raises(TraceError, match="no address for 'nothing.example'"):
        trace(world, "consumer/client", "nothing.example", "tcp", 80, fwd.ask)
    with pytest.raises(TraceError, match="no instance 'ghost'"):
        trace(world, "consumer/ghost", "10.0.0.2", "udp", 53, fwd.ask)
    with pytest.raises(TraceError, match="needs the destination port"):
        trace(world, "consumer/client", "10.0.0.2", "tcp", None, fwd.ask)
    with pytest.raises(TraceError, match="tcp, udp or icmp"):
        trace(world, "consumer/client", "10.0.0.2", "sctp", 1, fwd.ask)


def test_instances_resolve_by_name_with_the_search_domain(world_fwd) -> None:
    world, _ = world_fwd
    web1 = world.instance("provider/web1").ip
    assert world.resolve("provider", "web1") == [web1]
    assert world.resolve("consumer", "web1") == []


@pytest.mark.parametrize("rule, proto, peer, port, allowed", [
    ({"protocol": "tcp", "ports": (80, 80), "peer": "10.0.0.0/16"}, "tcp", "10.0.1.5", 80, True),
    ({"protocol": "tcp", "ports": (80, 80), "peer": "10.0.0.0/16"}, "tcp", "10.0.1.5", 81, False),
    ({"protocol": "tcp", "ports": (80, 80), "peer": "10.0.0.0/16"}, "udp", "10.0.1.5", 80, False),
    ({"protocol": "tcp", "ports": (80, 80), "peer": "10.0.0.0/16"}, "tcp", "10.1.1.5", 80, False),
    ({"protocol": "udp", "ports": None, "peer": "0.0.0.0/0"}, "udp", "192.0.2.1", 9, True),
    ({"protocol": "icmp", "ports": None, "peer": "0.0.0.0/0"}, "icmp", "192.0.2.1", 8, True),
    ({"protocol": "all", "ports": None, "peer": "sg:web"}, "udp", "10.0.1.9", 53, True),
    ({"protocol": "all", "ports": None, "peer": "sg:web"}, "udp", "10.0.1.8", 53, False),
])
def test_sg_rules_mean_what_nftables_makes_of_them(rule, proto, peer, port, allowed) -> None:
    eni = {"ingress": [{"protocol": "tcp", "ports": (1, 1), "peer": "192.0.2.0/24"}, rule]}
    m = sg.evaluate(eni, "ingress", proto, peer, port, {"web": ["10.0.1.9"]})
    assert m.allowed == allowed and m.index == (1 if allowed else None)
