"""A VPC link (VPC-to-VPC NAT) through the forwarder as a process, on real veths.

minilab's namespaces in another role: its client namespace stands for API Gateway's side
of the link (eni0 is the link's attachment, answering for the gateway 10.0.1.1), and its
target namespace for the customer's VPC, where eni1 is the link ENI 10.0.2.100. The
forwarderd runs a spec whose one service is a `vpc_nat` entry reaching 10.0.2.0/24. A TCP
connection to the target's own address (no VIP: the destination is kept) arrives from the
ENI's address; the ENI's egress rules stop another port; the customer side cannot open a
connection toward the ENI; both kernels verify every checksum.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from . import minilab
from dataplane.forwarder.control import call
from .minilab import CLI, HP, NLB_IP, SRV, TARGET_IP, in_ns, start_server, tcp_csum_errors

pytestmark = pytest.mark.root

GATEWAY = "10.0.1.1"   # the attachment's address, API Gateway's next hop toward the link
LINK = "vpclink-0a1b2c3d4e5f6a7b8"

# Connects to argv[1]:argv[2] within argv[3] seconds and sends a 100 kB request in
# minilab's server protocol (size, payload); prints the server's answer (peer, digest).
CONNECT = textwrap.dedent("""
    import socket, sys
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    payload = bytes(range(256)) * 400
    s.sendall(len(payload).to_bytes(8, "big") + payload)
    s.shutdown(socket.SHUT_WR)
    print(s.recv(200).decode())
""")


def spec() -> dict:
    ports = minilab.port_specs()
    ports[0]["addrs"] = [GATEWAY]
    ports[1]["security_groups"] = {"egress": [{"protocol": "tcp", "cidr": "10.0.2.0/24",
                                               "port_lo": 8080, "port_hi": 8080}]}
    return {"flow_capacity": 1024, "ports": ports,
            "services": [{"name": LINK, "kind": "vpc_nat", "in_port": 0,
                          "prefixes": ["10.0.2.0/24"], "enis": [{"port": 1, "ip": NLB_IP}],
                          "routes": [{"cidr": "10.0.2.0/24", "eni": 0}],
                          "protocols": ["tcp", "udp"], "snat_ports": [1024, 65535],
                          "idle_timeout_s": 350, "mtu": 8500, "mss_clamp": 8460,
                          "disabled": False}]}


@pytest.fixture
def daemon(tmp_path):
    minilab.create()
    sock = str(tmp_path / "forwarder.sock")
    spec_file = tmp_path / "spec.json"
    proc = None
    try:
        route = in_ns(CLI, "ip", "route", "add", "10.0.2.0/24", "via", GATEWAY, "dev", "eth0")
        assert route.returncode == 0, route.stderr
        spec_file.write_text(json.dumps(spec()))
        proc = subprocess.Popen([sys.executable, "-m", "dataplane.forwarder.daemon", "--spec", str(spec_file),
                                 "--socket", sock, "--netns", HP], stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert "listening on" in line, line
        yield sock
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        minilab.remove()


def test_connection_over_the_link_comes_from_the_eni_and_is_one_way(daemon) -> None:
    sock = daemon
    srv = start_server(1)
    try:
        out = in_ns(CLI, sys.executable, "-c", CONNECT, TARGET_IP, "8080", "20")
        assert out.returncode == 0, out.stderr
    finally:
        srv.wait(timeout=30)
    seen_source, _digest = out.stdout.split()
    assert seen_source == NLB_IP                 # the target sees the link ENI's address
    (flow,) = call(sock, "flows")["flows"]
    assert (flow["kind"], flow["service_name"]) == ("vpc_nat", LINK)
    assert flow["client"][0] == minilab.CLIENT_IP and flow["snat"][0] == NLB_IP
    assert flow["backend"] == flow["vip"] == [TARGET_IP, 8080]
    assert (flow["in_port_name"], flow["out_port_name"]) == ("eni0", "eni1")
    assert tcp_csum_errors(SRV) == 0 and tcp_csum_errors(CLI) == 0

    # The ENI's egress rules admit TCP 8080 only: another port never leaves.
    refused = in_ns(CLI, sys.executable, "-c", CONNECT, TARGET_IP, "8081", "2")
    assert refused.returncode != 0
    # The customer side cannot open a connection toward the link ENI.
    inbound = in_ns(SRV, sys.executable, "-c", CONNECT, NLB_IP, "443", "2")
    assert inbound.returncode != 0
    ports = call(sock, "stats")["ports"]
    assert ports["eni0"]["drops"].get("sg_egress", 0) >= 1
    assert ports["eni1"]["drops"].get("link_one_way", 0) >= 1
    assert ports["eni0"]["counters"]["flows_created"] == 1
