"""NLB health checks never compete with client flows for source ports (issue 13 part 4):
a node's pool is split, checks in HEALTH_SNAT_PORTS, clients in CLIENT_SNAT_PORTS, so a
flood that exhausts the clients' ports toward a target still leaves the checks theirs
(before, the checks failed, the node called the target unhealthy and reset its flows)."""
from __future__ import annotations

import pathlib

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from conftest import EP_IP, EP_PORT, NLB_PORT, S, from_client, make_engine
from dataplane.compile import hyperplane
from dataplane.compile.privatelink import CLIENT_SNAT_PORTS, HEALTH_SNAT_PORTS
from dataplane.compile.spec import PrivateLinkService
from dataplane.forwarder.engine import Backend
from dataplane.model import load

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "privatelink.yaml"
HEALTH_PORT, HEALTH_MAC, HEALTH_VIP = 2, "02:00:00:00:00:e2", "198.18.0.1"
CHECKER_MAC, CHECKER_IP = "02:00:00:00:00:c2", "169.254.255.2"
TARGET = Backend("10.0.1.20", 8080)


def test_the_compiled_pools_of_every_node_are_disjoint() -> None:
    lab = load(EXAMPLE)
    ports = hyperplane.ports(lab)
    macs = {i: ("02:00:00:00:01:01", "02:00:00:00:02:01") for i in range(len(ports) + 1)}
    services = [s for s in hyperplane.compile_spec(lab, ports, macs, {
        "consumer/web-ep": {"state": "available"}}).services if isinstance(s, PrivateLinkService)]
    health = [s for s in services if s.name.startswith("health:")]
    clients = [s for s in services if not s.name.startswith("health:")]
    assert health and clients
    assert {s.snat_ports for s in health} == {HEALTH_SNAT_PORTS}
    assert {s.snat_ports for s in clients} == {CLIENT_SNAT_PORTS}
    assert HEALTH_SNAT_PORTS[1] < CLIENT_SNAT_PORTS[0] and CLIENT_SNAT_PORTS[1] == 65535


def test_a_check_opens_its_flow_when_clients_have_exhausted_the_nodes_ports() -> None:
    eng = make_engine(capacity=1 << 17)
    eng.set_port(HEALTH_PORT, HEALTH_MAC, ["169.254.255.1"],
                 peer_mac=CHECKER_MAC)
    client = eng.add_service(EP_PORT, NLB_PORT, EP_IP, 80, snat_ports=CLIENT_SNAT_PORTS)
    eng.set_backends(client, [TARGET])
    check = eng.add_service(HEALTH_PORT, NLB_PORT, HEALTH_VIP, 8080, snat_ports=HEALTH_SNAT_PORTS)
    eng.set_backends(check, [TARGET])
    # A flood of SYNs, each from its own source, fills every client port toward the target;
    # past that, each new SYN takes the port of the oldest half-open flow.
    pool = CLIENT_SNAT_PORTS[1] - CLIENT_SNAT_PORTS[0] + 1
    opened = eng.bench_new_flows(EP_PORT, from_client(TCP(sport=1, dport=80, flags="S")), 0, 256,
                                 pool + 500, S)
    assert opened == pool + 500 and eng.drops(EP_PORT)["port_allocation"] == 0
    # (the allocator's search is bounded, so it evicts before the last few percent are found)
    evicted = eng.counters(EP_PORT)["evicted_port_pool"]
    assert 500 <= evicted < 0.05 * pool and eng.flow_count == pool + 500 - evicted
    # The node's check still gets a port, from its own range.
    syn = bytes(Ether(src=CHECKER_MAC, dst=HEALTH_MAC) / IP(src=CHECKER_IP, dst=HEALTH_VIP) /
                TCP(sport=40000, dport=8080, flags="S"))
    r = eng.simulate(syn, HEALTH_PORT, 2 * S)
    assert r.verdict == "forward", r.drop_reason
    (flow,) = [f for f in eng.flows() if f.in_port == HEALTH_PORT]
    assert HEALTH_SNAT_PORTS[0] <= flow.snat[1] <= HEALTH_SNAT_PORTS[1]
