"""A three-namespace PrivateLink shape for the forwarder's root tests, built with
netns_setup/scratch.py's builder (no lab layer), named `tio-<pid>-…` so parallel runs
and leftovers are told apart, and removed by `remove()` also when a test fails:

    tio-cli   eth0 10.0.1.10/24 ── eni0 ┐            ┌ eni1 ── eth0 10.0.2.20/24   tio-srv
                                         tio-hp: forwarder
    endpoint ENI = port 0, 10.0.1.50     (no addresses)      NLB ENI = port 1, 10.0.2.100

Both eth0s transmit into the forwarder: they keep segmentation offload, with GSO frames
cut to what a ring slot takes (netns_setup/offload.py says why).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

from dataplane.forwarder.io import max_frame
from netns_setup.kernel import link_mac
from netns_setup.offload import cap_gso_size
from netns_setup.scratch import Scratch

SCRATCH = Scratch("tio-")
PREFIX = SCRATCH.prefix.rstrip("-")
CLI, HP, SRV = SCRATCH.name("cli"), SCRATCH.name("hp"), SCRATCH.name("srv")
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
    s = socket.create_connection((sys.argv[1], 80), timeout=float(sys.argv[3]) if len(sys.argv) > 3 else 20)
    s.sendall(len(payload).to_bytes(8, "big") + payload)
    s.shutdown(socket.SHUT_WR)
    reply = s.recv(200).decode()
    print(reply, hashlib.sha256(payload).hexdigest())
""")


def in_ns(ns: str, *argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", *argv], capture_output=True,
                          text=True, timeout=60, **kw)


def veth_into(host_ns: str, host_ip: str, eni: str) -> None:
    """eth0 in `host_ns` (with an address, MTU 9001) paired with `eni` in the hyperplane."""
    SCRATCH.veth(host_ns, "eth0", HP, eni, mtu=9001)
    SCRATCH.address(host_ns, "eth0", host_ip, 24)
    cap_gso_size("eth0", host_ns, max_frame())  # it transmits into the forwarder


def create() -> None:
    """Makes the three namespaces and two veth pairs; on failure removes what it made."""
    with SCRATCH.undone_on_failure():
        for role in ("cli", "hp", "srv"):
            SCRATCH.namespace(role)
        veth_into(CLI, CLIENT_IP, "eni0")
        veth_into(SRV, TARGET_IP, "eni1")


def remove() -> None:
    """Ends the processes left inside the namespaces (by PID), removes them."""
    SCRATCH.remove()


def port_specs() -> list[dict]:
    """The two engine ports, as a forwarder spec lists them."""
    return [
        {"id": 0, "name": "eni0", "ifname": "eni0", "mac": link_mac(HP, "eni0"),
         "addrs": [EP_IP], "peer_mac": link_mac(CLI, "eth0")},
        {"id": 1, "name": "eni1", "ifname": "eni1", "mac": link_mac(HP, "eni1"),
         "addrs": [NLB_IP], "peer_mac": link_mac(SRV, "eth0")},
    ]


def start_server(connections: int) -> subprocess.Popen:
    srv = subprocess.Popen(["nsenter", f"--net=/run/netns/{SRV}", sys.executable, "-c", SERVER,
                            str(connections)], stdout=subprocess.PIPE, text=True)
    assert srv.stdout.readline().strip() == "ready"
    return srv


def tcp_csum_errors(ns: str) -> int:
    snmp = in_ns(ns, "cat", "/proc/net/snmp").stdout.splitlines()
    names, values = [line.split() for line in snmp if line.startswith("Tcp:")][:2]
    return int(values[names.index("InCsumErrors")])


