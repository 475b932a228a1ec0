"""`vpclab validate FILE --plan`: what `up` would make, without making anything.

Everything here is read off lab/blueprint.py's record and steps — the very objects `up`
saves and runs — and the forwarder spec compile/hyperplane.py builds from them, with
placeholder MACs (the kernel gives the real ones once the veths exist). So the plan and
`up` cannot disagree on a name or an address; `tests/integration/test_lab_name.py`
checks it against a lab `up` really made.

`preview(lab)` returns a plain, JSON-ready dict (`--plan --json` prints it):

| key | what |
|---|---|
| `lab`, `region`, `state_dir`, `cgroup` | the lab's name and where its files and processes go |
| `namespaces` | every namespace, in the order `up` makes them |
| `interfaces` | [{netns, ifname, address, what}]: the table `up` prints at the end |
| `enis` | [{vpc, kind, owner, subnet, az, ip, eni_id, ifname, ...}]: instance ENIs (`kind` "instance", no `eni_id`) and Hyperplane ENIs (`nlb`, `vpce`, `vpclink`, with `eni_id`) |
| `dns` | {vpc: [{name, address}]}: what each VPC's resolver answers |
| `services` | [{name, type, in, listener, backends, ...}]: the forwarder's services (PrivateLink: listener ip:port on an ENI → backends, SNAT address; VPC links: prefixes, ENIs) |
| `processes` | [{role, vpc, instance, netns, what}]: every process `up` starts |
| `steps` | `up`'s progress lines, in order |
"""
from __future__ import annotations

import collections
from typing import Any

from dataplane.compile import cloud_map as compiled_cloud_map
from dataplane.compile.hyperplane import compile_spec, ports
from dataplane.compile.spec import PrivateLinkService, VpcNatService
from dataplane.model import Lab, names, reads_whole_lab

from . import blueprint, processes, realise_vpc
from .plan import plan
from .progress import each_step
from .state import State
from .status import interfaces_table

PLACEHOLDER_MAC = "02:00:00:00:00:00"


@reads_whole_lab
def preview(lab: Lab) -> dict[str, Any]:
    """The plan of `lab` (module docstring); touches nothing."""
    data = blueprint.record(lab)
    st = State(data)
    return {"lab": lab.name, "region": lab.region, "state_dir": st.dir,
            "cgroup": names.cgroup_name(lab.name),
            "namespaces": list(data["namespaces"]),
            "interfaces": [dict(zip(("netns", "ifname", "address", "what"), row))
                           for row in interfaces_table(st)],
            "enis": _enis(data),
            "dns": _dns(lab),
            "services": _services(lab, data),
            "processes": _processes(lab, data),
            "steps": [s.what for s in each_step(blueprint.steps(lab, st))]}


def _enis(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for vname, v in data["vpcs"].items():
        for iname, i in v["instances"].items():
            out.append({"vpc": vname, "kind": "alb-node" if i.get("managed_by") else "instance",
                        "owner": i.get("managed_by") or iname, "subnet": i["subnet"],
                        "ip": i["ip"], "eni_id": None, "ifname": i["eni"],
                        "security_groups": i["security_groups"]})
    for e in (data.get("hyperplane") or {}).get("enis", []):
        out.append(dict(e))
    return out


def _dns(lab: Lab) -> dict[str, list[dict[str, str]]]:
    """Each VPC's resolver's names: its hosts file, as lab/realise_vpc.py writes it."""
    out = {}
    for p in plan(lab):
        out[p.name] = [{"name": name, "address": ip}
                       for line in realise_vpc.hosts(lab, p).splitlines()
                       for ip, *line_names in [line.split()] for name in line_names]
    return out


def _services(lab: Lab, data: dict[str, Any]) -> list[dict[str, Any]]:
    hp = data.get("hyperplane")
    if not hp:
        return []
    macs = collections.defaultdict(lambda: (PLACEHOLDER_MAC, PLACEHOLDER_MAC))
    spec = compile_spec(lab, ports(lab), macs, hp.get("endpoints", {}))
    port_names = {p.id: p.name or p.ifname for p in spec.ports}
    out = []
    for s in spec.services:
        if isinstance(s, PrivateLinkService):
            out.append({"name": s.name, "type": "privatelink",
                        "in": port_names.get(s.in_port, f"port {s.in_port}"),
                        "listener": f"{s.vip}:{s.vport}/{s.proto}",
                        "out": port_names.get(s.out_port, f"port {s.out_port}"),
                        "snat": s.snat_ip,
                        "backends": [f"{b.ip}:{b.port}" for b in s.backends],
                        "proxy_protocol_v2": s.proxy_protocol_v2,
                        "disabled": s.disabled})
        elif isinstance(s, VpcNatService):
            out.append({"name": s.name, "type": "vpc-nat",
                        "in": port_names.get(s.in_port, f"port {s.in_port}"),
                        "prefixes": list(s.prefixes),
                        "enis": [f"{e.ip} ({port_names.get(e.port, e.port)})" for e in s.enis],
                        "disabled": s.disabled})
    return out


def _processes(lab: Lab, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every process `up` starts, from the record (lab/realise_*.py start them)."""
    out = []

    def add(role, vpc, instance, netns, what):
        out.append({"role": role, "vpc": vpc, "instance": instance, "netns": netns,
                    "what": what})
    for vname, v in data["vpcs"].items():
        add("dns", vname, None, v["netns"], f"dnsmasq on {v['dns']}:53")
    for vname, v in data["vpcs"].items():
        for iname, i in v["instances"].items():
            if i.get("run"):
                add("run", vname, iname, i["netns"], i["run"])
    if data.get("hyperplane"):
        add("forwarder", names.HYPERPLANE, None, data["hyperplane"]["netns"],
            f"python -m dataplane.forwarder.daemon, socket {data['hyperplane']['socket']}")
    for key, alb in (data.get("albs") or {}).items():
        for node in alb["nodes"]:
            add("alb", alb["vpc"], node["instance"], node["netns"],
                f"ALB {key} node {node['address']} ({', '.join(alb['listeners'])})")
    gw = data.get("api_gateway")
    if gw:
        add("dns", names.INTERNET, None, gw["internet"]["netns"],
            f"dnsmasq on {gw['internet']['ip']}:53")
    if data.get("cloud_map"):
        home = compiled_cloud_map.service_config(lab, names.lab_dir(lab.name))["vpcs"][0]
        add("cloudmap", home["vpc"], None, home["netns"],
            "python -m dataplane.services.cloudmap (DiscoverInstances, private DNS)")
    if gw:
        add("apigw", names.APIGW, None, gw["netns"],
            f"API Gateway's front end on {gw['front_end']['address']}:80, :443")
    add(processes.SUPERVISOR, names.HYPERPLANE, None, blueprint.supervisor_netns(data),
        "python -m dataplane.lab.supervisor")
    return out
