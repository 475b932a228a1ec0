"""PROXY protocol v2 end to end (issue 12): a client in a consumer VPC reaches, through an
interface endpoint, an NLB whose target group has `proxy_protocol_v2: true`; the target
is tests/integration/proxy_v2.py, which parses every PROXY v2 header in front of a
connection's bytes and answers with what it read and with the request's bytes back. The
test checks the endpoint ID, the client's address and port, the destination, a request
and a response of 1.5 MB each through the shifted flow, a header the client sent itself
left behind ours, and that the health checks' LOCAL header (an HTTP check, which the
target refuses without a header) keeps the target healthy. The lab is `lab_name("tpp1")`, removed
whatever happens.
"""
from __future__ import annotations

import json
import pathlib
import sys

from dataplane import lab as labmod
from dataplane.pytest_plugin import lab_name
from dataplane.forwarder import control

from .conftest import run_in, vpclab, write_topology
from .test_privatelink import wait_for

PROXY_V2 = pathlib.Path(__file__).resolve().parent / "proxy_v2.py"
LAB = lab_name("tpp1")
SIZE = 1_500_000
OPEN_TCP = {"protocol": "tcp", "ports": "80", "source": "10.0.0.0/16"}


def topology() -> dict:
    return {
        "lab": LAB, "region": "us-east-1",
        "vpcs": {
            "consumer": {
                "cidr": "10.0.0.0/16",
                "subnets": {"app-a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"}},
                "security_groups": {"ep-sg": {"ingress": [OPEN_TCP]}},
                "instances": {"client": {"subnet": "app-a"}},
                "endpoints": {"web-ep": {"service": "provider/web-svc", "subnets": ["app-a"],
                                         "security_groups": ["ep-sg"]}},
            },
            "provider": {
                "cidr": "10.0.0.0/16",
                "subnets": {"svc-a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"}},
                "security_groups": {"web-sg": {"ingress": [
                    {"protocol": "tcp", "ports": "8080", "source": "10.0.0.0/16"}]}},
                "instances": {"web": {"subnet": "svc-a", "security_groups": ["web-sg"],
                                      "run": f"{sys.executable} {PROXY_V2} serve 8080"}},
                "load_balancers": {"web-nlb": {"type": "network", "subnets": ["svc-a"],
                                               "listeners": [{"port": 80, "protocol": "TCP",
                                                              "target_group": "web-tg"}]}},
                "target_groups": {"web-tg": {
                    "protocol": "TCP", "port": 8080, "targets": ["web"], "proxy_protocol_v2": True,
                    "health_check": {"protocol": "HTTP", "path": "/health", "interval": 5,
                                     "healthy_threshold": 2, "unhealthy_threshold": 2}}},
                "endpoint_services": {"web-svc": {"load_balancers": ["web-nlb"],
                                                  "acceptance_required": False}},
            },
        },
    }


def call_client(ep_ip: str, stack: bool = False) -> dict:
    args = [sys.executable, str(PROXY_V2), "client", ep_ip, "80", str(SIZE)] + (["stack"] if stack else [])
    out = run_in(LAB, "consumer/client", *args, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_target_reads_the_client_and_endpoint_and_big_transfers_pass(tmp_path,
                                                                         teardown_labs) -> None:
    teardown_labs.append(LAB)
    vpclab("up", str(write_topology(tmp_path, topology())), check=True)
    st = labmod.status(LAB)
    ep = st["hyperplane"]["endpoints"]["consumer/web-ep"]
    ep_ip = ep["enis"][0]["ip"]
    sock = st["hyperplane"]["socket"]
    node = st["hyperplane"]["load_balancers"]["provider/web-nlb"]["enis"][0]
    web_ip = st["vpcs"]["provider"]["instances"]["web"]["ip"]

    # An HTTP health check the strict target answers only after a LOCAL header.
    def health() -> str:
        return control.call(sock, "health")["health"][f"{node['eni_id']}/web-tg"][f"{web_ip}:8080"]["state"]
    assert wait_for(lambda: health() == "healthy", 25), health()

    got = call_client(ep_ip)
    assert got["echo_ok"] and got["answer"]["sha256"] == got["sha256"]
    (ours,) = got["answer"]["headers"]
    assert ours == {"command": "PROXY", "family": 0x11, "length": 100,
                    "src": got["sockname"], "dst": [ep_ip, 80], "crc_ok": True,
                    "vpce": ep["id"], "noop": 36}
    assert ep["id"].startswith("vpce-")
    assert got["answer"]["local_seen"] >= 2

    # A header the client sent itself stays, behind ours.
    stacked = call_client(ep_ip, stack=True)
    assert stacked["echo_ok"] and stacked["answer"]["sha256"] == stacked["sha256"]
    first, theirs = stacked["answer"]["headers"]
    assert first["src"] == stacked["sockname"] and first["vpce"] == ep["id"]
    assert theirs == {"command": "LOCAL", "family": 0, "length": 16}

    # `vpclab flows` shows the shift of such flows.
    flows = vpclab("flows", "-l", LAB, check=True).stdout
    assert "PROXY" in flows and "+100" in flows, flows
    stats = control.call(sock, "stats")
    assert sum(p["counters"]["proxy_headers"] for p in stats["ports"].values()) >= 2
    assert health() == "healthy"
