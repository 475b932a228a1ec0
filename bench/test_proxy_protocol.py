"""What PROXY protocol v2 costs the engine (native/hp_proxy.c), as ratios to the same
TCP listener without it, measured in the same rounds on the same machine:

* a new flow (a SYN: the flow also records where its header goes);
* a client segment after the first (the steady state: its sequence number shifted, the
  checksum updated over one word pair, one more cache line read for the flow's extension);
* a first segment (the header built, its CRC32C computed, the payload moved, the whole
  segment summed again): paid once per connection and per retransmission of it.

The loops run in C (native/hp_bench.c) as in bench/test_engine.py; figures are printed by
bench/conftest.py at the end; nothing here asserts on time.
"""
from __future__ import annotations

import time

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from conftest import record
from dataplane.forwarder.engine import Backend, Engine

EP_MAC, NLB_MAC, ROUTER_MAC = "02:00:00:00:00:e0", "02:00:00:00:00:e1", "02:00:00:00:00:a0"
VPCE = "vpce-0a1b2c3d4e5f67890"
ISN = 1000


def frame(flags: str, seq: int, payload: bytes = b"") -> bytes:
    return bytes(Ether(src=ROUTER_MAC, dst=EP_MAC) / IP(src="10.0.1.10", dst="10.0.1.50") /
                 TCP(sport=1024, dport=80, flags=flags, seq=seq, ack=1) / payload)


SYN = frame("S", ISN)
FIRST = frame("PA", ISN + 1, b"\0" * 18)           # where the header goes
LATER = frame("PA", ISN + 1 + 5000, b"\0" * 18)    # shifted only
ROUNDS = 5
FLOWS = 1000


def engine(proxy: bool, capacity: int = 4096) -> Engine:
    eng = Engine(flow_capacity=capacity)
    eng.set_port(0, EP_MAC, ["10.0.1.50"], peer_mac=ROUTER_MAC)
    eng.set_port(1, NLB_MAC, ["10.0.1.100"], peer_mac=ROUTER_MAC)
    sid = eng.add_service(0, 1, "10.0.1.50", 80, "tcp", proxy_v2=proxy,
                          vpce_id=VPCE if proxy else None)
    eng.set_backends(sid, [Backend(f"10.0.2.{i}", 8080) for i in range(1, 65)])
    return eng


def ns_per(fn, n: int) -> float:
    t0 = time.perf_counter_ns()
    done = fn()
    assert done == n, (done, n)
    return (time.perf_counter_ns() - t0) / n


def test_proxy_v2_cost_as_ratios(benchmark) -> None:
    ratios: dict[str, list[float]] = {"new flow": [], "later segment": [], "first segment": []}
    absolute: dict[tuple[str, bool], list[float]] = {}
    packets, flows = 1_000_000, 200_000

    def run():
        figures = {}
        for proxy in (False, True):
            eng = engine(proxy, 1 << 18)
            figures[("new flow", proxy)] = ns_per(lambda: eng.bench_new_flows(0, SYN, 0, 32, flows), flows)
            eng = engine(proxy)
            assert eng.bench_new_flows(0, SYN, 0, 32, FLOWS) == FLOWS
            figures[("later segment", proxy)] = ns_per(
                lambda: eng.bench_established(0, LATER, FLOWS, 32, packets), packets)
            figures[("first segment", proxy)] = ns_per(
                lambda: eng.bench_established(0, FIRST, FLOWS, 32, packets), packets)
            if proxy:
                assert eng.counters(0)["proxy_headers"] == packets
        for name in ratios:
            ratios[name].append(figures[(name, True)] / figures[(name, False)])
        for key, value in figures.items():
            absolute.setdefault(key, []).append(value)

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    for name, values in ratios.items():
        unit = "ns/flow" if name == "new flow" else "ns/packet"
        record(f"TCP listener, {name}, no PROXY", unit, absolute[(name, False)], "-")
        record(f"TCP listener, {name}, PROXY v2", unit, absolute[(name, True)], "-")
        record(f"PROXY v2 / none: {name}", "ratio", values, "-")
