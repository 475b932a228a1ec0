"""The control API refuses bad input with a message naming what is wrong, and leaves
the engine as it was."""
from __future__ import annotations

import os

import pytest
from scapy.layers.inet import TCP

from conftest import EP_IP, EP_MAC, EP_PORT, NLB_PORT, S, from_client, make_engine
from dataplane.forwarder.engine import (COUNTERS, DROP_REASON_TEXT, DROP_REASONS, Backend, Engine,
                              EngineError, SgRule, build_info)


@pytest.mark.parametrize("kwargs, message", [
    ({"flow_capacity": 0}, "flow_capacity must be between 1"),
    ({"flow_capacity": 16, "maglev_size": 65536}, "maglev_size must be a prime"),
    ({"flow_capacity": 16, "max_services": 70000}, "max_services must be at most 65535"),
])
def test_engine_creation_errors(kwargs, message: str) -> None:
    with pytest.raises(EngineError, match=message):
        Engine(**kwargs)


@pytest.mark.parametrize("call, message", [
    (lambda e: e.set_port(300, EP_MAC, []), "port 300 is out of range"),
    (lambda e: e.set_port(2, "00:00:00:00:00:00", []), "non-zero unicast"),
    (lambda e: e.set_port(2, "01:00:5e:00:00:01", []), "non-zero unicast"),
    (lambda e: e.set_port(2, "02:00:00:00:00", []), "is not a MAC address"),
    (lambda e: e.set_port(2, EP_MAC, [f"10.0.0.{i}" for i in range(9)]), "at most 8"),
    (lambda e: e.add_service(EP_PORT, 7, EP_IP, 80), "port 7 does not exist"),
    (lambda e: e.add_service(EP_PORT, NLB_PORT, EP_IP, 80, "sctp"), "unknown protocol 'sctp'"),
    (lambda e: e.add_service(EP_PORT, NLB_PORT, EP_IP, 80, 47), "must be TCP"),
    (lambda e: e.add_service(EP_PORT, NLB_PORT, EP_IP, 0, "tcp"), "needs a listener port"),
    (lambda e: e.add_service(EP_PORT, NLB_PORT, EP_IP, 7, "icmp"), "ICMP service listens on port 0"),
    (lambda e: e.add_service(EP_PORT, NLB_PORT, EP_IP, 80, snat_ports=(9, 8)), "SNAT port range 9-8"),
    (lambda e: e.add_service(EP_PORT, NLB_PORT, EP_IP, 80, mtu=40), "below IPv4's minimum"),
    (lambda e: e.set_backends(5, []), "service 5 does not exist"),
    (lambda e: e.set_security_group(EP_PORT, "sideways", []), "'ingress' or 'egress'"),
    (lambda e: e.set_security_group(EP_PORT, "ingress", [SgRule("tcp", "0.0.0.0/0", 9, 1)]), "rule 0 is invalid"),
    (lambda e: e.remove_port(9), "port 9 does not exist"),
])
def test_control_errors_name_the_problem(call, message: str) -> None:
    eng = make_engine()
    with pytest.raises(EngineError, match=message):
        call(eng)


def test_duplicate_listener_and_port_in_use() -> None:
    eng = make_engine()
    sid = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80)
    with pytest.raises(EngineError, match=r"already has a service on 10.0.1.50:80/6"):
        eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80)
    with pytest.raises(EngineError, match="used by service 0"):
        eng.remove_port(NLB_PORT)
    with pytest.raises(EngineError, match="backend 0 has port 0"):
        eng.set_backends(sid, [Backend("10.0.2.1", 0)])
    # the refused calls changed nothing: the service still works
    eng.set_backends(sid, [Backend("10.0.2.1", 8080)])
    assert eng.simulate(from_client(TCP(dport=80, flags="S")), EP_PORT, S).verdict == "forward"


def test_removing_a_service_removes_its_flows_and_then_its_ports_can_go() -> None:
    eng = make_engine()
    sid = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80)
    eng.set_backends(sid, [Backend("10.0.2.1", 8080)])
    eng.simulate(from_client(TCP(dport=80, flags="S")), EP_PORT, S)
    assert eng.flow_count == 1
    eng.remove_service(sid)
    assert eng.flow_count == 0
    assert eng.simulate(from_client(TCP(dport=80, flags="A")), EP_PORT, S).drop_reason == "no_service"
    eng.remove_port(NLB_PORT)
    assert eng.simulate(b"\0" * 64, NLB_PORT, S).drop_reason == "unknown_port"
    assert eng.drops(NLB_PORT)["unknown_port"] == 1  # counted on the id's slot


def test_every_reason_and_counter_has_a_name_and_a_text() -> None:
    assert DROP_REASONS[0] == "none" and len(set(DROP_REASONS)) == len(DROP_REASONS)
    assert all(DROP_REASON_TEXT[r] for r in DROP_REASONS)
    assert {"rx_packets", "tx_packets", "dropped", "flows_created", "flows_expired"} <= set(COUNTERS)
    eng = make_engine()
    assert set(eng.drops(EP_PORT)) == set(DROP_REASONS[1:])


def test_rx_tx_and_drop_counters_add_up() -> None:
    eng = make_engine()
    sid = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80)
    eng.set_backends(sid, [Backend("10.0.2.1", 8080)])
    frames = [from_client(TCP(sport=p, dport=80, flags="S")) for p in range(10)] + [b"\0" * 8] * 3
    eng.process(EP_PORT, frames, S)
    c = eng.counters(EP_PORT)
    assert c["rx_packets"] == 13 and c["rx_bytes"] == sum(map(len, frames))
    assert c["dropped"] == 3 == sum(eng.drops(EP_PORT).values())
    assert eng.counters(NLB_PORT)["tx_packets"] == 10


def test_build_matches_the_run() -> None:
    """Under `make sanitize` the engine must really be the ASan/UBSan build."""
    expected = "asan,ubsan" if os.environ.get("VPCLAB_EXPECT_SANITIZE") == "1" else "release"
    assert build_info() == expected
