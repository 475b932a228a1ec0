"""PrivateLink end to end in a lab (issue 4): a client in one VPC reaches targets in
another VPC with the same CIDR through an interface endpoint, an endpoint service, an
NLB and the forwarder, by the endpoint's DNS names. Every lab is named `lab_name("t4…")` and is
removed whatever happens.
"""
from __future__ import annotations

import json
import sys
import time

import pytest

from dataplane.forwarder import control
from dataplane import lab as labmod
from dataplane.pytest_plugin import lab_name

from .conftest import connect, leftovers, run_in, serve, vpclab, write_topology


def topology(lab: str, acceptance_required: bool = False) -> dict:
    """The issue's topology, with servers that answer `<target> <peer address>`."""
    return {
        "lab": lab, "region": "us-east-1",
        "vpcs": {
            "consumer": {
                "cidr": "10.0.0.0/16",
                "subnets": {"app-a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"},
                            "app-b": {"cidr": "10.0.2.0/24", "az": "us-east-1b"}},
                "security_groups": {"endpoint-sg": {"ingress": [
                    {"protocol": "tcp", "ports": "80-82", "source": "10.0.0.0/16"}]}},
                "instances": {"client": {"subnet": "app-a"}},
                "endpoints": {"web-ep": {"service": "provider/web-svc",
                                         "subnets": ["app-a", "app-b"],
                                         "security_groups": ["endpoint-sg"],
                                         "private_dns": True}},
            },
            "provider": {
                "cidr": "10.0.0.0/16",
                "subnets": {"svc-a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"},
                            "svc-b": {"cidr": "10.0.2.0/24", "az": "us-east-1b"}},
                "security_groups": {"web-sg": {"ingress": [
                    {"protocol": "tcp", "ports": "8080-8082", "source": "10.0.0.0/16"}]}},
                "instances": {
                    "web1": {"subnet": "svc-a", "security_groups": ["web-sg"],
                             "run": serve("web1-{peer}", 8080, 8081, "h8082")},
                    "web2": {"subnet": "svc-b", "security_groups": ["web-sg"],
                             "run": serve("web2-{peer}", 8080, 8081, "h8082")},
                },
                "load_balancers": {"web-nlb": {"type": "network", "subnets": ["svc-a", "svc-b"],
                                               "listeners": [
                                                   {"port": 80, "protocol": "TCP", "target_group": "web-tg"},
                                                   {"port": 81, "protocol": "TCP", "target_group": "alt-tg"},
                                                   {"port": 82, "protocol": "TCP", "target_group": "hold-tg"}]}},
                "target_groups": {"web-tg": {"protocol": "TCP", "port": 8080, "targets": ["web1", "web2"]},
                                  "alt-tg": {"protocol": "TCP", "port": 8081, "targets": ["web1", "web2"]},
                                  "hold-tg": {"protocol": "TCP", "port": 8082, "targets": ["web1", "web2"]}},
                "endpoint_services": {"web-svc": {"load_balancers": ["web-nlb"],
                                                  "acceptance_required": acceptance_required,
                                                  "private_dns_name": "web.provider.internal"}},
            },
        },
    }


@pytest.fixture
def pl_lab(tmp_path, teardown_labs):
    def make(name: str, **kw) -> dict:
        teardown_labs.append(name)
        vpclab("up", str(write_topology(tmp_path, topology(name, **kw))), check=True)
        return labmod.status(name)
    return make


def names_of(status: dict) -> dict[str, str]:
    """The endpoint's DNS names by kind: regional, zonal-a, zonal-b, private."""
    dns = status["hyperplane"]["endpoints"]["consumer/web-ep"]["dns"]
    return {"regional": next(n for n in dns if n.startswith("vpce-") and "-us-east-1" not in n.split(".")[0]),
            "zonal-a": next(n for n in dns if "-us-east-1a." in n),
            "zonal-b": next(n for n in dns if "-us-east-1b." in n),
            "private": "web.provider.internal"}


def test_curl_through_every_dns_name_reaches_a_target_that_sees_the_nlb(pl_lab) -> None:
    st = pl_lab(lab_name("t4dns"))
    nlb = {x["az"]: x["ip"] for x in st["hyperplane"]["load_balancers"]["provider/web-nlb"]["enis"]}
    dns = names_of(st)
    for kind, name in dns.items():
        out = run_in(lab_name("t4dns"), "consumer/client", "curl", "-sS", "-m", "5", f"http://{name}/")
        assert out.returncode == 0, (kind, out.stderr)
        target, seen = out.stdout.strip().split("-", 1)
        assert target in ("web1", "web2") and seen in nlb.values(), (kind, out.stdout)
    # Zonal names pin the AZ: the NLB node and the target of that AZ (cross-zone is off).
    assert connect(lab_name("t4dns"), "consumer/client", dns["zonal-a"], 80) == f"web1-{nlb['us-east-1a']}"
    assert connect(lab_name("t4dns"), "consumer/client", dns["zonal-b"], 80) == f"web2-{nlb['us-east-1b']}"
    # A second listener, a second target group.
    assert connect(lab_name("t4dns"), "consumer/client", dns["zonal-a"], 81) == f"web1-{nlb['us-east-1a']}"
    # The Hyperplane namespace's kernel has nothing to answer with: no address on any
    # ENI, no route, no IPv6; the forwarder owns every byte.
    from pyroute2 import NetNS
    with NetNS(st["hyperplane"]["netns"]) as ipr:
        lo = ipr.link_lookup(ifname="lo")[0]
        assert [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr() if a["index"] != lo] == []
        assert [r for r in ipr.get_routes(family=2, table=254)] == []
    # Nor does it see the frames: they stop at its ports' ingress once the forwarder has
    # them, before its IPv4 stack (which would count each in Ip InReceives).
    from netns_setup.nsenter import in_netns_thread
    snmp = in_netns_thread(st["hyperplane"]["netns"],
                           lambda: open("/proc/thread-self/net/snmp").read())
    ip_names, ip_values = [line.split() for line in snmp.splitlines() if line.startswith("Ip:")][:2]
    assert int(ip_values[ip_names.index("InReceives")]) == 0
    # Only the consumer VPC resolves the endpoint's names.
    out = run_in(lab_name("t4dns"), "provider/web1", "getent", "hosts", dns["private"])
    assert out.returncode != 0 and not out.stdout


def test_only_tcp_and_only_from_the_consumer_side(pl_lab) -> None:
    st = pl_lab(lab_name("t4only"))
    ep_ip = st["hyperplane"]["endpoints"]["consumer/web-ep"]["enis"][0]["ip"]
    nlb_ip = st["hyperplane"]["load_balancers"]["provider/web-nlb"]["enis"][0]["ip"]
    assert connect(lab_name("t4only"), "consumer/client", ep_ip, "u80") == "timeout"        # UDP
    assert connect(lab_name("t4only"), "consumer/client", ep_ip, 8080) == "timeout"          # no listener
    # The provider opens nothing toward the consumer (the NLB ENI's address is all it sees).
    assert connect(lab_name("t4only"), "provider/web1", nlb_ip, 40000) == "timeout"
    stats = control.call(st["hyperplane"]["socket"], "stats")
    drops = {k: v for p in stats["ports"].values() for k, v in p["drops"].items()}
    assert drops.get("no_service", 0) >= 2 and drops.get("no_flow", 0) + drops.get("no_service", 0) >= 3


def test_pending_acceptance_blocks_accept_opens_reject_cuts(pl_lab) -> None:
    st = pl_lab(lab_name("t4acc"), acceptance_required=True)
    assert st["hyperplane"]["endpoints"]["consumer/web-ep"]["state"] == "pendingAcceptance"
    dns = names_of(st)
    assert connect(lab_name("t4acc"), "consumer/client", dns["zonal-a"], 80) == "timeout"
    assert vpclab("endpoint", "accept", "-l", lab_name("t4acc"), "consumer/web-ep", check=True)
    assert connect(lab_name("t4acc"), "consumer/client", dns["zonal-a"], 80).startswith("web1-")
    assert labmod.status(lab_name("t4acc"))["hyperplane"]["endpoints"]["consumer/web-ep"]["state"] == "available"
    vpclab("endpoint", "reject", "-l", lab_name("t4acc"), "consumer/web-ep", check=True)
    assert connect(lab_name("t4acc"), "consumer/client", dns["zonal-a"], 80) == "timeout"
    again = vpclab("endpoint", "accept", "-l", lab_name("t4acc"), "consumer/web-ep")
    assert again.returncode == 1 and "is rejected; it cannot be accepted" in again.stderr
    text = vpclab("status", lab_name("t4acc")).stdout
    assert "endpoint consumer/web-ep" in text and ": rejected" in text


HOLD = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], 82), timeout=5)   # a target that never answers
s.sendall(b"hello")
print("open", flush=True)
sys.stdin.readline()                          # the test moves the forwarder's clock meanwhile
try:
    s.sendall(b"more"); data = s.recv(100)
    print("data" if data else "closed")
except (ConnectionResetError, BrokenPipeError):
    print("reset")
"""


def test_idle_flow_expires_on_the_engine_clock_and_then_gets_a_rst(pl_lab) -> None:
    import subprocess
    st = pl_lab(lab_name("t4idle"))
    dns = names_of(st)
    sock = st["hyperplane"]["socket"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataplane.cli.main", "exec", "-l", lab_name("t4idle"), "consumer/client", "--",
         sys.executable, "-c", HOLD, dns["zonal-a"]],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "open"
        assert len(client_flows(sock)) == 1
        control.call(sock, "clock", offset_s=351)          # past the listener's 350 s
        assert wait_for(lambda: client_flows(sock) == [], 5)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "reset"
    finally:
        proc.kill()
        proc.wait(timeout=10)
    stats = control.call(sock, "stats")["ports"]
    assert sum(p["counters"]["tcp_rst_sent"] for p in stats.values()) >= 1
    assert sum(p["counters"]["flows_expired"] for n, p in stats.items() if n != "health") == 1


def test_many_connections_use_both_targets_and_flows_show_the_translation(pl_lab) -> None:
    st = pl_lab(lab_name("t4many"))
    dns = names_of(st)
    seen = {connect(lab_name("t4many"), "consumer/client", dns["private"], 80).split("-")[0] for _ in range(12)}
    assert seen == {"web1", "web2"}
    out = vpclab("flows", "-l", lab_name("t4many"), check=True).stdout
    assert "⇒" in out and ":8080" in out and out.strip().endswith("flow(s)")


def test_down_leaves_nothing(pl_lab) -> None:
    pl_lab(lab_name("t4down"))
    assert vpclab("down", lab_name("t4down"), check=True)
    assert leftovers(lab_name("t4down")) == []


def test_capture_shows_one_connection_before_and_after_translation(pl_lab) -> None:
    import subprocess
    st = pl_lab(lab_name("t4cap"))
    hp = st["hyperplane"]
    ep = next(x for x in hp["endpoints"]["consumer/web-ep"]["enis"] if x["az"] == "us-east-1a")
    nlb = next(x for x in hp["load_balancers"]["provider/web-nlb"]["enis"] if x["az"] == "us-east-1a")
    client_ip = labmod.status(lab_name("t4cap"))["vpcs"]["consumer"]["instances"]["client"]["ip"]
    caps = {kind: subprocess.Popen(
        [sys.executable, "-m", "dataplane.cli.main", "capture", "-l", lab_name("t4cap"), eni["eni_id"],
         "-c", "1", "tcp[tcpflags] == tcp-syn"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for kind, eni in (("endpoint", ep), ("nlb", nlb))}
    try:
        time.sleep(1.0)   # tcpdump needs a moment to attach
        assert connect(lab_name("t4cap"), "consumer/client", ep["ip"], 80).startswith("web1-")
        lines = {kind: p.communicate(timeout=15)[0] for kind, p in caps.items()}
    finally:
        for p in caps.values():
            p.kill()
    # Before translation: client → endpoint ENI :80. After: NLB node → target :8080.
    assert f"IP {client_ip}." in lines["endpoint"] and f"> {ep['ip']}.80:" in lines["endpoint"]
    target_ip = labmod.status(lab_name("t4cap"))["vpcs"]["provider"]["instances"]["web1"]["ip"]
    assert f"IP {nlb['ip']}." in lines["nlb"] and f"> {target_ip}.8080:" in lines["nlb"]
    several = vpclab("capture", "-l", lab_name("t4cap"), "consumer/web-ep")
    assert several.returncode == 2 and "has 2 ENIs" in several.stderr


def test_a_stopped_target_turns_unhealthy_and_gets_no_new_connections(tmp_path, teardown_labs) -> None:
    """Health checks leave from each NLB node's address through the forwarder; a target
    that stops answering is unhealthy after unhealthy_threshold × interval, and new
    flows go elsewhere (another AZ's healthy target, for a node with none of its own)."""
    import subprocess
    from .conftest import SERVERS
    doc = topology(lab_name("t4hc"))
    web1 = doc["vpcs"]["provider"]["instances"]["web1"]
    del web1["run"]                                   # the test runs web1's server itself
    doc["vpcs"]["provider"]["target_groups"]["web-tg"]["health_check"] = {
        "protocol": "TCP", "interval": 5, "healthy_threshold": 2, "unhealthy_threshold": 2}
    teardown_labs.append(lab_name("t4hc"))
    server = None
    try:
        vpclab("up", str(write_topology(tmp_path, doc)), check=True)
        server = subprocess.Popen([sys.executable, "-m", "dataplane.cli.main", "exec", "-l", lab_name("t4hc"),
                                   "provider/web1", "--", sys.executable, str(SERVERS),
                                   "web1-{peer}", "8080", "8081", "h8082"], stdout=subprocess.PIPE)
        st = labmod.status(lab_name("t4hc"))
        sock = st["hyperplane"]["socket"]
        node_a = next(x for x in st["hyperplane"]["load_balancers"]["provider/web-nlb"]["enis"]
                      if x["az"] == "us-east-1a")
        web1_ip = st["vpcs"]["provider"]["instances"]["web1"]["ip"]

        def state_of_web1() -> str:
            return call_health(sock)[f"{node_a['eni_id']}/web-tg"][f"{web1_ip}:8080"]["state"]

        assert wait_for(lambda: state_of_web1() == "healthy", 20)
        zonal_a = names_of(st)["zonal-a"]
        assert connect(lab_name("t4hc"), "consumer/client", zonal_a, 80) == f"web1-{node_a['ip']}"
        # Health checks come from the NLB nodes' addresses: the targets' SGs admit them.
        server.kill()
        server.wait(timeout=10)
        started = time.monotonic()
        assert wait_for(lambda: state_of_web1() == "unhealthy", 20)
        assert time.monotonic() - started < 2 * 5 + 5       # unhealthy_threshold × interval, and a margin
        answers = {connect(lab_name("t4hc"), "consumer/client", zonal_a, 80) for _ in range(4)}
        assert answers == {f"web2-{node_a['ip']}"}           # through node a, to the other AZ's target
        text = vpclab("status", lab_name("t4hc")).stdout
        assert (f"web-tg target {web1_ip}:8080 seen from {node_a['eni_id']}: unhealthy "
            f"Target.FailedHealthChecks (Connection refused)") in text
    finally:
        if server and server.poll() is None:
            server.kill()


def client_flows(sock: str) -> list[dict]:
    """The forwarder's flows less the NLB's own health checks."""
    return [f for f in control.call(sock, "flows")["flows"] if f["in_port_name"] != "health"]


def call_health(sock: str) -> dict:
    return control.call(sock, "health")["health"]


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_iperf3_through_the_endpoint_with_checksums_verified_at_the_receivers(tmp_path, teardown_labs) -> None:
    """Bulk TCP through endpoint → NLB → target: the receivers' kernels verify every
    checksum (TcpInCsumErrors stays 0), SYNs are clamped to the endpoint's MSS, and
    nothing is dropped for its size."""
    doc = topology(lab_name("t4perf"))
    prov = doc["vpcs"]["provider"]
    prov["instances"]["web1"]["run"] = "iperf3 -s -p 5201"
    prov["security_groups"]["web-sg"]["ingress"].append(
        {"protocol": "tcp", "ports": 5201, "source": "10.0.0.0/16"})
    prov["load_balancers"]["web-nlb"]["listeners"].append(
        {"port": 5201, "protocol": "TCP", "target_group": "perf-tg"})
    prov["target_groups"]["perf-tg"] = {"protocol": "TCP", "port": 5201, "targets": ["web1"]}
    doc["vpcs"]["consumer"]["security_groups"]["endpoint-sg"]["ingress"].append(
        {"protocol": "tcp", "ports": 5201, "source": "10.0.0.0/16"})
    teardown_labs.append(lab_name("t4perf"))
    vpclab("up", str(write_topology(tmp_path, doc)), check=True)
    st = labmod.status(lab_name("t4perf"))
    zonal_a = names_of(st)["zonal-a"]
    out = None
    for _ in range(20):   # iperf3 -s may take a moment to listen
        out = run_in(lab_name("t4perf"), "consumer/client", "iperf3", "-c", zonal_a, "-p", "5201", "-t", "3",
                     "-J", timeout=60)
        if out.returncode == 0:
            break
        time.sleep(0.5)
    assert out.returncode == 0, out.stdout[-500:]
    result = json.loads(out.stdout)
    assert result["end"]["sum_received"]["bytes"] > 10_000_000

    def csum_errors(where: str) -> int:
        snmp = run_in(lab_name("t4perf"), where, "cat", "/proc/net/snmp").stdout.splitlines()
        names, values = [line.split() for line in snmp if line.startswith("Tcp:")][:2]
        return int(values[names.index("InCsumErrors")])

    assert csum_errors("provider/web1") == 0 and csum_errors("consumer/client") == 0
    stats = control.call(st["hyperplane"]["socket"], "stats")["ports"]
    assert sum(p["counters"]["mss_clamped"] for p in stats.values()) >= 2
    assert not any(p["drops"].get("mtu") for p in stats.values())
    # Segmentation offload carried through: the client's kernel handed over GSO frames
    # with partial checksums, the forwarder kept both, none was too big for a slot.
    print({name: p["io"] for name, p in stats.items()})
    assert sum(p["io"]["rx_gso_frames"] for p in stats.values()) > 0
    assert sum(p["counters"]["gso_frames"] for p in stats.values()) > 0
    assert sum(p["counters"]["csum_kept_partial"] for p in stats.values()) > 0
    assert not any(p["io"]["rx_truncated"] or p["io"]["tx_too_big"] for p in stats.values())


def test_ping_gets_no_answer_from_an_endpoint(pl_lab) -> None:
    """Interface endpoints carry TCP only: an echo request to an endpoint ENI is dropped
    (and counted), never answered."""
    st = pl_lab(lab_name("t4ping"))
    ep_ip = st["hyperplane"]["endpoints"]["consumer/web-ep"]["enis"][0]["ip"]
    out = run_in(lab_name("t4ping"), "consumer/client", "ping", "-c", "2", "-W", "1", "-q", ep_ip)
    assert out.returncode == 1 and "100% packet loss" in out.stdout
    drops = control.call(st["hyperplane"]["socket"], "stats")["ports"]
    assert sum(p["drops"].get("no_service", 0) for p in drops.values()) >= 2


def test_cleanup_after_the_forwarder_and_vpclab_are_killed(pl_lab) -> None:
    import os
    import signal
    pl_lab(lab_name("t4kill"))
    running = labmod.status(lab_name("t4kill"))["processes"]
    # The supervisor first (it would restart the forwarder), as a `kill -9` of the lab's
    # processes in any order would leave them.
    for role in ("supervisor", "forwarder"):
        os.kill(next(p["pid"] for p in running if p["role"] == role), signal.SIGKILL)
    text = vpclab("status", lab_name("t4kill")).stdout
    assert "forwarder hyperplane" in text and "STOPPED" in text
    assert vpclab("cleanup", lab_name("t4kill")).returncode == 0
    assert leftovers(lab_name("t4kill")) == []
