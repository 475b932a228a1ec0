"""The plan of a lab: names and addresses of everything `up` makes, computed from the
model alone (nothing here touches the kernel)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from dataplane.model import Lab, names, reads_whole_lab

ENI_MTU = 9001


@dataclass
class InstancePlan:
    vpc: str
    name: str
    netns: str
    subnet: str
    ip: str
    prefixlen: int
    router: str
    eni: str
    eni_mark: str
    eth_mark: str
    security_groups: list[str]
    run: str | None
    source_dest_check: bool = True
    managed_by: str | None = None       # an ALB's node (model/alb.py), not the user's


@dataclass
class VpcPlan:
    name: str
    netns: str
    cidr: str
    dns: str
    instances: list[InstancePlan] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    enis: list[dict[str, Any]] = field(default_factory=list)


@reads_whole_lab
def plan(lab: Lab) -> list[VpcPlan]:
    addresses = lab.addresses()
    out = []
    for vpc in lab.vpcs.values():
        vp = VpcPlan(vpc.name, names.vpc_netns(lab.name, vpc.name), vpc.cidr,
                     str(vpc.dns_address))
        groups = vpc.effective_security_groups()
        vp.groups = lab.sg_members(vpc)     # instances' and Hyperplane ENIs' addresses
        for inst in vpc.instances.values():
            sn = vpc.subnets[inst.subnet]
            ip = addresses[(vpc.name, inst.name)]
            vp.instances.append(InstancePlan(
                vpc.name, inst.name, names.instance_netns(lab.name, vpc.name, inst.name),
                sn.name, ip, sn.network.prefixlen, str(sn.router),
                inst.eni_ifname(lab.name, vpc.name),
                names.eni_altname(lab.name, vpc.name, inst.name),
                names.eth_altname(lab.name, vpc.name, inst.name),
                inst.effective_security_groups, inst.run, inst.source_dest_check,
                inst.managed_by))

            def plain(rules):
                return [{"protocol": r.protocol, "ports": r.port_range, "peer": r.peer}
                        for r in rules]
            sgs = [groups[g] for g in inst.effective_security_groups]
            vp.enis.append({"ifname": inst.eni_ifname(lab.name, vpc.name), "address": ip,
                            "source_dest_check": inst.source_dest_check,
                            "ingress": plain(r for g in sgs for r in g.ingress),
                            "egress": plain(r for g in sgs for r in g.effective_egress)})
        out.append(vp)
    return out


def digest(lab: Lab) -> str:
    return hashlib.sha256(json.dumps(lab.to_dict(), sort_keys=True).encode()).hexdigest()
