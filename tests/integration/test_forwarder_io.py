"""The forwarder's data path on real veths: AF_PACKET rings, the C poll loop, real TCP.

The topology is minilab's: a client, the forwarder's namespace, a target. The client
connects to the endpoint 10.0.1.50:80; the engine answers ARP for both ENI addresses and
translates to 10.0.2.100 → 10.0.2.20:8080. The kernels at both ends verify every
checksum (TcpInCsumErrors must stay 0), including those of segments the client's stack
left for offload (CHECKSUM_PARTIAL), which the forwarder hands on partial, and GSO frames,
which it forwards whole for the receiving kernel to cut.
"""
from __future__ import annotations

import sys
import time

import pytest

from dataplane.forwarder.engine import Backend, Engine, EngineError
from dataplane.forwarder.io import Forwarder, max_frame
from .minilab import (CLI, CLIENT, EP_IP, HP, NLB_IP, SRV, TARGET_IP, in_ns, start_server,
                     tcp_csum_errors)
from . import minilab

pytestmark = pytest.mark.root


# The forwarder as labs run it, and with busy polling and ordinary scheduling.
@pytest.fixture(params=[{}, {"busy_poll_us": 500, "rt_priority": 0}], ids=["default", "busy-poll"])
def lab(request):
    minilab.create()
    try:
        eng = Engine(flow_capacity=4096)
        for port in minilab.port_specs():
            eng.set_port(port["id"], port["mac"], port["addrs"], peer_mac=port["peer_mac"])
        svc = eng.add_service(0, 1, EP_IP, 80, "tcp", rst_on_miss=True, hash_tcp_seq=True,
                              mtu=8500, mss_clamp=8460)
        eng.set_backends(svc, [Backend(TARGET_IP, 8080)])
        with Forwarder(eng, **request.param) as fwd:
            fwd.open_port(0, "eni0", netns=HP)
            fwd.open_port(1, "eni1", netns=HP)
            fwd.start()
            yield fwd
    finally:
        minilab.remove()


def test_tcp_through_the_forwarder_is_translated_and_checksums_hold(lab: Forwarder) -> None:
    sizes = [10, 100_000, 3_000_000]
    srv = start_server(len(sizes))
    try:
        for size in sizes:
            out = in_ns(CLI, sys.executable, "-c", CLIENT, EP_IP, str(size))
            assert out.returncode == 0, out.stderr
            seen_source, server_digest, client_digest = out.stdout.split()
            assert seen_source == NLB_IP          # the target sees the NLB ENI, never the client
            assert server_digest == client_digest  # every byte arrived intact
    finally:
        srv.wait(timeout=30)
    assert tcp_csum_errors(SRV) == 0 and tcp_csum_errors(CLI) == 0
    counters = lab.engine.counters(0)
    assert counters["flows_created"] == len(sizes)
    assert counters["csum_kept_partial"] > 0   # the client's stack left checksums to offload
    assert counters["gso_frames"] > 0          # ... and handed over GSO frames
    io = lab.port_stats(0)
    assert io["rx_gso_frames"] > 0 and io["rx_truncated"] == 0
    assert lab.engine.counters(0)["arp_replies"] >= 1 and lab.engine.counters(1)["arp_replies"] >= 1
    stats = lab.port_stats(1)
    # 3.1 MB went out toward the target: at least one slot-sized GSO frame per 64 KB
    assert stats["tx_frames"] >= sum(sizes) // max_frame() and stats["tx_ring_full"] == 0
    assert stats["tx_direct"] > 0  # GSO frames left by sendmsg() from their receive slot
    # busy polling read the rings without poll() wake-ups; without it, it never does
    assert (io["busy_polls"] > 0) == bool(lab.busy_poll_us)
    flows = lab.engine.flows()
    assert {f.backend for f in flows} == {(TARGET_IP, 8080)} and {f.snat[0] for f in flows} == {NLB_IP}


def test_table_changes_under_a_running_loop_and_the_clock_offset(lab: Forwarder) -> None:
    srv = start_server(1)
    try:
        assert in_ns(CLI, sys.executable, "-c", CLIENT, EP_IP, "1000").returncode == 0
    finally:
        srv.wait(timeout=30)
    assert lab.engine.flow_count == 1
    # Disable the service while the loop runs: new connections get no answer.
    with lab.locked() as eng:
        eng.set_service_flags(0, disabled=True)
    out = in_ns(CLI, sys.executable, "-c", "import socket; socket.create_connection(('%s', 80), timeout=1)" % EP_IP)
    assert out.returncode != 0 and "timed out" in out.stderr
    assert lab.engine.drops(0)["service_disabled"] >= 1
    # Move the forwarder's clock past every timeout: the idle loop ages the flow away.
    lab.set_clock_offset(400)
    deadline = time.monotonic() + 5
    while lab.engine.flow_count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lab.engine.flow_count == 0
    assert lab.engine.counters(0)["flows_expired"] == 1


def test_a_port_closes_and_opens_again_while_the_loop_runs(lab: Forwarder) -> None:
    """hp_io_port_close under a running loop: the port's socket goes (its stats with it),
    frames toward it are no longer sent, and the same port opens again on the same
    veth and carries a new connection; the loop never stopped."""
    srv = start_server(1)
    try:
        assert in_ns(CLI, sys.executable, "-c", CLIENT, EP_IP, "1000").returncode == 0
    finally:
        srv.wait(timeout=30)
    lab.close_port(1)
    assert 1 not in lab.ports and lab.running
    with pytest.raises(EngineError, match="port 1 is not open"):
        lab.port_stats(1)
    with pytest.raises(EngineError, match="cannot close port 1"):
        lab.close_port(1)
    # the SYN is translated, but the target's side has no socket any more: no answer
    out = in_ns(CLI, sys.executable, "-c",
                "import socket; socket.create_connection(('%s', 80), timeout=1)" % EP_IP)
    assert out.returncode != 0 and "timed out" in out.stderr
    assert lab.port_stats(0)["rx_frames"] > 0
    lab.open_port(1, "eni1", netns=HP)
    srv = start_server(1)
    try:
        out = in_ns(CLI, sys.executable, "-c", CLIENT, EP_IP, "100000")
        assert out.returncode == 0, out.stderr
    finally:
        srv.wait(timeout=30)
    assert lab.port_stats(1)["tx_frames"] > 0 and lab.running
