"""`vpclab up FILE` on a running lab adds and removes Hyperplane ENIs in place
(lab/reconcile.py): a new endpoint service with its own NLB and a new endpoint come and
go while one long TCP connection through the untouched endpoint carries on, the
forwarder is never restarted, and no other port is renumbered. Labs are named `trc…` (with the run's token in front: lab_name)
and removed whatever happens."""
from __future__ import annotations

import copy
import json
import sys
import time

import pytest

from dataplane import lab as labmod
from dataplane.forwarder import control
from dataplane.pytest_plugin import lab_name
from netns_setup import kernel

from .conftest import HERE, endpoint_to_nlb, leftovers, vpclab, write_topology
from .test_reconcile_lab import LongStream

pytestmark = pytest.mark.root
PEERS = HERE / "flood_peers.py"     # its echo server and long stream


def with_second_service(doc: dict) -> dict:
    """`doc` and a second NLB `nlb2` (target group `tg2`: the same target), its endpoint
    service `svc2` and, in the consumer VPC, an endpoint `ep2` to it."""
    more = copy.deepcopy(doc)
    p, c = more["vpcs"]["p"], more["vpcs"]["c"]
    p["target_groups"]["tg2"] = copy.deepcopy(p["target_groups"]["tg"])
    p["load_balancers"]["nlb2"] = {"subnets": ["a"], "listeners": [
        {"port": 80, "protocol": "TCP", "target_group": "tg2"}]}
    p["endpoint_services"]["svc2"] = {"load_balancers": ["nlb2"], "acceptance_required": False}
    c["endpoints"]["ep2"] = {"service": "p/svc2", "subnets": ["a"], "security_groups": ["open"]}
    return more


def one_connection(name: str, ip: str) -> dict:
    reply = vpclab("exec", "-l", name, "c/client", "--", sys.executable, str(PEERS),
                   "connect", ip, "80", "1", "0", "3", timeout=30)
    return json.loads(reply.stdout)


def test_an_endpoint_and_an_nlb_come_and_go_while_a_long_connection_carries_on(
        tmp_path, teardown_labs) -> None:
    name = lab_name("trchp")
    teardown_labs.append(name)
    doc = endpoint_to_nlb(name, {"client": {}},
                          {"t1": {"run": f"{sys.executable} {PEERS} serve 8080"}},
                          {"protocol": "TCP", "port": 8080, "targets": ["t1"]})
    vpclab("up", str(write_topology(tmp_path, doc)), check=True, timeout=180)
    ep = labmod.status(name)["hyperplane"]["endpoints"]["c/ep"]["enis"][0]["ip"]
    before = labmod.State.load(name).data
    ids_before = before["hyperplane"]["port_ids"]
    stream = LongStream(name, ep, tmp_path)
    try:
        # + nlb2 (a node ENI and its health checks), svc2, ep2 (an endpoint ENI)
        proc = vpclab("up", str(write_topology(tmp_path, with_second_service(doc))),
                      timeout=180)
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        added = [line for line in proc.stdout.splitlines()
                 if line.startswith("+ hyperplane ENI")]
        assert len(added) == 2 and all("a new forwarder port" in line for line in added), \
            proc.stdout
        data = labmod.State.load(name).data
        ids = data["hyperplane"]["port_ids"]
        assert all(ids[k] == v for k, v in ids_before.items())      # nothing renumbered
        new_ids = {v for k, v in ids.items() if k not in ids_before}
        assert len(new_ids) == 2 and not new_ids & set(ids_before.values())
        ep2_eni = labmod.status(name)["hyperplane"]["endpoints"]["c/ep2"]["enis"][0]
        assert one_connection(name, ep2_eni["ip"])["ok"] == 1       # through the new ports
        hp_ns = data["hyperplane"]["netns"]
        assert kernel.link_exists(hp_ns, ep2_eni["hp_ifname"])
        # the NLB health checker follows the new spec without a restart: nlb2's node
        # checks its target too
        health = control.call(stream.socket, "health")
        assert health["error"] is None
        assert [g for g in health["health"] if g.endswith("/tg2")], health
        time.sleep(2)

        # - ep2, svc2, nlb2: their ports close, then their veths go
        proc = vpclab("up", str(write_topology(tmp_path, doc)), timeout=180)
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        changed_at = time.monotonic()
        removed = [line for line in proc.stdout.splitlines()
                   if line.startswith("- hyperplane ENI")]
        assert len(removed) == 2 and all("its forwarder port closes" in line
                                         for line in removed), proc.stdout
        assert not kernel.link_exists(hp_ns, ep2_eni["hp_ifname"])
        assert not kernel.link_exists(f"{name}.c", ep2_eni["ifname"])
        data = labmod.State.load(name).data
        assert data["hyperplane"]["port_ids"] == ids_before
        assert {e["eni_id"] for e in data["hyperplane"]["enis"]} == \
            {e["eni_id"] for e in before["hyperplane"]["enis"]}
        stats = control.call(stream.socket, "stats")
        assert sorted(p["id"] for p in stats["ports"].values()) == sorted(ids_before.values())
        stream.finish(changed_at)      # it carried on across both changes
    finally:
        stream.abandon()
    vpclab("down", name, check=True)
    assert leftovers(name) == []


def alb_lab(name: str, admin_status: int) -> dict:
    """One VPC, a client, a target, and an ALB whose listener answers `Host: admin.*`
    with a fixed response of `admin_status` and forwards everything else."""
    return {"lab": name, "region": "us-east-1", "vpcs": {"shop": {
        "cidr": "10.1.0.0/16",
        "subnets": {"a": {"cidr": "10.1.1.0/24", "az": "us-east-1a"},
                    "b": {"cidr": "10.1.2.0/24", "az": "us-east-1b"}},
        "security_groups": {"open": {"ingress": [{"protocol": "all", "source": "0.0.0.0/0"}]}},
        "instances": {
            "client": {"subnet": "a"},
            "web1": {"subnet": "a", "security_groups": ["open"],
                     "run": f"{sys.executable} -m dataplane.services.echo web1 8080"}},
        "load_balancers": {"web-alb": {
            "type": "application", "subnets": ["a", "b"], "security_groups": ["open"],
            "listeners": [{"port": 80, "protocol": "HTTP", "default": {"forward": "web-tg"},
                           "rules": [{"priority": 10, "host": ["admin.*"], "fixed_response": {
                               "status": admin_status, "body": f"admin {admin_status}"}}]}]}},
        "target_groups": {"web-tg": {"protocol": "HTTP", "port": 8080, "targets": ["web1"]}}}}}


def admin_status(name: str, dns_name: str) -> str:
    proc = vpclab("exec", "-l", name, "shop/client", "--", "curl", "-sS", "--max-time", "10",
                  "-H", "Host: admin.example.com", "-w", " %{http_code}",
                  f"http://{dns_name}/", timeout=30)
    return proc.stdout.strip()


def test_a_changed_alb_rule_restarts_its_nodes_with_the_new_behaviour(
        tmp_path, teardown_labs) -> None:
    name = lab_name("trcalb")
    teardown_labs.append(name)
    vpclab("up", str(write_topology(tmp_path, alb_lab(name, 403))), check=True, timeout=180)
    dns_name = labmod.status(name)["albs"]["shop/web-alb"]["dns_name"]
    assert admin_status(name, dns_name) == "admin 403 403"
    before = labmod.State.load(name).data["processes"]
    nodes_before = {p["pid"] for p in before if p["role"] == "alb"}
    web1 = next(p["pid"] for p in before if p["instance"] == "web1")

    proc = vpclab("up", str(write_topology(tmp_path, alb_lab(name, 418))), timeout=180)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert ("~ load balancer shop/web-alb: its nodes restart with the new configuration"
            in proc.stdout)
    assert admin_status(name, dns_name) == "admin 418 418"
    after = labmod.State.load(name).data["processes"]
    nodes_after = {p["pid"] for p in after if p["role"] == "alb"}
    assert len(nodes_after) == 2 and not nodes_after & nodes_before    # both restarted
    assert any(p["pid"] == web1 for p in after)                       # the target was not
    assert all(n["running"] for n in labmod.status(name)["albs"]["shop/web-alb"]["nodes"])
    vpclab("down", name, check=True)
    assert leftovers(name) == []
