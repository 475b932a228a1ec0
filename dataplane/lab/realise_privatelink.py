"""PrivateLink's part of `up` and `status`: the NLB health checker's namespace, and the
endpoints' and load balancers' report (compile/privatelink.py says what they are).

The checker's namespace `<lab>.hyperplane.health` holds one `eth0` (169.254.255.2/30,
default route via the forwarder's health port 169.254.255.1 on `hc0`); its checks leave
through the forwarder from each NLB node's address. The ENIs themselves and the
forwarder are the Hyperplane's (lab/hyperplane.py); the DNS names go into each VPC's
hosts file with the instances' (lab/realise_vpc.py, from compile/hyperplane.dns_records).
"""
from __future__ import annotations

from typing import Any

from netns_setup import kernel, offload

from dataplane.compile import privatelink as compiled
from dataplane.compile.hyperplane import dns_records
from dataplane.forwarder.frames import MAX_FRAME
from dataplane.model import Lab, names

from .hyperplane import ensure_namespace_without_ipv6
from .plan import ENI_MTU
from .progress import Step


def namespaces(lab: Lab) -> list[str]:
    """Namespaces this kind adds to the lab's plan (recorded before anything is made)."""
    return [names.health_netns(lab.name)] if compiled.has_health_checks(lab) else []


def steps(build: Any) -> list[Step]:
    """Run after the Hyperplane's ENIs, before the forwarder starts (`build` is
    lab/hyperplane.py's `Build`: it collects the extra ports' MACs and interfaces)."""
    if not compiled.has_health_checks(build.lab):
        return []
    health_ns = names.health_netns(build.lab.name)
    return [Step(f"NLB health checker: namespace {health_ns}, eth0 ⇄ "
                 f"{compiled.HEALTH_IFNAME} (the forwarder's health port)",
                 lambda: _health_namespace(build, health_ns))]


def _health_namespace(build: Any, health_ns: str) -> None:
    lab, hp_ns = build.lab, build.hp_ns
    hc = compiled.health_port_id(build.ports)
    ensure_namespace_without_ipv6(lab, health_ns)
    kernel.ensure_veth(health_ns, names.INSTANCE_IFNAME,
                       f"{names.MARK}.{lab.name}.{names.HYPERPLANE}.health.eth0",
                       hp_ns, compiled.HEALTH_IFNAME,
                       f"{names.MARK}.{lab.name}.{names.HYPERPLANE}.{compiled.HEALTH_IFNAME}",
                       ENI_MTU)
    kernel.ensure_address(health_ns, names.INSTANCE_IFNAME, compiled.HEALTH_NS_IP, 30)
    kernel.ensure_route(health_ns, "0.0.0.0/0", gateway=compiled.HEALTH_PORT_IP)
    offload.cap_gso_size(names.INSTANCE_IFNAME, health_ns, MAX_FRAME)
    build.macs[hc] = (kernel.link_mac(hp_ns, compiled.HEALTH_IFNAME),
                      kernel.link_mac(health_ns, names.INSTANCE_IFNAME))
    build.port_ifnames.append(compiled.HEALTH_IFNAME)
    build.forwarder_args += ["--health-netns", health_ns]


def state(lab: Lab) -> dict[str, Any]:
    """What this kind keeps in the state's `hyperplane` record: endpoint states."""
    return {"endpoints": compiled.endpoint_states(lab)}


def status(lab: Lab, hp: dict[str, Any], health: dict | None) -> dict[str, Any]:
    """Endpoints (state, ENIs, DNS names) and NLBs (nodes, targets, health)."""
    records = dns_records(lab)
    enis = hp["enis"]
    endpoints = {}
    for key, e in hp["endpoints"].items():
        vpc, name = key.split("/")
        mine = [x for x in enis if x["kind"] == "vpce" and x["vpc"] == vpc and x["owner"] == name]
        ips = {x["ip"] for x in mine}
        endpoints[key] = {**e, "enis": mine,
                          "dns": sorted({n for n, ip in records.get(vpc, []) if ip in ips})}
    nlbs = {}
    addresses = lab.addresses()
    for vpc in lab.vpcs.values():
        for lb in vpc.load_balancers.values():
            ips = {i: addresses[(vpc.name, i)] for i in vpc.instances}
            nlbs[f"{vpc.name}/{lb.name}"] = {
                "enis": [x for x in enis if x["kind"] == "nlb" and x["vpc"] == vpc.name
                         and x["owner"] == lb.name],
                "listeners": [{"port": l.port, "target_group": l.target_group,
                               "targets": [f"{ip}:{port}" for ip, port in
                                           vpc.target_groups[l.target_group].target_addresses(ips)]}
                              for l in lb.listeners],
                # {"<node ENI>/<target group>": {"ip:port": {state, reason, last_error}}}
                "target_health": None if health is None else {
                    g: targets for g, targets in health.items()
                    if g.split("/")[0] in {x["eni_id"] for x in enis if x["owner"] == lb.name}}}
    return {"endpoints": endpoints, "load_balancers": nlbs}
