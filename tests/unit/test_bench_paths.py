"""The end-to-end benchmark's traffic and forwarder spec, checked without namespaces.

The flow split (bench/e2e/measure.py) must give the PrivateLink paths the same flows as
before VPC links were measured, and give the VPC-link paths, which address the sink
themselves, flows spread over 32 destination ports so that a million of them fit the
SNAT port pools (64,512 ports per destination). The VPC-link path's forwarder spec
must be one the forwarder takes, and translate the generator's packet as the issue's
formula says: (src, sport, dst, dport) ⇒ (ENI ip, snat port, dst, dport).
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from bench.e2e.measure import split_flows
from bench.e2e.paths import N_TARGETS, TARGET_PORT0, KernelNatPath, VpclabPath, make_path
from bench.e2e.topo import GEN_IP, LINK_ENI_IP, NLB_IP, SINK_IP
from dataplane.forwarder.engine import Engine
from dataplane.compile.spec import ForwarderSpec
from dataplane.forwarder.spec import Applied, apply_spec

SNAT_POOL = 65535 - 1024 + 1


@pytest.mark.parametrize(("flows", "split"), [(1, (1, 1, 1)), (1000, (1, 1000, 1)),
                                              (100_000, (4, 25001, 1)), (1_000_000, (31, 32259, 1))])
def test_one_destination_port_splits_as_before(flows: int, split: tuple[int, int, int]) -> None:
    assert split_flows(flows) == split


@pytest.mark.parametrize("flows", [1, 1000, 20_000, 100_000, 1_000_000])
def test_flows_spread_over_destination_ports_fit_the_snat_pools(flows: int) -> None:
    a, b, d = split_flows(flows, N_TARGETS)
    assert a * b >= flows and math.gcd(a, b) == 1 and b % d == 0
    assert d == (N_TARGETS if flows >= N_TARGETS else 1)
    assert a * b / d <= SNAT_POOL
    if a * b <= 200_000:
        # trafgen's three counters, one step per packet: one cycle of a·b packets gives
        # a·b distinct tuples, the destination port fixed by the source port
        tuples = {(n % a, n % b, n % d) for n in range(a * b)}
        assert len(tuples) == a * b
        assert len({(sport, dport) for _, sport, dport in tuples}) == b


def fake_topology() -> SimpleNamespace:
    names = {"e0": "vb-e0", "e1": "vb-e1", "gen_if": "vb-gen", "sink_if": "vb-sink"}
    macs = dict(zip(names.values(), ("02:00:00:00:0b:e0", "02:00:00:00:0b:e1",
                                     "02:00:00:00:0b:a0", "02:00:00:00:0b:a1")))
    return SimpleNamespace(**names, macs=macs)


def test_vpc_nat_path_spec_translates_as_a_vpc_link() -> None:
    topo = fake_topology()
    path = make_path("vpclab-vpc-nat", topo, "/nonexistent", flow_capacity=1024)
    assert isinstance(path, VpclabPath) and path.kind == "vpc_nat"
    assert path.udp_dst() == (SINK_IP, TARGET_PORT0) and path.figures == ("pps", "new_flows")
    spec = path.spec()
    (link,) = spec["services"]
    assert link["kind"] == "vpc_nat"
    with Engine(flow_capacity=1024) as engine:
        apply_spec(engine, Applied(), ForwarderSpec.from_json(spec))   # as forwarderd reads it
        frame = (Ether(src=topo.macs[topo.gen_if], dst=topo.macs[topo.e0]) /
                 IP(src=GEN_IP, dst=SINK_IP) / UDP(sport=1024, dport=TARGET_PORT0 + 5) / (b"\0" * 18))
        out = engine.simulate(bytes(frame), 0)
    assert (out.verdict, out.out_port) == ("forward", 1), out.drop_reason
    sent = Ether(out.frame)
    assert (sent[IP].src, sent[IP].dst, sent[UDP].dport) == (LINK_ENI_IP, SINK_IP, TARGET_PORT0 + 5)
    assert sent.dst == topo.macs[topo.sink_if]


def test_kernel_snat_is_the_same_snat_without_dnat() -> None:
    snat = make_path("kernel-snat", fake_topology(), "/nonexistent", flow_capacity=0)
    nat = make_path("kernel-nat", fake_topology(), "/nonexistent", flow_capacity=0)
    assert isinstance(snat, KernelNatPath) and snat.udp_dports == N_TARGETS
    assert f"snat ip to {LINK_ENI_IP}" in snat.ruleset() and "dnat" not in snat.ruleset()
    assert f"snat ip to {NLB_IP}" in nat.ruleset() and "dnat" in nat.ruleset()
    with pytest.raises(ValueError, match="unknown path 'kernel-snot'"):
        make_path("kernel-snot", fake_topology(), "/nonexistent", flow_capacity=0)
