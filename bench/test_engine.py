"""Micro-benchmarks of the C engine alone (no sockets): ns per packet of an established
flow, ns per new flow, ns per packet with 1,000,000 live flows, bytes per flow — for a
PrivateLink listener (an exact VIP match) and for a VPC link (VPC-to-VPC NAT: a prefix
match on the attachment port, consulted after the exact lookup misses).

The loops run in C (native/hp_bench.c), so the Python call is paid once per run of
hundreds of thousands of packets. Each packet is copied into a batch slot and given its
flow's source first, as a receive ring would hand it over; that copy is counted in.
Targets on the 2-core VM: ≤ 50 ns per established packet, ≤ 250 ns per new flow,
≤ 128 bytes per flow (the kernel's conntrack entry is over 248).

Figures are printed by bench/conftest.py at the end; nothing here asserts on time.
"""
from __future__ import annotations

import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from conftest import record
from dataplane.forwarder.engine import Backend, Engine, LinkEni

EP_MAC, NLB_MAC = "02:00:00:00:00:e0", "02:00:00:00:00:e1"
ROUTER_MAC = "02:00:00:00:00:a0"
# 64-byte frames on the wire less the FCS: 14 + 20 + 8 + 18 bytes of payload = 60.
FRAME = bytes(Ether(src=ROUTER_MAC, dst=EP_MAC) / IP(src="10.0.1.10", dst="10.0.1.50") /
              UDP(sport=1024, dport=53) / (b"\0" * 18))
ROUNDS = 5


KINDS = ["privatelink", "vpc_nat"]


def engine(capacity: int, kind: str = "privatelink") -> Engine:
    """Port 0 receives FRAME. PrivateLink: a UDP listener on its address, 64 backends
    behind port 1. VPC link: attached on port 0, reaching 10.0.0.0/8 (FRAME's
    destination included) through 16 ENIs on ports 1-16, chosen by hash (no route), so
    that 500,000 flows to FRAME's one destination find SNAT ports (64,512 per ENI)."""
    eng = Engine(flow_capacity=capacity)
    eng.set_port(0, EP_MAC, ["10.0.1.50"], peer_mac=ROUTER_MAC)
    eng.set_port(1, NLB_MAC, ["10.0.1.100"], peer_mac=ROUTER_MAC)
    if kind == "vpc_nat":
        enis = [LinkEni(i, f"10.0.3.{i}") for i in range(1, 17)]
        for eni in enis[1:]:
            eng.set_port(eni.port, f"02:00:00:00:01:{eni.port:02x}", [eni.ip], peer_mac=ROUTER_MAC)
        eng.add_vpc_link(0, ["10.0.0.0/8"], enis)
        return eng
    sid = eng.add_service(0, 1, "10.0.1.50", 53, "udp")
    eng.set_backends(sid, [Backend(f"10.0.2.{i}", 53) for i in range(1, 65)])
    return eng


def timed(fn) -> tuple[float, int]:
    t0 = time.perf_counter_ns()
    n = fn()
    return time.perf_counter_ns() - t0, n


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_flows", [1, 1000])
@pytest.mark.parametrize("batch", [32, 256])
def test_established_packet(benchmark, batch: int, n_flows: int, kind: str) -> None:
    eng = engine(4096, kind)
    assert eng.bench_new_flows(0, FRAME, 0, batch, n_flows) == n_flows
    packets = 2_000_000
    runs = []

    def run():
        ns, forwarded = timed(lambda: eng.bench_established(0, FRAME, n_flows, batch, packets))
        assert forwarded == packets
        runs.append(ns / packets)

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    record(f"{kind}: established packet, {n_flows} flow(s), batch {batch}", "ns/packet", runs[1:], "≤ 50")


def test_harness_alone(benchmark) -> None:
    """The copy and patch the drivers do per packet, with an engine call that returns at
    once (a port that does not exist): subtract it to see the engine's own cost."""
    eng = engine(4096)
    packets = 2_000_000
    runs = []

    def run():
        ns, forwarded = timed(lambda: eng.bench_established(200, FRAME, 1000, 32, packets))
        assert forwarded == 0
        runs.append(ns / packets)

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    record("harness alone (copy, patch, empty call), batch 32", "ns/packet", runs[1:], "-")


@pytest.mark.parametrize("kind", KINDS)
def test_new_flow(benchmark, kind: str) -> None:
    flows = 500_000
    runs = []

    def setup():
        return (engine(1 << 20, kind),), {}

    def run(eng: Engine):
        ns, forwarded = timed(lambda: eng.bench_new_flows(0, FRAME, 0, 32, flows))
        assert forwarded == flows and eng.flow_count == flows
        runs.append(ns / flows)

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    record(f"{kind}: new flow (both keys installed, SNAT port allocated)", "ns/flow", runs, "≤ 250")


def test_established_with_a_million_flows(benchmark) -> None:
    flows = 1_000_000
    eng = engine(1 << 20)
    assert eng.bench_new_flows(0, FRAME, 0, 256, flows) == flows
    packets = 2_000_000
    runs = []

    def run():
        ns, forwarded = timed(lambda: eng.bench_established(0, FRAME, flows, 32, packets))
        assert forwarded == packets
        runs.append(ns / packets)

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    record("established packet, 1,000,000 live flows, batch 32", "ns/packet", runs, "≤ 50")
    record("flow table memory", "bytes/flow", [eng.flow_bytes_per_flow], "≤ 128")
