"""Fixtures for the engine's unit tests: one PrivateLink-shaped engine, and packet builders.

The topology every golden table uses (addresses overlap on purpose, as consumer and
provider VPCs may):

    port 0  endpoint ENI  02:00:00:00:00:e0  10.0.1.50   peer (consumer VPC router) 02:..:a0
    port 1  NLB ENI       02:00:00:00:00:e1  10.0.1.100  peer (provider VPC router) 02:..:a1
    service 0: 10.0.1.50:80/tcp on port 0 ⇒ SNAT 10.0.1.100 on port 1 ⇒ TARGETS
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from dataplane.forwarder.engine import Backend, Engine

EP_PORT, NLB_PORT = 0, 1
EP_MAC, NLB_MAC = "02:00:00:00:00:e0", "02:00:00:00:00:e1"
CONSUMER_ROUTER_MAC, PROVIDER_ROUTER_MAC = "02:00:00:00:00:a0", "02:00:00:00:00:a1"
CLIENT, EP_IP, NLB_IP = "10.0.1.10", "10.0.1.50", "10.0.1.100"
TARGETS = [Backend("10.0.1.20", 8080), Backend("10.0.2.21", 8080)]
S = 1_000_000_000  # ns per second


def make_engine(capacity: int = 4096, **kw) -> Engine:
    eng = Engine(flow_capacity=capacity, **kw)
    eng.set_port(EP_PORT, EP_MAC, [EP_IP], peer_mac=CONSUMER_ROUTER_MAC)
    eng.set_port(NLB_PORT, NLB_MAC, [NLB_IP], peer_mac=PROVIDER_ROUTER_MAC)
    return eng


@pytest.fixture
def engine() -> Engine:
    return make_engine()


@pytest.fixture
def tcp_service(engine: Engine) -> int:
    svc = engine.add_service(EP_PORT, NLB_PORT, EP_IP, 80, "tcp", rst_on_miss=True,
                             hash_tcp_seq=True)
    engine.set_backends(svc, TARGETS)
    return svc


def from_client(l4, src: str = CLIENT, dst: str = EP_IP) -> bytes:
    """A frame the consumer VPC router hands to the endpoint ENI."""
    return bytes(Ether(src=CONSUMER_ROUTER_MAC, dst=EP_MAC) / IP(src=src, dst=dst) / l4)


def from_target(l4, src: str, dst: str = NLB_IP) -> bytes:
    """A frame the provider VPC router hands to the NLB ENI."""
    return bytes(Ether(src=PROVIDER_ROUTER_MAC, dst=NLB_MAC) / IP(src=src, dst=dst) / l4)


def open_connection(engine: Engine, sport: int = 40000, t: int = S, src: str = CLIENT):
    """A whole TCP handshake through the engine (SYN, the target's SYN-ACK, the client's
    ACK) from `src`:`sport` to the endpoint's port 80; returns the flow, ESTABLISHED."""
    engine.simulate(from_client(TCP(sport=sport, dport=80, flags="S", seq=100), src), EP_PORT, t)
    flow = next(f for f in engine.flows() if f.client == (src, sport))
    out = engine.simulate(from_target(TCP(sport=flow.backend[1], dport=flow.snat[1], flags="SA",
                                          seq=900, ack=101), flow.backend[0]), NLB_PORT, t)
    assert out.verdict == "forward", out.drop_reason
    engine.simulate(from_client(TCP(sport=sport, dport=80, flags="A", seq=101, ack=901), src), EP_PORT, t)
    return next(f for f in engine.flows() if f.client == (src, sport))


def recomputed(frame: bytes) -> bytes:
    """The same frame with every checksum scapy knows recomputed from scratch."""
    pkt = Ether(frame)
    for layer in (IP, TCP, UDP, ICMP):
        if layer in pkt:
            del pkt[layer].chksum
    # scapy keeps a zero UDP checksum as "none" only if told so
    if UDP in pkt and Ether(frame)[UDP].chksum == 0:
        pkt[UDP].chksum = 0
    return bytes(pkt)
