"""The forwarder's tables as data: what the control plane compiles a lab into, and how a
running engine is brought to match it without cutting flows that should survive.

A spec is plain JSON-able data, so it can be written to the lab's state directory,
sent over the control socket and read by a person:

    {"flow_capacity": 65536,
     "ports": [{"id": 0, "name": "eni-0a1b2c3d", "ifname": "eni-0a1b2c3d",
                "mac": "02:…", "addrs": ["10.0.1.50"], "peer_mac": "02:…",
                "security_groups": {"ingress": [{"protocol": "tcp", "cidr": "10.0.0.0/16",
                                                 "port_lo": 80, "port_hi": 80}]}}],
     "services": [{"name": "vpce-0a1b/80", "in_port": 0, "out_port": 1,
                   "vip": "10.0.1.50", "vport": 80, "proto": "tcp",
                   "snat_ports": [1024, 65535], "idle_timeout_s": 350, "mtu": 8500,
                   "mss_clamp": 8460, "rst_on_miss": true, "hash_tcp_seq": true,
                   "disabled": false, "backends": [{"ip": "10.0.1.20", "port": 8080}]},
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

`apply_spec()` diffs a new spec against what the engine has: a service whose listener
and SNAT pool are unchanged keeps its flows while its backends, flags and timeouts
change (a target turning unhealthy, an endpoint accepted or rejected); a service whose
listener changed is replaced; ports and security groups are set in place. A VPC link's
identity is everything but its `disabled` flag (links are immutable on AWS too), so a
changed link is replaced and an unchanged one keeps its flows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from dataplane.forwarder.engine import Backend, Engine, EngineError, LinkEni, LinkRoute, SgRule

# Fields that identify a listener: if any differs, the old service and its flows go.
LISTENER_FIELDS = ("in_port", "out_port", "vip", "vport", "proto", "snat_ip", "snat_ports",
                   "mtu", "mss_clamp", "idle_timeout_s")
SERVICE_DEFAULTS: dict[str, Any] = {"proto": "tcp", "snat_ip": None, "snat_ports": [0, 0],
                                    "health_group": None, "preferred": [],
                                    "idle_timeout_s": 0, "mtu": 0, "mss_clamp": 0,
                                    "rst_on_miss": False, "hash_tcp_seq": False,
                                    "disabled": False, "backends": []}
LINK_FIELDS = ("in_port", "prefixes", "enis", "routes", "protocols", "snat_ports",
               "idle_timeout_s", "mtu", "mss_clamp")
LINK_DEFAULTS: dict[str, Any] = {"routes": [], "protocols": ["tcp", "udp"], "snat_ports": [0, 0],
                                 "idle_timeout_s": 0, "mtu": 0, "mss_clamp": 0, "disabled": False}


@dataclass
class Applied:
    """What a running engine holds, by name, so the next spec can be diffed against it."""
    services: dict[str, tuple[int, dict]] = field(default_factory=dict)   # name → (id, spec)
    ports: dict[int, dict] = field(default_factory=dict)


def _add_privatelink(engine: Engine, svc: dict) -> int:
    sid = engine.add_service(svc["in_port"], svc["out_port"], svc["vip"], svc["vport"], svc["proto"],
                             snat_ip=svc["snat_ip"], snat_ports=tuple(svc["snat_ports"]),
                             idle_timeout_s=svc["idle_timeout_s"], mtu=svc["mtu"],
                             mss_clamp=svc["mss_clamp"], rst_on_miss=svc["rst_on_miss"],
                             hash_tcp_seq=svc["hash_tcp_seq"], disabled=svc["disabled"])
    try:
        engine.set_backends(sid, [Backend(**b) for b in svc["backends"]])
    except (EngineError, TypeError):
        engine.remove_service(sid)  # nothing half-made
        raise
    return sid


def _update_privatelink(engine: Engine, sid: int, old: dict, svc: dict) -> None:
    if old["backends"] != svc["backends"]:
        engine.set_backends(sid, [Backend(**b) for b in svc["backends"]])
    engine.set_service_flags(sid, disabled=svc["disabled"], rst_on_miss=svc["rst_on_miss"],
                             hash_tcp_seq=svc["hash_tcp_seq"])


def _add_vpc_nat(engine: Engine, svc: dict) -> int:
    try:
        enis = [LinkEni(**e) for e in svc["enis"]]
        routes = [LinkRoute(**r) for r in svc["routes"]]
    except TypeError as exc:
        raise EngineError(f"an ENI is {{port, ip}} and a route {{cidr, eni}}: {exc}") from None
    return engine.add_vpc_link(svc["in_port"], svc["prefixes"], enis, routes, svc["protocols"],
                               snat_ports=tuple(svc["snat_ports"]),
                               idle_timeout_s=svc["idle_timeout_s"], mtu=svc["mtu"],
                               mss_clamp=svc["mss_clamp"], disabled=svc["disabled"])


def _update_vpc_nat(engine: Engine, sid: int, old: dict, svc: dict) -> None:
    engine.set_service_flags(sid, disabled=svc["disabled"])


@dataclass(frozen=True)
class ServiceKind:
    """How a spec entry of one kind is read, identified, added and changed in place."""
    identity: tuple[str, ...]      # fields whose change replaces the service (and its flows)
    required: tuple[str, ...]
    defaults: dict[str, Any]
    add: Callable[[Engine, dict], int]
    update: Callable[[Engine, int, dict, dict], None]


KINDS: dict[str, ServiceKind] = {
    "privatelink": ServiceKind(LISTENER_FIELDS, ("in_port", "out_port", "vip", "vport"),
                               SERVICE_DEFAULTS, _add_privatelink, _update_privatelink),
    "vpc_nat": ServiceKind(LINK_FIELDS, ("in_port", "prefixes", "enis"), LINK_DEFAULTS,
                           _add_vpc_nat, _update_vpc_nat),
}


def _service(spec: dict) -> dict:
    name = spec.get("name", "?")
    kind_name = spec.get("kind", "privatelink")
    kind = KINDS.get(kind_name)
    if kind is None:
        raise EngineError(f"service {name}: unknown kind {kind_name!r}; use one of {', '.join(KINDS)}")
    unknown = set(spec) - set(kind.defaults) - set(kind.identity) - {"name", "kind"}
    if unknown:
        raise EngineError(f"service {name}: unknown fields {', '.join(sorted(unknown))}")
    for key in ("name", *kind.required):
        if key not in spec:
            raise EngineError(f"service {name}: '{key}' is missing")
    return {**kind.defaults, **spec, "kind": kind_name}


def _listener(svc: dict) -> tuple:
    def frozen(value: Any) -> Any:
        if isinstance(value, list):
            return tuple(frozen(v) for v in value)
        if isinstance(value, dict):
            return tuple(sorted((k, frozen(v)) for k, v in value.items()))
        return value
    return (svc["kind"], *(frozen(svc[k]) for k in KINDS[svc["kind"]].identity))


def _set_port(engine: Engine, port: dict) -> None:
    engine.set_port(port["id"], port["mac"], port.get("addrs", []), port.get("peer_mac"))
    groups = port.get("security_groups", {})
    for direction in ("ingress", "egress"):
        if direction in groups:
            engine.set_security_group(port["id"], direction, [SgRule(**r) for r in groups[direction]])
        else:
            engine.clear_security_group(port["id"], direction)


def apply_spec(engine: Engine, applied: Applied, spec: dict) -> dict[str, list[str]]:
    """Brings `engine` to `spec`; returns what changed, by kind, for logs and tests.

    Checked before anything changes: unknown fields, missing fields, duplicate names.
    An engine error half-way (a bad address, say) leaves the services applied so far
    in place and reports which one failed; the caller re-applies the previous spec."""
    services = [_service(s) for s in spec.get("services", [])]
    names = [s["name"] for s in services]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise EngineError(f"duplicate service names: {', '.join(dupes)}")
    ports = {p["id"]: p for p in spec.get("ports", [])}
    changes: dict[str, list[str]] = {"ports": [], "removed": [], "added": [], "updated": []}

    for pid, port in ports.items():
        if applied.ports.get(pid) != port:
            _set_port(engine, port)
            applied.ports[pid] = port
            changes["ports"].append(port.get("name", str(pid)))
    wanted = {s["name"]: s for s in services}
    for name, (sid, old) in list(applied.services.items()):
        if name not in wanted or _listener(old) != _listener(wanted[name]):
            engine.remove_service(sid)
            del applied.services[name]
            changes["removed"].append(name)
    for name, svc in wanted.items():
        if name not in applied.services:
            try:
                applied.services[name] = (KINDS[svc["kind"]].add(engine, svc), svc)
            except EngineError as exc:
                raise EngineError(f"service {name}: {exc}") from None
            changes["added"].append(name)
            continue
        sid, old = applied.services[name]
        if old == svc:
            continue
        KINDS[svc["kind"]].update(engine, sid, old, svc)
        applied.services[name] = (sid, svc)
        changes["updated"].append(name)
    for pid in [p for p in applied.ports if p not in ports]:
        engine.remove_port(pid)
        del applied.ports[pid]
        changes["ports"].append(f"-{pid}")
    return changes
