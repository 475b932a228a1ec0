"""The hop tree of `vpclab trace`: where one packet goes, and why it stops.

Given a lab's model (the same one `up` realised), a source instance and a destination
(address, name or instance) with a protocol and port, `trace()` follows the first packet
of a connection hop by hop, as Open vSwitch's `ofproto/trace` follows a flow through its
tables:

    1. dns             a name, resolved as the source VPC's dnsmasq would: from the hosts
                       file `up` writes (realise_vpc.hosts()), with the resolver's search
                       domain; of several addresses, the one getaddrinfo() would try first
                       (the longest prefix shared with the source, RFC 6724 rule 9)
    2. source ENI      the instance ENI's egress security groups (sg.py: the compiled
                       rules that become its nftables chain), the rule that matched
    3. VPC router      what the VPC's router has for the destination: an instance's host
                       route (same subnet or not: proxy ARP answers for every address of
                       the subnet), a Hyperplane ENI's (endpoint, NLB node, VPC link), its
                       own DNS address (no security group applies), or no route
    4. Hyperplane ENI  the ENI the packet enters the forwarder by, its kind and owner
    5. engine          the forwarder's dry run of the packet (native/hp_trace.c through the
                       control socket, dataplane/trace/dryrun.py): flow or new flow,
                       service, ingress SG rule, backend and why, egress SG rule, the SNAT
                       address and port it would take, MTU, MSS, PROXY v2, verdict
    6. egress ENI      the Hyperplane ENI it leaves by (NLB node, VPC link ENI) — then 3
                       again in that ENI's VPC, for the translated packet
    7. target ENI      the destination instance's ingress security groups
    8. verdict         reachable, or the first refusal with its AWS Reachability Analyzer
                       explanation code

Explanation codes are AWS's where AWS has one (ENI_SG_RULES_MISMATCH,
NO_ROUTE_TO_DESTINATION, ELBV2_LISTENER_PORT_RESTRICTION, ELBV2_LISTENER_HAS_NO_TG,
BAD_STATE); engine refusals AWS's analyzer has no code for keep vpclab's drop reason as
`VPCLAB_<REASON>` (e.g. VPCLAB_MTU), so they are never mistaken for AWS's. Each verdict
also says what the client would see: `connected` (the first packet reaches the target),
`timeout` (dropped in silence, as AWS drops), `reset` (a RST comes back).

The engine is a callable (`engine(port, proto, src, sport, dst, dport) -> dict`, the
`trace` command's reply), so the tree is built the same way from a live lab
(`live_engine`) and, in unit tests, from an Engine made from the lab's compiled spec.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from dataplane.model import Lab

from . import sg

ENGINE_CODES = {
    "sg_ingress": "ENI_SG_RULES_MISMATCH", "sg_egress": "ENI_SG_RULES_MISMATCH",
    "no_service": "ELBV2_LISTENER_PORT_RESTRICTION", "no_backend": "ELBV2_LISTENER_HAS_NO_TG",
    "service_disabled": "BAD_STATE",
}
MAX_ENGINE_PASSES = 4   # bound on Hyperplane → VPC → Hyperplane loops (none exist today)
EPHEMERAL_SPORT = 40000  # the source port the traced packet carries

Engine = Callable[[int, str, str, int, str, int], dict]


class TraceError(ValueError):
    """The trace cannot start: an unknown source, a name no resolver answers, a bad port."""


@dataclass
class Hop:
    """One node of the tree: a component, what it did (`lines`), its verdict ('pass',
    'drop' or 'info'), and the facts as data (`facts`, for --json)."""
    kind: str
    title: str
    lines: list[str] = field(default_factory=list)
    verdict: str = "pass"
    facts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"hop": self.kind, "title": self.title, "verdict": self.verdict,
                "lines": self.lines, **self.facts}


@dataclass
class Trace:
    source: str
    destination: str
    protocol: str
    port: int
    hops: list[Hop] = field(default_factory=list)
    reachable: bool = False
    code: str | None = None            # the explanation code of the refusal
    component: str | None = None       # the hop that refused
    client_sees: str = "timeout"       # connected, timeout or reset
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "destination": self.destination,
                "protocol": self.protocol, "port": self.port,
                "hops": [h.to_json() for h in self.hops],
                "verdict": {"reachable": self.reachable, "explanation_code": self.code,
                            "component": self.component, "client_sees": self.client_sees,
                            "reason": self.reason}}


@dataclass(frozen=True)
class Place:
    """Something with an address in a VPC: an instance (its plan entry) or a Hyperplane
    ENI (its port and model record)."""
    vpc: str
    ip: str
    instance: Any = None        # lab.plan.InstancePlan
    eni: dict | None = None     # the plain ENI data nft.render takes, for instances
    port: Any = None            # compile.hyperplane.Port, for Hyperplane ENIs


class World:
    """The lab's model as trace reads it: VPC plans (instances, their compiled SG rules,
    group members), Hyperplane ENIs with their forwarder ports, each VPC's hosts file."""

    def __init__(self, lab: Lab) -> None:
        from dataplane.compile.hyperplane import ports
        from dataplane.lab.plan import plan
        from dataplane.lab.realise_vpc import LabDns, hosts
        self.lab = lab
        self.plans = {p.name: p for p in plan(lab)}
        self.ports = ports(lab)
        dns_of_lab = LabDns.of(lab)
        self.hosts = {name: hosts(lab, p, dns_of_lab) for name, p in self.plans.items()}

    def place(self, vpc: str, ip: str) -> Place | None:
        p = self.plans[vpc]
        for i in p.instances:
            if i.ip == ip:
                return Place(vpc, ip, instance=i,
                             eni=next(e for e in p.enis if e["ifname"] == i.eni))
        for port in self.ports:
            if port.eni.vpc == vpc and port.eni.ip == ip:
                return Place(vpc, ip, port=port)
        return None

    def port(self, pid: int):
        return next((p for p in self.ports if p.id == pid), None)

    def instance(self, spec: str) -> Place:
        vpc, _, name = spec.partition("/")
        if vpc not in self.plans:
            raise TraceError(f"no VPC {vpc!r} in lab {self.lab.name} "
                             f"(VPCs: {', '.join(self.plans)})")
        inst = next((i for i in self.plans[vpc].instances if i.name == name), None)
        if inst is None:
            raise TraceError(f"VPC {vpc} has no instance {name!r} (instances: "
                             f"{', '.join(i.name for i in self.plans[vpc].instances) or 'none'})")
        return self.place(vpc, inst.ip)

    def resolve(self, vpc: str, name: str) -> list[str]:
        """The addresses VPC `vpc`'s resolver answers for `name` (its hosts file; a bare
        name with the resolver's search domain too)."""
        from netns_setup.dns import domain
        wanted = {name.rstrip(".").lower()}
        if "." not in name:
            wanted.add(f"{name.lower()}.{domain(self.lab.region)}")
        out = []
        for line in self.hosts[vpc].splitlines():
            ip, *names = line.split()
            if wanted & {n.lower() for n in names} and ip not in out:
                out.append(ip)
        return out


def _common_prefix(a: str, b: str) -> int:
    x = int(ipaddress.IPv4Address(a)) ^ int(ipaddress.IPv4Address(b))
    return 32 - x.bit_length()


def _refuse(t: Trace, hop: Hop, code: str, reason: str, client_sees: str = "timeout") -> Trace:
    hop.verdict = "drop"
    t.hops.append(hop)
    t.code, t.component, t.reason, t.client_sees = code, hop.kind, reason, client_sees
    return t


def _sg_lines(match: sg.SgMatch, direction: str, groups: list[str]) -> list[str]:
    head = f"security groups {', '.join(groups) or '(none)'}, {direction}:"
    if match.allowed:
        return [f"{head} rule #{match.index} {sg.rule_text(match.rule, direction)} → allow"]
    return [f"{head} no rule matches → drop"]


def trace(world: World, source: str, destination: str, proto: str = "tcp",
          port: int | None = None, engine: Engine | None = None) -> Trace:
    """The hop tree of the first packet from instance `source` ('vpc/instance') to
    `destination` (an address, a name the source's resolver answers, or 'vpc/instance')."""
    if proto not in ("tcp", "udp", "icmp"):
        raise TraceError(f"protocol {proto!r}: trace follows tcp, udp or icmp")
    if proto == "icmp":
        port = 0
    elif port is None:
        raise TraceError(f"a {proto} trace needs the destination port (DST:PORT)")
    elif not 1 <= port <= 65535:
        raise TraceError(f"port {port} is not between 1 and 65535")
    src = world.instance(source)
    t = Trace(source, destination, proto, port)

    # 1. the destination's address
    dst_ip = _address(world, src, destination, t)
    sport = EPHEMERAL_SPORT if proto != "icmp" else 1
    dport_sg = port if proto != "icmp" else 8

    # 2. the source instance's ENI, egress
    inst = src.instance
    match = sg.evaluate(src.eni, "egress", proto, dst_ip, dport_sg, world.plans[src.vpc].groups)
    hop = Hop("source_eni", f"{src.vpc}/{inst.name} {inst.ip} → ENI {inst.eni} (egress)",
              [f"packet {proto} {inst.ip}:{sport} → {dst_ip}:{port}"]
              + _sg_lines(match, "egress", inst.security_groups),
              facts={"eni": inst.eni, "security_groups": inst.security_groups,
                     "rule": match.index, "rule_text": match.rule and sg.rule_text(match.rule, "egress")})
    if not match.allowed:
        return _refuse(t, hop, "ENI_SG_RULES_MISMATCH",
                       f"no egress rule of {src.vpc}/{inst.name}'s security groups allows "
                       f"{proto} to {dst_ip}:{port}")
    t.hops.append(hop)

    if "/" in destination and destination.partition("/")[0] != src.vpc:
        # CIDRs may overlap: another VPC's instance is reached only through something
        # (an endpoint, a link) that has an address here, never by its own address.
        return _refuse(t, Hop("vpc_router", f"VPC {src.vpc} router ({world.plans[src.vpc].cidr})",
                              [f"{destination} is in another VPC: no peering or transit "
                               f"gateway connects VPC {src.vpc} to it"]),
                       "NO_ROUTE_TO_DESTINATION",
                       f"VPC {src.vpc}'s route table has no route to VPC "
                       f"{destination.partition('/')[0]}")
    if dst_ip == inst.ip:
        raise TraceError(f"{destination} is {source}'s own address: the packet never leaves it")
    vpc, pkt_src, pkt_sport, pkt_dst, pkt_dport = src.vpc, inst.ip, sport, dst_ip, port
    for _ in range(MAX_ENGINE_PASSES):
        # 3. the VPC router
        here = world.plans[vpc]
        place = world.place(vpc, pkt_dst)
        router = Hop("vpc_router", f"VPC {vpc} router ({here.cidr})",
                     facts={"vpc": vpc, "destination": pkt_dst})
        if pkt_dst == here.dns:
            router.lines.append(f"{pkt_dst} is the VPC's own resolver (base+2): delivered "
                                f"to dnsmasq, no security group applies")
            t.hops.append(router)
            t.reachable, t.client_sees = True, "connected"
            t.reason = "the VPC's DNS resolver answers"
            return t
        if place is None:
            inside = ipaddress.IPv4Address(pkt_dst) in ipaddress.IPv4Network(here.cidr)
            router.lines.append(
                f"no route to {pkt_dst}: " + ("no ENI in the VPC has this address"
                                              if inside else "outside the VPC's CIDR, and "
                                              "the route table has only the local route"))
            return _refuse(t, router, "NO_ROUTE_TO_DESTINATION",
                           f"VPC {vpc}'s route table has no route to {pkt_dst}")
        router.lines.append(_route_line(world, vpc, pkt_src, place))
        t.hops.append(router)

        if place.instance is not None:
            # 7. the target instance's ENI, ingress
            target = place.instance
            match = sg.evaluate(place.eni, "ingress", proto, pkt_src,
                                pkt_dport if proto != "icmp" else 8, here.groups)
            hop = Hop("target_eni", f"ENI {target.eni} → {vpc}/{target.name} {target.ip} (ingress)",
                      [f"packet {proto} {pkt_src}:{pkt_sport} → {pkt_dst}:{pkt_dport}"]
                      + _sg_lines(match, "ingress", target.security_groups),
                      facts={"eni": target.eni, "instance": f"{vpc}/{target.name}",
                             "security_groups": target.security_groups, "rule": match.index,
                             "rule_text": match.rule and sg.rule_text(match.rule, "ingress")})
            if not match.allowed:
                return _refuse(t, hop, "ENI_SG_RULES_MISMATCH",
                               f"no ingress rule of {vpc}/{target.name}'s security groups "
                               f"allows {proto} from {pkt_src} to port {pkt_dport}")
            t.hops.append(hop)
            t.reachable, t.client_sees = True, "connected"
            t.reason = f"delivered to {vpc}/{target.name} {pkt_dst}:{pkt_dport}"
            return t

        # 4-6. a Hyperplane ENI: the forwarder decides
        eni = place.port.eni
        t.hops.append(Hop("hyperplane_eni", f"{_eni_name(eni)} {eni.ip} ({eni.eni_id}) → "
                                            f"forwarder port {place.port.hp_ifname}",
                          [f"subnet {eni.subnet}" + (f", {eni.az}" if eni.az else "")
                           + f"; security groups {', '.join(eni.security_groups) or '(none)'}"
                           " (the engine checks them)"],
                          verdict="info", facts={"eni_id": eni.eni_id, "kind": eni.kind,
                                                 "owner": eni.owner, "port": place.port.id}))
        if engine is None:
            return _refuse(t, Hop("engine", "Hyperplane engine", ["no forwarder to ask"]),
                           "VPCLAB_NO_FORWARDER", "the lab's forwarder is not running")
        r = engine(place.port.id, proto, pkt_src, pkt_sport, pkt_dst, pkt_dport)
        hop = _engine_hop(r)
        if r["verdict"] != "forward":
            reason = r["drop_reason"]
            code = ENGINE_CODES.get(reason, f"VPCLAB_{reason.upper()}")
            text = r.get("drop_text")
            return _refuse(t, hop, code, f"the Hyperplane engine drops it: {reason}"
                           + (f" ({text})" if text else ""),
                           "reset" if r["rst"] else "timeout")
        t.hops.append(hop)
        out = world.port(r["out_port"])
        if out is None:
            return _refuse(t, Hop("egress_eni", f"forwarder port {r['out_port']}",
                                  ["a port trace does not follow (the health checker's)"]),
                           "VPCLAB_UNFOLLOWED", "the packet leaves by a port with no ENI")
        oe = out.eni
        t.hops.append(Hop("egress_eni", f"forwarder port {out.hp_ifname} → {_eni_name(oe)} "
                                        f"{oe.ip} ({oe.eni_id}) in VPC {oe.vpc}",
                          [f"packet {proto} {r['out_src'][0]}:{r['out_src'][1]} → "
                           f"{r['out_dst'][0]}:{r['out_dst'][1]}"], verdict="info",
                          facts={"eni_id": oe.eni_id, "kind": oe.kind, "owner": oe.owner,
                                 "port": out.id}))
        vpc = oe.vpc
        pkt_src, pkt_sport = r["out_src"]
        pkt_dst, pkt_dport = r["out_dst"]
    return _refuse(t, Hop("vpc_router", "loop"), "VPCLAB_LOOP",
                   f"more than {MAX_ENGINE_PASSES} passes through the Hyperplane")


def _address(world: World, src: Place, destination: str, t: Trace) -> str:
    if "/" in destination:
        return world.instance(destination).ip
    try:
        return str(ipaddress.IPv4Address(destination))
    except ValueError:
        pass
    found = world.resolve(src.vpc, destination)
    if not found:
        raise TraceError(f"VPC {src.vpc}'s resolver has no address for {destination!r}")
    chosen = max(found, key=lambda ip: (_common_prefix(ip, src.ip), -found.index(ip)))
    t.hops.append(Hop("dns", f"resolve {destination} (VPC {src.vpc}'s resolver "
                             f"{world.plans[src.vpc].dns})",
                      [f"answers {', '.join(found)}",
                       f"the client tries {chosen} first (longest prefix shared with "
                       f"{src.ip}, RFC 6724)"],
                      verdict="info", facts={"name": destination, "answers": found,
                                             "chosen": chosen}))
    return chosen


def _eni_name(eni) -> str:
    return {"vpce": "endpoint ENI of", "nlb": "NLB node of",
            "vpclink": "VPC link ENI of"}.get(eni.kind, f"{eni.kind} ENI of") + f" {eni.owner}"


def _route_line(world: World, vpc: str, src_ip: str, place: Place) -> str:
    subnets = world.lab.vpcs[vpc].subnets
    def subnet_of(ip: str) -> str | None:
        return next((s.name for s in subnets.values()
                     if ipaddress.IPv4Address(ip) in s.network), None)
    same = subnet_of(src_ip) == subnet_of(place.ip)
    what = (f"instance {vpc}/{place.instance.name}, via {place.instance.eni}"
            if place.instance is not None else
            f"{_eni_name(place.port.eni)}, via {place.port.eni.ifname}")
    how = "same subnet, the router answers ARP for it: proxy ARP" if same else \
        "another subnet, by the local route"
    return f"{place.ip}/32 → {what} ({how})"


def _engine_hop(r: Mapping[str, Any]) -> Hop:
    lines = []
    if r["flow"] == "hit":
        lines.append(f"flow {r['flow_id']} (direction {r['flow_dir']}, {r['tcp_state']}): "
                     "pinned backend and SNAT port")
    else:
        if r["flow"] in ("expired", "reopen"):
            lines.append(f"flow {r['flow_id']} {r['flow']}: the packet opens a new one")
        lines.append("no flow: a new one" if r["service"] is not None else "no flow")
        if r["service"] is not None:
            lines.append(f"service {r.get('service_name') or r['service']} ({r['kind']})")
    for direction, port_key in (("ingress", "in_port_name"), ("egress", "sg_egress_port_name")):
        v = r[f"sg_{direction}"]
        if v == "unchecked":
            continue
        where = r.get(port_key) or ""
        if v == "open":
            lines.append(f"{direction} security group on {where}: none (all pass)")
        elif v == "refused":
            lines.append(f"{direction} security group on {where}: no rule matches → drop")
        else:
            rule = r.get(f"sg_{direction}_rule")
            text = ""
            if rule:
                lo, hi = rule.get("port_lo", 0), rule.get("port_hi", 65535)
                text = (f" {rule['protocol']}" + ("" if (lo, hi) == (0, 65535) else
                                                  f" {lo}" if lo == hi else f" {lo}-{hi}")
                        + f" {'from' if direction == 'ingress' else 'to'} {rule.get('cidr')}")
            lines.append(f"{direction} security group on {where}: rule #{v}{text} → allow")
    how = r["backend_how"]
    if r.get("out_dst"):
        dst = f"{r['out_dst'][0]}:{r['out_dst'][1]}"
        lines.append({
            "maglev": f"backend {dst}: Maglev entry {r['backend_index']} of the 5-tuple's hash"
                      + (" and the SYN's sequence number (1 here: a real SYN's own may pick "
                         "another target)" if r.get("hash_tcp_seq") else ""),
            "link_route": f"destination {dst} kept; ENI by route {r['backend_index']}"
                          + (f" ({r['link_route']['cidr']} → {r['link_route']['eni']})"
                             if r.get("link_route") else ""),
            "link_hash": f"destination {dst} kept; no route covers it: ENI "
                         f"{r['backend_index']} by the 5-tuple's hash",
            "flow": f"backend {dst}: the flow's"}.get(how, f"backend {dst}"))
    if r["verdict"] == "forward":
        snat = {"free": "a free port", "expire_idle": "the port of an idle flow it would expire",
                "evict_half_open": "the port of the oldest half-open flow it would evict",
                "flow": "the flow's"}.get(r["snat_how"], r["snat_how"])
        lines.append(f"SNAT {r['out_src'][0]}:{r['out_src'][1]} ({snat}"
                     + (f", {r['snat_attempts']} candidate(s) looked at" if r["snat_attempts"] else "")
                     + ")")
        if r["flow_table_full"]:
            lines.append("flow table full: the oldest half-open flow would be evicted")
        mtu = f"MTU {r['mtu']}" if r["mtu"] else "no MTU limit"
        mss = (f", MSS 1460 → {r['mss_out']}" + (f" (clamp {r['mss_clamp']})" if r["mss_clamp"] else "")
               if r["mss_out"] else "")
        lines.append(f"{mtu} (packet {r['packet_size']} bytes){mss}"
                     + (f", PROXY v2 header {r['proxy_len']} bytes before the first data"
                        if r["proxy_len"] else ""))
        lines.append(f"forward out of {r.get('out_port_name') or r['out_port']}")
    else:
        lines.append(f"drop: {r['drop_reason']}" + (" (a RST goes back)" if r["rst"] else ""))
    return Hop("engine", f"Hyperplane engine (dry run on port {r.get('in_port_name', '')})",
               lines, verdict="pass" if r["verdict"] == "forward" else "drop",
               facts={"engine": dict(r)})


def live_engine(socket_path: str) -> Engine:
    """The engine of a running lab: its forwarder's `trace` command."""
    from dataplane.forwarder import control

    def ask(port: int, proto: str, src: str, sport: int, dst: str, dport: int) -> dict:
        return control.call(socket_path, "trace", port=port, proto=proto, src=src, sport=sport,
                            dst=dst, dport=dport, flags="S")["trace"]
    return ask
