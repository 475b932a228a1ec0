"""A SYN flood against one PrivateLink service, in the engine alone: what fraction of
legitimate connections still open, whether an established flow survives, and what a
new flow costs while the flood keeps the SNAT pool full — flood against no flood.

The engine is shaped like a lab's forwarder (65,536 flows; the NLB node's client ports
1152-65535 toward one target). The flood is 1,000,000 SYNs from distinct spoofed
sources, sent by the C driver (native/hp_bench.c) in runs between legitimate
handshakes. A legitimate handshake is SYN, then `rtt` flood SYNs (the flood that
passes while the SYN travels to the target and its SYN-ACK comes back), then the
SYN-ACK, the client's ACK and one data segment, all forwarded or it counts as failed.
After each, one segment of a connection established before the flood must still pass.
`rtt` is swept against the pool's size: eviction keeps the oldest half-open flows'
ports turning over, so a handshake survives while fewer than ~64k flood SYNs pass
during its round trip (at 30,000 SYNs/s, about 2 s).

Figures are ratios and counts; nothing here asserts on time (bench/conftest.py prints).
"""
from __future__ import annotations

import time

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from conftest import record
from dataplane.forwarder.engine import Backend, Engine

EP_MAC, NLB_MAC, ROUTER_MAC = "02:00:00:00:00:e0", "02:00:00:00:00:e1", "02:00:00:00:00:a0"
EP_IP, NLB_IP, TARGET = "10.0.1.50", "10.0.2.100", Backend("10.0.2.20", 8080)
CLIENT = "10.0.1.11"
CLIENT_PORTS = (1152, 65535)   # dataplane/compile/privatelink.py's CLIENT_SNAT_PORTS
FLOOD_SYNS = 1_000_000
HANDSHAKES = 200
S = 1_000_000_000


def engine() -> Engine:
    eng = Engine(flow_capacity=65536)
    eng.set_port(0, EP_MAC, [EP_IP], peer_mac=ROUTER_MAC)
    eng.set_port(1, NLB_MAC, [NLB_IP], peer_mac=ROUTER_MAC)
    sid = eng.add_service(0, 1, EP_IP, 80, snat_ports=CLIENT_PORTS, rst_on_miss=True,
                          hash_tcp_seq=True)
    eng.set_backends(sid, [TARGET])
    return eng


def from_client(sport: int, flags: str, payload: bytes = b"") -> bytes:
    return bytes(Ether(src=ROUTER_MAC, dst=EP_MAC) / IP(src=CLIENT, dst=EP_IP) /
                 TCP(sport=sport, dport=80, flags=flags, seq=100 if flags == "S" else 101, ack=901)
                 / payload)


def from_target(snat_port: int) -> bytes:
    return bytes(Ether(src=ROUTER_MAC, dst=NLB_MAC) / IP(src=TARGET.ip, dst=NLB_IP) /
                 TCP(sport=TARGET.port, dport=snat_port, flags="SA", seq=900, ack=101))


FLOOD = bytes(Ether(src=ROUTER_MAC, dst=EP_MAC) / IP(src="10.0.128.1", dst=EP_IP) /
              TCP(sport=1024, dport=80, flags="S"))


def handshake(eng: Engine, sport: int, flood_between: int, first_flood: int, t: int) -> bool:
    """A legitimate connection with `flood_between` flood SYNs during its round trip."""
    syn = eng.simulate(from_client(sport, "S"), 0, t)
    if syn.verdict != "forward":
        return False
    eng.bench_new_flows(0, FLOOD, first_flood, 256, flood_between, t)
    ok = eng.simulate(from_target(Ether(syn.frame)[TCP].sport), 1, t)
    if ok.verdict != "forward" or Ether(ok.frame)[TCP].dport != sport:
        return False
    return all(eng.simulate(from_client(sport, flags, data), 0, t).verdict == "forward"
               for flags, data in (("A", b""), ("PA", b"hello")))


def scenario(flood: bool, rtt: int) -> dict[str, float]:
    """Rounds of (flood SYNs, a handshake with `rtt` more during its round trip, a
    segment of the old connection): 200 rounds, fewer when the round trips alone would
    add up to more than the flood (then the flood is made of round trips)."""
    eng = engine()
    assert handshake(eng, 7, 0, 0, S)            # the connection established before the flood
    rounds = max(1, min(HANDSHAKES, FLOOD_SYNS // rtt))
    per_round = FLOOD_SYNS // rounds if flood else 0
    between = min(rtt, per_round)
    sent = opened = survived = 0
    for i in range(rounds):
        t = S + i * S // 100
        sent += eng.bench_new_flows(0, FLOOD, sent, 256, per_round - between, t)
        opened += handshake(eng, 20000 + i, between, sent, t)
        sent += between
        survived += eng.simulate(from_client(7, "PA", b"still here"), 0, t).verdict == "forward"
    c = eng.counters(0)
    return {"opened": opened / rounds, "survived": survived / rounds,
            "evicted": c["evicted_port_pool"] + c["evicted_table_full"],
            "refused": eng.drops(0)["port_allocation"] + eng.drops(0)["flow_table_full"]}


@pytest.mark.parametrize("rtt", [100, 10_000, 50_000, 100_000])
def test_legitimate_connections_under_a_flood(rtt: int) -> None:
    calm = scenario(False, rtt)
    flood = scenario(True, rtt)
    note = (f"flood/no flood; {flood['evicted']:,} evicted, {flood['refused']:,} refused; "
            f"{rtt:,} flood SYNs per round trip")
    record(f"legit connections opened, flood/no flood (rtt {rtt:,} SYNs)", "ratio",
           [flood["opened"] / calm["opened"]], note)
    record(f"established flow survival, flood/no flood (rtt {rtt:,} SYNs)", "ratio",
           [flood["survived"] / calm["survived"]], "")


def test_new_flow_cost_with_the_pool_full() -> None:
    """ns per flood SYN once the pool is full (each evicts the oldest half-open holder
    among 8 candidates) over ns per SYN into an empty pool."""
    ratios = []
    for _ in range(3):
        eng = engine()
        t0 = time.perf_counter_ns()
        eng.bench_new_flows(0, FLOOD, 0, 256, 50_000, S)
        empty = (time.perf_counter_ns() - t0) / 50_000
        eng.bench_new_flows(0, FLOOD, 50_000, 256, 50_000, S)   # the pool is full now
        t0 = time.perf_counter_ns()
        eng.bench_new_flows(0, FLOOD, 100_000, 256, 200_000, S)
        full = (time.perf_counter_ns() - t0) / 200_000
        ratios.append(full / empty)
    record("ns per new flow, pool full (evicting) / pool empty", "ratio", ratios,
           "the SNAT search stops at 8 candidates under pressure")
