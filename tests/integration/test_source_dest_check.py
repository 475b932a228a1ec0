"""AWS's source/destination check on instance ENIs, with spoofed packets from inside
instances (issue 13, part 3).

Consumer VPC `c`: `client` (check on), `nat` (`source_dest_check: false`), `victim`,
and an interface endpoint; provider VPC `p`: the target `web` behind an NLB, and `peer`.
Every security group admits everything, so what stops a packet here is the check.
Packets are written with raw sockets (tests/integration/spoof.py) and watched with a
packet socket on the receiver's eth0, which sees them before its IP stack does.
"""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from dataplane import lab as labmod
from dataplane.forwarder import control
from dataplane.lab.realise_vpc import source_dest_drops
from dataplane.model import Lab

from dataplane.pytest_plugin import lab_fixture, lab_name

from .conftest import CLI, HERE, REPO, endpoint_to_nlb, run_in, serve, vpclab

pytestmark = pytest.mark.root
LAB = lab_name("t13sdc")
SPOOF = str(HERE / "spoof.py")


def topology() -> dict:
    return endpoint_to_nlb(
        LAB, consumers={"victim": {"ip": "10.0.1.10"}, "client": {"ip": "10.0.1.11"},
                        "nat": {"ip": "10.0.1.12", "source_dest_check": False}},
        providers={"web": {"ip": "10.1.1.10", "run": serve("web", 8080)},
                   "peer": {"ip": "10.1.1.11"}},
        target_group={"port": 8080, "targets": ["web"]})


ENI = {(e.vpc, e.kind): e.ip for e in Lab.from_dict(topology()).hyperplane_enis()}


running = lab_fixture(topology, scope="module")     # vpclab's pytest plugin


@pytest.fixture(scope="module")
def lab(running):
    return running.state


def send(where: str, *packets: tuple) -> None:
    """From `where`, each (source, destination, udp|syn, port, count) in turn."""
    proc = run_in(LAB, where, sys.executable, SPOOF, "send",
                  *(str(x) for p in packets for x in p))
    assert proc.returncode == 0, proc.stderr


def seen_by(where: str, proto: str, port: int, sender: str,
            *packets: tuple) -> list[tuple[str, str]]:
    """(source, destination) of every packet to `port` that reaches `where`'s eth0
    while `sender` sends `packets` (as send())."""
    listener = subprocess.Popen(
        CLI + ["exec", "-l", LAB, where, "--", sys.executable, SPOOF, "listen", proto,
               str(port), "8"], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert listener.stdout.readline().strip() == "listening"
        send(sender, *packets)
        out, _ = listener.communicate(timeout=30)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    return [tuple(line.split()) for line in out.splitlines()]


def drops(st, vpc: str, instance: str) -> dict[str, int]:
    return source_dest_drops(st)[vpc][instance]


def flows_from(st, ip: str) -> list[dict]:
    reply = control.call(st.data["hyperplane"]["socket"], "flows")
    return [f for f in reply["flows"] if f["client"][0] == ip]


def test_spoofed_sources_from_an_instance_reach_nothing_and_are_counted(lab):
    before = drops(lab, "c", "client")
    seen = seen_by("c/victim", "udp", 7000, "c/client",
                   ("10.0.1.99", "10.0.1.10", "udp", 7000, 5),   # an unused address
                   ("10.0.1.12", "10.0.1.10", "udp", 7000, 4),   # another instance's
                   ("10.1.1.10", "10.0.1.10", "udp", 7000, 3),   # another VPC's
                   ("10.0.1.11", "10.0.1.10", "udp", 7000, 2))   # its own
    assert seen == [("10.0.1.11", "10.0.1.10")] * 2
    assert drops(lab, "c", "client") == {"source": before["source"] + 12,
                                         "destination": before["destination"]}
    # What the README tells a user to run: the counters in the VPC router's namespace.
    listed = run_in(LAB, "c", "nft", "list", "counter", "inet", f"{LAB}-sg",
                    "source_eni_client").stdout
    assert f"packets {before['source'] + 12} " in listed
    # and what `vpclab status` shows
    instances = labmod.status(LAB)["vpcs"]["c"]["instances"]
    assert instances["client"]["source_dest_dropped"]["source"] == before["source"] + 12
    assert instances["nat"]["source_dest_check"] is False
    assert instances["nat"]["source_dest_dropped"] is None
    table = vpclab("status", LAB).stdout
    assert f"src {before['source'] + 12} dst" in table and " off " in table


def test_with_the_check_off_spoofed_sources_pass_and_are_not_counted(lab):
    seen = seen_by("c/victim", "udp", 7001, "c/nat",
                   ("10.0.1.99", "10.0.1.10", "udp", 7001, 3),
                   ("10.1.1.10", "10.0.1.10", "udp", 7001, 2))
    assert seen == [("10.0.1.99", "10.0.1.10")] * 3 + [("10.1.1.10", "10.0.1.10")] * 2
    assert "nat" not in source_dest_drops(lab)["c"]
    assert lab.data["vpcs"]["c"]["instances"]["nat"]["source_dest_check"] is False


def test_spoofed_syns_toward_an_endpoint_open_no_flow(lab):
    endpoint = ENI[("c", "vpce")]
    before = drops(lab, "c", "client")["source"]
    send("c/client", ("10.0.1.98", endpoint, "syn", 80, 6))
    time.sleep(0.3)
    assert flows_from(lab, "10.0.1.98") == []
    assert drops(lab, "c", "client")["source"] == before + 6
    # The same from the instance without the check: the forwarder opens its flows.
    send("c/nat", ("10.0.1.97", endpoint, "syn", 80, 3))
    deadline = time.monotonic() + 5
    while len(flows_from(lab, "10.0.1.97")) < 3:
        assert time.monotonic() < deadline, flows_from(lab, "10.0.1.97")
        time.sleep(0.1)


def test_spoofed_sources_from_a_target_reach_nothing_and_are_counted(lab):
    before = drops(lab, "p", "web")["source"]
    seen = seen_by("p/peer", "udp", 7002, "p/web",
                   ("10.1.1.99", "10.1.1.11", "udp", 7002, 4),
                   (ENI[("p", "nlb")], "10.1.1.11", "udp", 7002, 2),   # the NLB node's
                   ("10.1.1.98", ENI[("p", "nlb")], "syn", 80, 3),     # toward the NLB
                   ("10.1.1.10", "10.1.1.11", "udp", 7002, 1))         # its own
    assert seen == [("10.1.1.10", "10.1.1.11")]
    assert drops(lab, "p", "web")["source"] == before + 9


def test_packets_for_another_address_are_not_delivered_to_a_checked_instance(lab):
    # A route that sends other addresses to an instance's ENI, as a route table whose
    # target is an instance does (a NAT instance's, say).
    ns = lab.data["vpcs"]["c"]["netns"]
    for cidr, eni, ip in (("192.168.77.0/24", "eni-victim", "10.0.1.10"),
                          ("192.168.78.0/24", "eni-nat", "10.0.1.12")):
        subprocess.run(["ip", "-n", ns, "route", "replace", cidr, "via", ip, "dev", eni,
                        "onlink"], check=True, timeout=10)
    before = drops(lab, "c", "victim")
    assert seen_by("c/victim", "udp", 7003, "c/client",
                   ("10.0.1.11", "192.168.77.7", "udp", 7003, 4),
                   ("10.0.1.11", "10.0.1.10", "udp", 7003, 1)) == [
        ("10.0.1.11", "10.0.1.10")]
    assert drops(lab, "c", "victim") == {"source": before["source"],
                                         "destination": before["destination"] + 4}
    assert seen_by("c/nat", "udp", 7004, "c/client",
                   ("10.0.1.11", "192.168.78.7", "udp", 7004, 3)) == [
        ("10.0.1.11", "192.168.78.7")] * 3
