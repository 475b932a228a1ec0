"""The forwarder's tables as data: what the control plane compiles a lab into, and how a
running engine is brought to match it without cutting flows that should survive.

A spec is JSON on disk and on the wire, so it can be written to the lab's state
directory, sent over the control socket and read by a person; in Python it is a
`dataplane.compile.spec.ForwarderSpec`, read once at the edge (the daemon's `--spec`
file, the control socket's `apply`) with `ForwarderSpec.from_json`:

    {"flow_capacity": 65536,
     "ports": [{"id": 0, "name": "eni-0a1b2c3d", "ifname": "eni-0a1b2c3d",
                "mac": "02:…", "addrs": ["10.0.1.50"], "peer_mac": "02:…",
                "security_groups": {"ingress": [{"protocol": "tcp", "cidr": "10.0.0.0/16",
                                                 "port_lo": 80, "port_hi": 80}]}}],
     "services": [{"name": "vpce-0a1b/80", "in_port": 0, "out_port": 1,
                   "vip": "10.0.1.50", "vport": 80, "proto": "tcp",
                   "snat_ports": [1024, 65535], "idle_timeout_s": 350, "mtu": 8500,
                   "mss_clamp": 8460, "rst_on_miss": true, "hash_tcp_seq": true,
                   "disabled": false, "proxy_protocol_v2": true,
                   "vpce_id": "vpce-0a1b2c3d4e5f67890",
                   "backends": [{"ip": "10.0.1.20", "port": 8080}]},
                  {"name": "vpclink-0a1b2c3d4e5f6a7b8", "kind": "vpc_nat", "in_port": 5,
                   "prefixes": ["10.0.0.0/16"],
                   "enis": [{"port": 6, "ip": "10.0.1.4"}, {"port": 7, "ip": "10.0.2.4"}],
                   "routes": [{"cidr": "10.0.1.0/24", "eni": 0}, {"cidr": "10.0.2.0/24", "eni": 1}],
                   "protocols": ["tcp", "udp"], "snat_ports": [1024, 65535],
                   "idle_timeout_s": 350, "mtu": 8500, "mss_clamp": 8460, "disabled": false}]}

A service entry has a "kind": "privatelink" (the default, when absent) is a listener with
backends; "vpc_nat" is a VPC link (VPC-to-VPC NAT): new flows from its attachment port
`in_port` toward `prefixes` leave from one of its ENIs (the one the longest covering
route names, else one by hash) with the ENI's address as their source.

`apply_spec()` diffs a new spec against what the engine has: a service whose identity
(compile/spec.py: a listener's in/out ports, address, protocol, SNAT pool, MTU, MSS,
idle timeout, PROXY v2 and endpoint ID: a flow's header and shift are its service's) is unchanged keeps its flows while its backends, flags and timeouts
change (a target turning unhealthy, an endpoint accepted or rejected); a service whose
identity changed is replaced; ports and security groups are set in place, and a port no
longer in the spec is removed from the engine (hp_port_remove, with its flows) once no
service uses it. Port ids are the lab's stable ones (compile/hyperplane.py), so a port
that stays keeps its id whatever comes and goes; the daemon closes a removed port's
socket before this runs and opens a new port's after (forwarder/daemon.py). A VPC link's
identity is everything but its `disabled` flag (links are immutable on AWS too), so a
changed link is replaced and an unchanged one keeps its flows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from dataplane.compile.spec import (ForwarderPort, ForwarderSpec, PrivateLinkService, Service,
                                    VpcNatService, service_identity)
from dataplane.forwarder.engine import Engine, EngineError


@dataclass
class Applied:
    """What a running engine holds, by name, so the next spec can be diffed against it."""
    services: dict[str, tuple[int, Service]] = field(default_factory=dict)   # name → (id, spec)
    ports: dict[int, ForwarderPort] = field(default_factory=dict)


def _add_privatelink(engine: Engine, svc: PrivateLinkService) -> int:
    sid = engine.add_service(svc.in_port, svc.out_port, svc.vip, svc.vport, svc.proto,
                             snat_ip=svc.snat_ip, snat_ports=svc.snat_ports,
                             idle_timeout_s=svc.idle_timeout_s, mtu=svc.mtu,
                             mss_clamp=svc.mss_clamp, rst_on_miss=svc.rst_on_miss,
                             hash_tcp_seq=svc.hash_tcp_seq, disabled=svc.disabled,
                             proxy_v2=svc.proxy_protocol_v2, vpce_id=svc.vpce_id)
    try:
        engine.set_backends(sid, svc.backends)
    except EngineError:
        engine.remove_service(sid)  # nothing half-made
        raise
    return sid


def _update_privatelink(engine: Engine, sid: int, old: PrivateLinkService,
                        svc: PrivateLinkService) -> None:
    if old.backends != svc.backends:
        engine.set_backends(sid, svc.backends)
    engine.set_service_flags(sid, disabled=svc.disabled, rst_on_miss=svc.rst_on_miss,
                             hash_tcp_seq=svc.hash_tcp_seq)


def _add_vpc_nat(engine: Engine, svc: VpcNatService) -> int:
    return engine.add_vpc_link(svc.in_port, svc.prefixes, svc.enis, svc.routes, svc.protocols,
                               snat_ports=svc.snat_ports, idle_timeout_s=svc.idle_timeout_s,
                               mtu=svc.mtu, mss_clamp=svc.mss_clamp, disabled=svc.disabled)


def _update_vpc_nat(engine: Engine, sid: int, old: VpcNatService, svc: VpcNatService) -> None:
    engine.set_service_flags(sid, disabled=svc.disabled)


@dataclass(frozen=True)
class ServiceKind:
    """How a service of one kind is added to the engine and changed in place."""
    add: Callable[[Engine, Service], int]
    update: Callable[[Engine, int, Service, Service], None]


KINDS: dict[type, ServiceKind] = {
    PrivateLinkService: ServiceKind(_add_privatelink, _update_privatelink),
    VpcNatService: ServiceKind(_add_vpc_nat, _update_vpc_nat),
}


def _set_port(engine: Engine, port: ForwarderPort) -> None:
    engine.set_port(port.id, port.mac, port.addrs, port.peer_mac)
    groups = port.security_groups
    for direction in ("ingress", "egress"):
        rules = getattr(groups, direction)
        if rules is not None:
            engine.set_security_group(port.id, direction, rules)
        else:
            engine.clear_security_group(port.id, direction)


def apply_spec(engine: Engine, applied: Applied, spec: ForwarderSpec) -> dict[str, list[str]]:
    """Brings `engine` to `spec`; returns what changed, by kind, for logs and tests.

    The spec was checked when it was read (ForwarderSpec.from_json: fields, types,
    addresses, unique names). An engine error half-way (an unknown protocol, say) leaves
    the services applied so far in place and reports which one failed; the caller
    re-applies the previous spec."""
    ports = {p.id: p for p in spec.ports}
    changes: dict[str, list[str]] = {"ports": [], "removed": [], "added": [], "updated": []}

    for pid, port in ports.items():
        if applied.ports.get(pid) != port:
            _set_port(engine, port)
            applied.ports[pid] = port
            changes["ports"].append(port.label)
    wanted = {s.name: s for s in spec.services}
    for name, (sid, old) in list(applied.services.items()):
        if name not in wanted or service_identity(old) != service_identity(wanted[name]):
            engine.remove_service(sid)
            del applied.services[name]
            changes["removed"].append(name)
    for name, svc in wanted.items():
        if name not in applied.services:
            try:
                applied.services[name] = (KINDS[type(svc)].add(engine, svc), svc)
            except EngineError as exc:
                raise EngineError(f"service {name}: {exc}") from None
            changes["added"].append(name)
            continue
        sid, old = applied.services[name]
        if old == svc:
            continue
        KINDS[type(svc)].update(engine, sid, old, svc)
        applied.services[name] = (sid, svc)
        changes["updated"].append(name)
    for pid in [p for p in applied.ports if p not in ports]:
        engine.remove_port(pid)
        del applied.ports[pid]
        changes["ports"].append(f"-{pid}")
    return changes
