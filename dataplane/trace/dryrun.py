"""The forwarder's side of `vpclab trace`: the `trace` command of its control socket.

`answer(daemon, request)` runs the engine's dry run (native/hp_trace.c, Engine.trace) on
one packet, with the loop held between two batches as every table read is, and names
what the engine knows only by number: the port the packet arrives on and the one it
would leave by (their spec labels), the service (its spec name), the security-group rule
that let it through (the spec's rule itself), the VPC link route or ENI chosen. The
request names the arrival port by label or id and the packet by its 5-tuple:

    {"cmd": "trace", "port": "eni-…", "proto": "tcp", "src": "10.0.1.10", "sport": 40000,
     "dst": "10.0.1.50", "dport": 80, "flags": "S", "size": 0}

It changes nothing in the engine (no flow, no port, no counter), so it may be asked at
any time of a live lab.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from dataplane.compile.spec import ForwarderPort, VpcNatService
from dataplane.forwarder.engine import DROP_REASON_TEXT, EngineError


def _port_id(ports: dict[int, ForwarderPort], name: Any) -> int:
    if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
        return int(name)
    for pid, port in ports.items():
        if name in (port.label, port.name, port.ifname):
            return pid
    raise EngineError(f"trace: the forwarder has no port {name!r} "
                      f"(it has {', '.join(sorted(p.label for p in ports.values()))})")


def _rule(port: ForwarderPort | None, direction: str, matched: int | str) -> dict | None:
    """The spec's rule a trace's rule index names, as JSON."""
    if port is None or not isinstance(matched, int):
        return None
    rules = getattr(port.security_groups, direction) or ()
    return rules[matched].to_json() if matched < len(rules) else None


def answer(daemon, request: dict) -> dict:
    ports: dict[int, ForwarderPort] = daemon.applied.ports
    in_port = _port_id(ports, request["port"])
    with daemon.forwarder.locked():
        t = daemon.engine.trace(in_port, proto=request.get("proto", "tcp"), src=request["src"],
                                sport=int(request.get("sport", 0)), dst=request["dst"],
                                dport=int(request.get("dport", 0)),
                                flags=request.get("flags", "S"), size=int(request.get("size", 0)))
        services = {sid: spec for sid, spec in daemon.applied.services.values()}
        names = {sid: name for name, (sid, _) in daemon.applied.services.items()}
    out = dataclasses.asdict(t)
    out["in_port"] = in_port
    out["drop_text"] = DROP_REASON_TEXT[t.drop_reason] if t.drop_reason != "none" else ""
    out["in_port_name"] = daemon.port_name(in_port)
    out["out_port_name"] = daemon.port_name(t.out_port)
    out["service_name"] = names.get(t.service) if t.service is not None else None
    out["sg_ingress_rule"] = _rule(ports.get(in_port), "ingress", t.sg_ingress)
    out["sg_egress_port_name"] = (daemon.port_name(t.sg_egress_port)
                                  if t.sg_egress_port is not None else None)
    out["sg_egress_rule"] = _rule(ports.get(t.sg_egress_port), "egress", t.sg_egress)
    spec = services.get(t.service)
    out["hash_tcp_seq"] = bool(getattr(spec, "hash_tcp_seq", False))
    if isinstance(spec, VpcNatService) and t.backend_how == "link_route":
        route = spec.routes[t.backend_index]
        out["link_route"] = {"cidr": str(route.cidr), "eni": spec.enis[route.eni].ip}
    return {"trace": out}
