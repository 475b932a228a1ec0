"""A lab's Hyperplane compiled: its forwarder ports, the spec every kind adds to, the
DNS records every kind asks for, and where the forwarder's files go.

Every Hyperplane ENI (model/enis.py: NLB nodes, endpoints, VPC links, in that order) is
one forwarder port `hp<n>`; so are the NLB health checker's port and each VPC link's
attachment. A port's id n is given once and kept (`allocate_port_ids`): a lab's first
`up` numbers its ports in that order (ENIs 0…, the health port, the attachments), the
state file records the ids (`hyperplane.port_ids`), and a change of the running lab
gives a new port the lowest id nobody held before the change, so that adding or removing
an ENI never renumbers another (the forwarder's flows, its sockets and the veths' names
`hp<n>` all carry the id). `compile_spec` builds the ports, then lets
each registered kind's compiler (dataplane/kinds.py) add its ports, security groups,
services and health checks to a `SpecDraft` through `contribute(ctx, draft)`. The result
is the spec the forwarder applies, a `ForwarderSpec` (compile/spec.py, the one contract
between the lab and the forwarder): the lab writes its `to_json()` to the lab's state
directory and sends it over the control socket, never a live object.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Mapping

from dataplane import kinds
from dataplane.model import names
from dataplane.model.constants import MAX_FORWARDER_PORTS
from dataplane.model.enis import HyperplaneEni
from dataplane.model.topology import Lab, Vpc, reads_whole_lab

from .spec import ForwarderPort, ForwarderSpec, SecurityGroups, Service, SgRule, TargetCheck

FLOW_CAPACITY = 65536


@dataclass
class Port:
    id: int
    eni: HyperplaneEni
    hp_ifname: str            # hp<port> in the Hyperplane namespace


HEALTH_PORT = "health"              # the key of the NLB health checker's port


def attachment_key(link: str) -> str:
    """The key of VPC link `link`'s attachment port."""
    return f"attachment/{link}"


def port_keys(lab: Lab) -> list[str]:
    """Every forwarder port's key, in the order a new lab numbers them: the ENIs' IDs,
    the health port (reserved whether or not the lab has NLBs), the links' attachments."""
    return ([e.eni_id for e in lab.hyperplane_enis()] + [HEALTH_PORT]
            + [attachment_key(n) for n in lab.vpc_links])


def allocate_port_ids(keys: list[str], previous: Mapping[str, int] | None = None) -> dict[str, int]:
    """{key: port id}: a key `previous` numbered keeps its id; each other key, in order,
    takes the lowest id that no key of `previous` holds (a removed port's id is free
    from the next change on, never within the change that removes it, whose veth
    `hp<n>` may still exist while the new one is made)."""
    previous = previous or {}
    out: dict[str, int] = {}
    for k in keys:
        i = previous.get(k)
        if isinstance(i, int) and 0 <= i < MAX_FORWARDER_PORTS and i not in out.values():
            out[k] = i
    held = set(previous.values()) | set(out.values())
    free = (i for i in range(MAX_FORWARDER_PORTS) if i not in held)
    for k in keys:
        if k not in out:
            i = next(free, None)
            if i is None:
                raise ValueError(f"no forwarder port id left for {k}: the forwarder has "
                                 f"{MAX_FORWARDER_PORTS} ports")
            out[k] = i
    return out


class Ports(list):
    """The Hyperplane ENIs' ports (`Port`s, in the model's ENI order) and `ids`, every
    forwarder port's id by key (`port_keys`), the health port's and attachments' too."""

    def __init__(self, items: list[Port], ids: dict[str, int]) -> None:
        super().__init__(items)
        self.ids = ids


def ports(lab: Lab, previous: Mapping[str, int] | None = None) -> Ports:
    """Every Hyperplane ENI with its forwarder port: the ids `previous` (a running
    lab's `hyperplane.port_ids`) gave, new ones allocated (`allocate_port_ids`)."""
    ids = allocate_port_ids(port_keys(lab), previous)
    return Ports([Port(ids[e.eni_id], e, f"hp{ids[e.eni_id]}") for e in lab.hyperplane_enis()],
                 ids)


def has_hyperplane(lab: Lab) -> bool:
    """A lab has a Hyperplane (namespace, forwarder) when any kind asks for an ENI."""
    return bool(lab.hyperplane_enis())


@dataclass
class SpecContext:
    """What every kind's compiler gets: the lab, its ports (also by (vpc, ENI kind,
    owner)), the MACs read from the kernel ({port: (forwarder end, VPC end)}), the
    runtime states kept in the lab's state file (endpoint acceptance), addresses."""
    lab: Lab
    ports: Ports
    macs: dict[int, tuple[str, str]]
    states: dict[str, dict]
    addresses: dict[tuple[str, str], str] = field(default_factory=dict)
    by_owner: dict[tuple[str, str, str], list[Port]] = field(default_factory=dict)


@dataclass
class SpecDraft:
    """The spec while the kinds' compilers add to it; `build()` freezes it."""
    ports: list[ForwarderPort] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    health_checks: list[TargetCheck] = field(default_factory=list)

    def filter_port(self, port_id: int, groups: SecurityGroups) -> None:
        """Sets the security groups of the port `port_id` (an ENI's)."""
        at = next(i for i, p in enumerate(self.ports) if p.id == port_id)
        self.ports[at] = replace(self.ports[at], security_groups=groups)

    def build(self) -> ForwarderSpec:
        return ForwarderSpec(flow_capacity=FLOW_CAPACITY, ports=tuple(self.ports),
                             services=tuple(self.services),
                             health_checks=tuple(self.health_checks))


def sg_rules(vpc: Vpc, groups: list[str], members: dict[str, list[str]],
             direction: str) -> tuple[SgRule, ...]:
    """The `direction` ("ingress" or "egress") rules of `groups` as the forwarder's port
    rules: CIDRs as written, `sg:<group>` as its members' /32s (`Lab.sg_members`)."""
    rules = []
    effective = vpc.effective_security_groups()
    for g in groups:
        group = effective[g]
        for r in group.ingress if direction == "ingress" else group.effective_egress:
            lo, hi = r.port_range or (0, 65535)
            peers = ([f"{ip}/32" for ip in members.get(r.peer_group, [])]
                     if r.peer_group else [r.peer])
            rules += [SgRule(r.protocol, p, lo, hi) for p in peers]
    return tuple(rules)


@reads_whole_lab
def compile_spec(lab: Lab, plist: Ports, macs: dict[int, tuple[str, str]],
                 states: dict[str, dict]) -> ForwarderSpec:
    """The forwarder spec of a lab. `macs`: {port: (hp end MAC, VPC end MAC)}, read from
    the kernel once the veths exist (extra ports' too, e.g. the health port)."""
    ctx = SpecContext(lab, plist, macs, states, lab.addresses())
    for p in plist:
        ctx.by_owner.setdefault((p.eni.vpc, p.eni.kind, p.eni.owner), []).append(p)
    draft = SpecDraft([ForwarderPort(id=p.id, name=p.eni.eni_id, ifname=p.hp_ifname,
                                     mac=macs[p.id][0], peer_mac=macs[p.id][1],
                                     addrs=(p.eni.ip,)) for p in plist])
    for kind in kinds.compilers():
        kind.contribute(ctx, draft)
    return draft.build()


def dns_records(lab: Lab) -> dict[str, list[tuple[str, str]]]:
    """{vpc: [(name, ip)]}: what each VPC's resolver answers besides its instances'
    names, from every kind that has names (endpoints' regional, zonal, private names)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for kind in kinds.compilers():
        for vpc, records in kind.dns_records(lab).items():
            out.setdefault(vpc, []).extend(records)
    return out


def resolver_args(lab: Lab) -> dict[str, list[str]]:
    """{vpc: extra dnsmasq arguments} for each VPC's resolver, from every kind that has
    an optional `resolver_args(lab)` (Cloud Map forwards its private DNS namespaces)."""
    out: dict[str, list[str]] = {}
    for kind in kinds.compilers():
        for vpc, args in getattr(kind, "resolver_args", lambda _: {})(lab).items():
            out.setdefault(vpc, []).extend(args)
    return out


def paths(lab_name: str) -> dict[str, str]:
    d = names.lab_dir(lab_name)
    return {"spec": os.path.join(d, "forwarder.json"), "socket": os.path.join(d, "forwarder.sock"),
            "log": os.path.join(d, "forwarder.log")}
