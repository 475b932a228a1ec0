"""The steps that make a lab's Hyperplane, for every kind that asks for ENIs:

| what | where |
|---|---|
| the forwarder's namespace, no addresses, no routes, no IPv6; a netdev ingress table dropping port frames once the forwarder has them | `<lab>.hyperplane`, table `netdev <lab>-ports` |
| each Hyperplane ENI (NLB node, endpoint, VPC link): a veth | `eni-<11 hex>` in the VPC namespace ⇄ `hp<port>` in `<lab>.hyperplane` |
| the VPC router's side of it | the subnet's `.1/32` on `eni-…`, a /32 route to the ENI's address; gso_max_size cut to a ring slot (it transmits into the forwarder, GSO frames included) |
| each kind's own steps (PrivateLink: the health checker's namespace) | lab/realise_<kind>.py |
| the forwarder process | `python -m dataplane.forwarder.daemon` in `<lab>.hyperplane`, spec `/run/vpclab/<lab>/forwarder.json`, control socket `/run/vpclab/<lab>/forwarder.sock`, flow table kept in `/run/vpclab/<lab>/flows` (a restarted forwarder resumes its flows) |

The lab talks to the forwarder only through the spec (compile/hyperplane.py) and its
control socket (forwarder/control.py); nothing here loads the compiled engine.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from netns_setup import kernel, nft, nsenter, offload

from dataplane import kinds
from dataplane.compile.hyperplane import Port, Ports, compile_spec
from dataplane.forwarder.frames import MAX_FRAME
from dataplane.model import Lab, names

from . import processes
from .plan import ENI_MTU
from .progress import Step
from .state import State

FORWARDER_READY_S = 15.0


@dataclass
class Build:
    """What the Hyperplane steps share while `up` runs: MACs of the forwarder's ports
    ({port: (forwarder end, VPC end)}), their interfaces, extra forwarder arguments."""
    lab: Lab
    st: State
    ports: Ports
    hp_ns: str
    macs: dict[int, tuple[str, str]] = field(default_factory=dict)
    port_ifnames: list[str] = field(default_factory=list)
    forwarder_args: list[str] = field(default_factory=list)


def eni_record(p: Port) -> dict[str, Any]:
    """A Hyperplane ENI's entry in the state file."""
    e = p.eni
    return {"port": p.id, "hp_ifname": p.hp_ifname, "vpc": e.vpc, "kind": e.kind,
            "owner": e.owner, "subnet": e.subnet, "az": e.az, "ip": e.ip, "eni_id": e.eni_id,
            "ifname": e.ifname}


def eni_kind_name(kind: str) -> str:
    """What owns a Hyperplane ENI of `kind`, in progress lines."""
    return {"nlb": "NLB", "vpce": "endpoint", "vpclink": "VPC link"}.get(kind, kind)


def steps(lab: Lab, ports: Ports, st: State) -> list[Step]:
    b = Build(lab, st, ports, names.hyperplane_netns(lab.name))
    out = [Step(f"namespace {b.hp_ns} (the forwarder's: no addresses, no routes)",
                lambda: _namespace(b))]
    for p in ports:
        e = p.eni
        out.append(Step(f"{eni_kind_name(e.kind)} {e.vpc}/{e.owner} ENI {e.eni_id} {e.ip} in {e.subnet}: "
                        f"{e.ifname} ⇄ {p.hp_ifname}", lambda p=p: _eni(b, p)))
    for kind in kinds.realisers():
        if hasattr(kind, "steps"):
            out += kind.steps(b)
    hp = st.data["hyperplane"]
    out.append(Step(f"forwarder in {b.hp_ns}: {len(ports)} ENIs, control socket {hp['socket']}",
                    lambda: _forwarder(b)))
    return out


NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1}


def ensure_namespace_without_ipv6(lab: Lab, ns: str) -> None:
    """A namespace of the lab (marked as its own) whose kernel never sends anything on
    its own, IPv6 included: the Hyperplane's, the health checker's, API Gateway's."""
    kernel.ensure_netns(ns, names.lo_altname(lab.name))
    nsenter.write_sysctls(ns, NO_IPV6)


def _namespace(b: Build) -> None:
    ensure_namespace_without_ipv6(b.lab, b.hp_ns)


def _eni(b: Build, p: Port) -> None:
    b.macs[p.id] = make_eni(b.lab, b.hp_ns, p)
    b.port_ifnames.append(p.hp_ifname)


def make_eni(lab: Lab, hp_ns: str, p: Port) -> tuple[str, str]:
    """Hyperplane ENI `p`'s veth and the VPC router's side of it (module docstring);
    returns its MACs (forwarder end, VPC end). `up` and a reconcile that adds it."""
    e = p.eni
    vpc_ns = names.vpc_netns(lab.name, e.vpc)
    kernel.ensure_veth(vpc_ns, e.ifname, f"{names.MARK}.{lab.name}.{e.vpc}.{e.eni_id}",
                       hp_ns, p.hp_ifname,
                       f"{names.MARK}.{lab.name}.{names.HYPERPLANE}.{p.hp_ifname}", ENI_MTU)
    subnet = lab.vpcs[e.vpc].subnets[e.subnet]
    kernel.ensure_address(vpc_ns, e.ifname, str(subnet.router), 32)
    kernel.ensure_route(vpc_ns, f"{e.ip}/32", ifname=e.ifname)
    nsenter.write_sysctls(vpc_ns, {f"net.ipv4.conf.{e.ifname}.send_redirects": 0})
    offload.cap_gso_size(e.ifname, vpc_ns, MAX_FRAME)
    return kernel.link_mac(hp_ns, p.hp_ifname), kernel.link_mac(vpc_ns, e.ifname)


def remove_eni(lab_name: str, eni: dict[str, Any]) -> None:
    """Deletes a Hyperplane ENI's veth (its state record `eni`), both ends, with the
    router's address and route on it; nothing if it is gone already. Its forwarder port
    must be closed first (forwarder/daemon.py closes it when a spec drops it)."""
    vpc_ns = names.vpc_netns(lab_name, eni["vpc"])
    if kernel.netns_exists(vpc_ns) and kernel.link_exists(vpc_ns, eni["ifname"]):
        kernel.delete_link(vpc_ns, kernel.link_index(vpc_ns, eni["ifname"]))


def capture_ports(lab: Lab, hp_ns: str, ifnames: list[str]) -> None:
    """The forwarder's sockets take every frame of its ports; the namespace's own IP stack
    (no addresses, no routes) must not spend time on them too: one netdev table over
    `ifnames`, replaced whole."""
    nft.apply(hp_ns, nft.render_ports_capture_only(names.nft_ports_table(lab.name), ifnames))


def _forwarder(b: Build) -> None:
    st = b.st
    capture_ports(b.lab, b.hp_ns, b.port_ifnames)
    hp = st.data["hyperplane"]
    spec = compile_spec(b.lab, b.ports, b.macs, hp.get("endpoints", {}))
    with open(hp["spec"], "w") as f:
        json.dump(spec.to_json(), f, indent=1)
    hp["macs"] = {str(k): v for k, v in b.macs.items()}
    argv = [sys.executable, "-m", "dataplane.forwarder.daemon", "--spec", hp["spec"],
            "--socket", hp["socket"], "--flow-state", os.path.join(st.dir, "flows"),
            *b.forwarder_args]
    pid = processes.start(st, "forwarder", names.HYPERPLANE, None, b.hp_ns, argv, hp["log"], None)
    processes.wait_ready(pid, processes.answers(hp["socket"]), "the forwarder", hp["log"],
                         FORWARDER_READY_S)
