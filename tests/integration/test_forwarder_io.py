"""The forwarder's data path on real veths: AF_PACKET rings, the C poll loop, real TCP.

A minimal PrivateLink shape, built here with pyroute2 in three namespaces named
`tio-<pid>-…` (removed afterwards, also when a test fails):

    tio-cli   eth0 10.0.1.10/24 ── eni0 ┐            ┌ eni1 ── eth0 10.0.2.20/24   tio-srv
                                         tio-hp: forwarder
    endpoint ENI = port 0, 10.0.1.50     (no addresses)      NLB ENI = port 1, 10.0.2.100

Segmentation offload is off on both eth0s, which transmit into the forwarder
(netns_setup.offload says why). The client connects to 10.0.1.50:80; the engine answers ARP for both ENI addresses and
translates to 10.0.2.100 → 10.0.2.20:8080. The kernels at both ends verify every
checksum (TcpInCsumErrors must stay 0), including those of segments the client's stack
left for offload (CHECKSUM_PARTIAL), which the forwarder completes.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from pyroute2 import NetNS, netns

from dataplane.engine import Backend, Engine
from dataplane.forwarder import Forwarder
from netns_setup.offload import disable_segmentation_offload

pytestmark = pytest.mark.root

PREFIX = f"tio-{os.getpid()}"
CLI, HP, SRV = f"{PREFIX}-cli", f"{PREFIX}-hp", f"{PREFIX}-srv"
EP_IP, NLB_IP, CLIENT_IP, TARGET_IP = "10.0.1.50", "10.0.2.100", "10.0.1.10", "10.0.2.20"

SERVER = textwrap.dedent("""
    import hashlib, socket, sys
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 8080)); srv.listen(16); srv.settimeout(30)
    print("ready", flush=True)
    for _ in range(int(sys.argv[1])):
        conn, peer = srv.accept(); conn.settimeout(30)
        size = int.from_bytes(conn.recv(8, socket.MSG_WAITALL), "big")
        digest = hashlib.sha256()
        while size:
            chunk = conn.recv(min(size, 65536))
            if not chunk: break
            digest.update(chunk); size -= len(chunk)
        conn.sendall(f"{peer[0]} {digest.hexdigest()}".encode()); conn.close()
""")

CLIENT = textwrap.dedent("""
    import hashlib, os, socket, sys
    payload = os.urandom(int(sys.argv[2]))
    s = socket.create_connection((sys.argv[1], 80), timeout=20)
    s.sendall(len(payload).to_bytes(8, "big") + payload)
    s.shutdown(socket.SHUT_WR)
    reply = s.recv(200).decode()
    print(reply, hashlib.sha256(payload).hexdigest())
""")


def in_ns(ns: str, *argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", *argv], capture_output=True,
                          text=True, timeout=60, **kw)


def link_mac(ns: str, ifname: str) -> str:
    with NetNS(ns) as ipr:
        (link,) = ipr.link("get", index=ipr.link_lookup(ifname=ifname)[0])
        return link.get_attr("IFLA_ADDRESS")


def veth_into(host_ns: str, host_ip: str, eni: str) -> None:
    """eth0 in `host_ns` (with an address, MTU 9001) paired with `eni` in the hyperplane."""
    with NetNS(host_ns) as ipr:
        ipr.link("add", ifname="eth0", kind="veth", mtu=9001, peer={"ifname": eni, "net_ns_fd": HP, "mtu": 9001})
        idx = ipr.link_lookup(ifname="eth0")[0]
        ipr.addr("add", index=idx, address=host_ip, prefixlen=24)
        ipr.link("set", index=idx, state="up")
    disable_segmentation_offload("eth0", host_ns)  # it transmits into the forwarder
    with NetNS(HP) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=eni)[0], state="up")


@pytest.fixture
def lab():
    created = []
    try:
        for ns in (CLI, HP, SRV):
            netns.create(ns)
            created.append(ns)
        veth_into(CLI, CLIENT_IP, "eni0")
        veth_into(SRV, TARGET_IP, "eni1")
        eng = Engine(flow_capacity=4096)
        eng.set_port(0, link_mac(HP, "eni0"), [EP_IP], peer_mac=link_mac(CLI, "eth0"))
        eng.set_port(1, link_mac(HP, "eni1"), [NLB_IP], peer_mac=link_mac(SRV, "eth0"))
        svc = eng.add_service(0, 1, EP_IP, 80, "tcp", rst_on_miss=True, hash_tcp_seq=True,
                              mtu=8500, mss_clamp=8460)
        eng.set_backends(svc, [Backend(TARGET_IP, 8080)])
        with Forwarder(eng) as fwd:
            fwd.open_port(0, "eni0", netns=HP)
            fwd.open_port(1, "eni1", netns=HP)
            fwd.start()
            yield fwd
    finally:
        for ns in created:
            netns.remove(ns)


def start_server(connections: int) -> subprocess.Popen:
    srv = subprocess.Popen(["nsenter", f"--net=/run/netns/{SRV}", sys.executable, "-c", SERVER,
                            str(connections)], stdout=subprocess.PIPE, text=True)
    assert srv.stdout.readline().strip() == "ready"
    return srv


def tcp_csum_errors(ns: str) -> int:
    snmp = in_ns(ns, "cat", "/proc/net/snmp").stdout.splitlines()
    names, values = [line.split() for line in snmp if line.startswith("Tcp:")][:2]
    return int(values[names.index("InCsumErrors")])


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
    assert counters["csum_completed"] > 0      # the client's stack left checksums to offload
    assert lab.engine.counters(0)["arp_replies"] >= 1 and lab.engine.counters(1)["arp_replies"] >= 1
    stats = lab.port_stats(1)
    assert stats["tx_frames"] > 100 and stats["tx_ring_full"] == 0
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
