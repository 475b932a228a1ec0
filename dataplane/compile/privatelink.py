"""PrivateLink compiled: its forwarder services, NLB health checks, endpoint states and
endpoint DNS names (the kind's compile floor; dataplane/kinds.py registers it).

What `up` makes for a lab with load balancers or endpoints (names in model/names.py;
compile/hyperplane.py assembles the spec, lab/hyperplane.py and
lab/realise_privatelink.py make the rest):

| what | where |
|---|---|
| the forwarder's namespace, no addresses, no routes; a netdev ingress table dropping port frames once the forwarder has them | `<lab>.hyperplane`, table `netdev <lab>-ports` |
| each NLB node's and endpoint's ENI: a veth | `eni-<11 hex>` in the VPC namespace ⇄ `hp<port>` in `<lab>.hyperplane` |
| the VPC router's side of it | the subnet's `.1/32` on `eni-…`, a /32 route to the ENI's address; gso_max_size cut to a ring slot (it transmits into the forwarder, GSO frames included) |
| the forwarder process | `python -m dataplane.forwarder.daemon` in `<lab>.hyperplane`, spec `/run/vpclab/<lab>/forwarder.json`, control socket `/run/vpclab/<lab>/forwarder.sock` |
| DNS | each endpoint's regional and zonal names, and its service's private DNS name when `private_dns` is on, in the consumer VPC's resolver only |

How PrivateLink compiles (`contribute`), one engine service per endpoint ENI and
listener:

    (client, cport, endpoint ENI, listener port) ⇒ (NLB node ENI, snat port, target, tport)

* The NLB node is the one in the endpoint ENI's AZ (matched by AZ; an endpoint service
  with several NLBs uses the first with a node there: "within one AZ, an endpoint
  connects to exactly one of them").
* Targets are those of the listener's target group; new flows prefer the node's own AZ
  (cross-zone is off by default for NLB) — healthd.choose_backends has the order.
* The endpoint ENI's security groups filter new flows on the way in (the VPC's
  `default` group when none is named, which admits its own members only).
* Listener: TCP only, idle timeout 350 s unless set, RST for segments of no flow, the
  SYN's sequence number in the target hash, MTU 8500 with no ICMP, MSS clamped to 8460.
* An endpoint that is not `available` (pendingAcceptance, rejected) passes no packet.
* A target group with `proxy_protocol_v2: true`: each flow's first bytes toward the
  target get a PROXY v2 header (client address and port, the endpoint ENI's address and
  port, the endpoint's `vpce-…` ID), put in by the engine (native/hp_proxy.c). Its health
  checks send a LOCAL header first (the checker writes it: forwarder/health.py).

Health checks go through the forwarder too, so that they leave from the NLB node's
address as on AWS (and meet the targets' security groups as NLB traffic does): the
namespace `<lab>.hyperplane.health` holds the checker, its `eth0` (169.254.255.2) is
paired with the forwarder's health port (169.254.255.1), and each (NLB node, target)
pair gets a health service: a private address 198.18.x.y that the forwarder translates
to (node address, port) → (target, check port). Every node checks every target of its
target groups (a target sees checks from each node's address). A service's new flows go
to the targets its node sees healthy, or to all of them when none is (fail open); a
target that turns unhealthy has its flows reset (dataplane/forwarder/healthd.py runs this).
"""
from __future__ import annotations

import ipaddress
from typing import Any

from dataplane.model.enis import HyperplaneEni
from dataplane.model.privatelink import Listener, endpoint_dns_names, endpoint_id, service_id
from dataplane.model.topology import Lab, Vpc

from .hyperplane import HEALTH_PORT, Port, Ports, SpecContext, SpecDraft, sg_rules
from .spec import (Backend, ForwarderPort, HealthCheck, PrivateLinkService, SecurityGroups,
                   TargetCheck)

ENDPOINT_MTU = 8500           # PrivateLink (AWS-FACTS §1)
ENDPOINT_MSS = ENDPOINT_MTU - 40
HEALTH_PORT_IP, HEALTH_NS_IP = "169.254.255.1", "169.254.255.2"
HEALTH_IFNAME = "hc0"         # the forwarder's end; the checker's is eth0
HEALTH_VIPS = ipaddress.IPv4Network("198.18.0.0/15")   # RFC 2544 benchmarking range
# Each NLB node's source ports, split so that health checks never compete with client
# flows (issue 13: a flood that filled the pool failed the checks, and the node then reset
# every flow of a target it thought unhealthy). A check is one short connection per
# (node, target) every interval (≥ 5 s), gone 10 s after it closes, so 128 ports are
# many; clients keep 64,384 per (node, target), above AWS's ~55,000 (AWS-FACTS §2).
HEALTH_SNAT_PORTS = (1024, 1151)
CLIENT_SNAT_PORTS = (1152, 65535)


def has_health_checks(lab: Lab) -> bool:
    """NLBs are checked, from the health namespace through the forwarder's health port."""
    return any(v.load_balancers for v in lab.vpcs.values())


def health_port_id(ports: Ports) -> int:
    """The health port's id (compile/hyperplane.py: after the ENIs' in a new lab)."""
    return ports.ids[HEALTH_PORT]


def endpoint_states(lab: Lab, previous: dict[str, dict] | None = None) -> dict[str, dict]:
    """{"<vpc>/<endpoint>": {"id", "state", "service"}}: a new endpoint is
    `pendingAcceptance` when its service requires acceptance, else `available`; a state
    already decided (accepted, rejected) is kept."""
    out = {}
    for vpc in lab.vpcs.values():
        for ep in vpc.endpoints.values():
            key = f"{vpc.name}/{ep.name}"
            svc_vpc, svc = ep.service_ref
            es = lab.vpcs[svc_vpc].endpoint_services[svc]
            state = "pendingAcceptance" if es.acceptance_required else "available"
            if previous and key in previous:
                state = previous[key]["state"]
            out[key] = {"id": endpoint_id(lab.name, vpc.name, ep.name), "state": state,
                        "service": service_id(lab.name, svc_vpc, svc)}
    return out


def dns_records(lab: Lab) -> dict[str, list[tuple[str, str]]]:
    """{vpc: [(name, ip)]}: what each consumer VPC's resolver answers for its endpoints."""
    out: dict[str, list[tuple[str, str]]] = {}
    enis = lab.hyperplane_enis()
    for vpc in lab.vpcs.values():
        for ep in vpc.endpoints.values():
            svc_vpc, svc = ep.service_ref
            mine = [e for e in enis if e.kind == "vpce" and e.vpc == vpc.name and e.owner == ep.name]
            for e in mine:
                regional, zonal = endpoint_dns_names(lab.name, lab.region, vpc.name, ep.name,
                                                     svc_vpc, svc, e.az)
                out.setdefault(vpc.name, []).append((regional, e.ip))
                if zonal:
                    out[vpc.name].append((zonal, e.ip))
                private = lab.vpcs[svc_vpc].endpoint_services[svc].private_dns_name
                if ep.private_dns and private:
                    out[vpc.name].append((private, e.ip))
    return out


def contribute(ctx: SpecContext, spec: SpecDraft) -> None:
    """PrivateLink's part of the forwarder spec: each endpoint ENI's ingress rules, one
    service per (endpoint ENI, listener), and the NLBs' health port, checks and services."""
    lab, addresses, by_owner, services = ctx.lab, ctx.addresses, ctx.by_owner, spec.services
    for vpc in lab.vpcs.values():
        members = lab.sg_members(vpc)
        for ep in vpc.endpoints.values():
            svc_vpc_name, svc_name = ep.service_ref
            svc_vpc = lab.vpcs[svc_vpc_name]
            es = svc_vpc.endpoint_services[svc_name]
            state = ctx.states[f"{vpc.name}/{ep.name}"]["state"]
            rules = sg_rules(vpc, ep.effective_security_groups, members, "ingress")
            instance_ips = {i: addresses[(svc_vpc.name, i)] for i in svc_vpc.instances}
            for ep_port in by_owner[(vpc.name, "vpce", ep.name)]:
                spec.filter_port(ep_port.id, SecurityGroups(ingress=rules))
                node = next((n for lb in es.load_balancers
                             for n in by_owner[(svc_vpc.name, "nlb", lb)]
                             if n.eni.az == ep_port.eni.az), None)
                if node is None:
                    continue  # validation refuses this; a node may be added later
                nlb = svc_vpc.load_balancers[node.eni.owner]
                for listener in nlb.listeners:
                    services.append(listener_service(
                        svc_vpc, node, listener, instance_ips, ep_port.id, ep_port.eni,
                        mtu=ENDPOINT_MTU, mss_clamp=ENDPOINT_MSS,
                        disabled=state != "available",
                        vpce_id=endpoint_id(lab.name, vpc.name, ep.name)))
    checks = _health_checks(lab, by_owner, addresses)
    if checks:
        hc = health_port_id(ctx.ports)
        spec.ports.append(ForwarderPort(id=hc, name="health", ifname=HEALTH_IFNAME,
                                        mac=ctx.macs[hc][0], peer_mac=ctx.macs[hc][1],
                                        addrs=(HEALTH_PORT_IP,)))
        for c in checks:
            ip, port = c.target
            services.append(PrivateLinkService(
                name=f"health:{c.group}:{ip}:{port}", in_port=hc, out_port=c.node_port,
                vip=c.vip, vport=c.vport, proto="tcp", snat_ip=c.node_ip,
                snat_ports=HEALTH_SNAT_PORTS, backends=(Backend(ip, c.vport),)))
    spec.health_checks += checks


def listener_service(vpc: Vpc, node: Port, listener: Listener, instance_ips: dict[str, str],
                     in_port: int, front: HyperplaneEni, **options: Any) -> PrivateLinkService:
    """One NLB listener as the forwarder serves it: new flows to `front`'s address (an
    endpoint ENI, or the node itself) on the listener port, arriving on `in_port`, go
    out of the node's port from its address to the listener's targets, preferring
    those in the node's AZ and those its health checks see healthy. With the target
    group's `proxy_protocol_v2`, each flow's first bytes get a PROXY v2 header, naming
    the endpoint when `options` give its `vpce_id`."""
    tg = vpc.target_groups[listener.target_group]
    targets = tg.target_addresses(instance_ips)
    local = [t for t in targets if _az_of(vpc, t[0]) == node.eni.az]
    return PrivateLinkService(
        name=f"{front.eni_id}:{listener.port}", health_group=f"{node.eni.eni_id}/{tg.name}",
        in_port=in_port, out_port=node.id, vip=front.ip, vport=listener.port, proto="tcp",
        snat_ip=node.eni.ip, snat_ports=CLIENT_SNAT_PORTS,
        idle_timeout_s=listener.idle_timeout, rst_on_miss=True, hash_tcp_seq=True,
        proxy_protocol_v2=tg.proxy_protocol_v2,
        backends=tuple(Backend(ip, port) for ip, port in targets),
        preferred=tuple((ip, port) for ip, port in local), **options)


def _health_checks(lab: Lab, by_owner: dict, addresses: dict) -> list[TargetCheck]:
    """One check per (NLB node, target group, target): from the node's address, through
    a health service on its own private address (the module docstring says why)."""
    checks = []
    vips = HEALTH_VIPS.hosts()
    for vpc in lab.vpcs.values():
        instance_ips = {i: addresses[(vpc.name, i)] for i in vpc.instances}
        for lb in vpc.load_balancers.values():
            for node in by_owner.get((vpc.name, "nlb", lb.name), []):
                for tg_name in dict.fromkeys(l.target_group for l in lb.listeners):
                    tg = vpc.target_groups[tg_name]
                    listener_port = next(l.port for l in lb.listeners if l.target_group == tg_name)
                    for ip, port in tg.target_addresses(instance_ips):
                        check = {**tg.health_check}
                        vport = check.pop("port", None) or port
                        checks.append(TargetCheck(
                            group=f"{node.eni.eni_id}/{tg_name}", node_port=node.id,
                            node_ip=node.eni.ip, target=(ip, port), vip=str(next(vips)),
                            vport=vport, check=HealthCheck(**check),
                            host_header=f"{node.eni.ip}:{listener_port}",
                            proxy_protocol_v2=tg.proxy_protocol_v2))
    return checks


def _az_of(vpc: Vpc, ip: str) -> str | None:
    addr = ipaddress.IPv4Address(ip)
    for s in vpc.subnets.values():
        if addr in s.network:
            return s.az
    return None
