"""The ALB kind's part of `up` and `status`: each node's process, its certificate, and
what `vpclab status` shows of it (compile/alb.py says what each is).

A node's namespace and ENI are made by lab/realise_vpc.py, as an instance's (the model
adds the nodes as managed instances); its DNS name is in the VPC's hosts file
(`dns_records`). What is left is started here, after every VPC and the forwarder
(`final_steps`): per node, its configuration file, then `python -m dataplane.services.alb`
in the node's namespace, in the lab's cgroup, supervised (role `alb`); `up` waits until
each answers on its control socket.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from netns_setup import procs

from dataplane.compile import alb as compiled
from dataplane.forwarder import control as control_client
from dataplane.model import Lab, names
from dataplane.model.alb import node_name

from . import ca, processes
from .progress import Step
from .state import State

ROLE = "alb"
NODE_READY_S = 15.0





def record(lab: Lab, run_dir: str) -> dict[str, Any]:
    """The state file's `albs` record: per ALB, its DNS name and its nodes' files."""
    if not compiled.albs(lab):
        return {}
    out = {}
    for vname, alb in compiled.albs(lab):
        addresses = compiled.node_addresses(lab, vname, alb)
        out[f"{vname}/{alb.name}"] = {
            "vpc": vname, "name": alb.name, "dns_name": compiled.dns_name(lab, vname, alb.name),
            "listeners": [f"{l.protocol} {l.port}" for l in alb.listeners],
            "nodes": [{"subnet": s, "az": lab.vpcs[vname].subnets[s].az, "address": ip,
                       "instance": node_name(alb.name, s),
                       "netns": compiled.netns(lab, vname, alb.name, s),
                       **compiled.node_files(run_dir, vname, alb.name, s)}
                      for s, ip in zip(alb.subnets, addresses)]}
    return {"albs": out}


def final_steps(lab: Lab, st: State) -> list[Step]:
    out = []
    for vname, alb in compiled.albs(lab):
        rec = st.data["albs"][f"{vname}/{alb.name}"]
        if any(l.protocol == "HTTPS" for l in alb.listeners):
            out.append(Step(f"certificate of ALB {vname}/{alb.name} ({rec['dns_name']}), "
                            f"signed by the lab's CA",
                            lambda vname=vname, alb=alb, rec=rec: ca.make(
                                st.dir, lab.name, compiled.cert_stem(vname, alb.name),
                                [rec["dns_name"]])))
        for node in rec["nodes"]:
            out.append(Step(f"ALB {vname}/{alb.name} node in {node['subnet']}: "
                            f"{node['address']} ({', '.join(rec['listeners'])}) in "
                            f"{node['netns']}",
                            lambda vname=vname, alb=alb, node=node: _node(lab, st, vname, alb,
                                                                          node)))
    return out


def _node(lab: Lab, st: State, vname: str, alb: Any, node: dict[str, Any]) -> None:
    config = compiled.node_config(lab, vname, alb, node["subnet"], st.dir)
    os.makedirs(os.path.dirname(node["config"]), mode=0o755, exist_ok=True)
    with open(node["config"], "w") as f:
        json.dump(config, f, indent=1)
    _start_node(st, vname, alb, node)


def restart_changed_nodes(lab: Lab, st: State) -> list[str]:
    """A running lab's ALBs brought to `lab` (lab/reconcile.py; the nodes themselves,
    their subnets and addresses, are unchanged): the `albs` record rewritten, the
    certificate made if an HTTPS listener is new, and each node whose configuration file
    changed (rules, listeners, target groups, health checks) restarted with the new one
    (its certificate made again first, when it has an HTTPS listener):
    its process ended (its open connections with it), then started and waited for as
    `up` does. Nodes whose configuration is the same keep running. Returns the nodes
    restarted, as `<vpc>/<alb>/<subnet>`."""
    st.data.update(record(lab, names.lab_dir(lab.name)))
    st.save()
    restarted = []
    for vname, alb in compiled.albs(lab):
        rec = st.data["albs"][f"{vname}/{alb.name}"]
        certified = False
        for node in rec["nodes"]:
            config = compiled.node_config(lab, vname, alb, node["subnet"], st.dir)
            try:
                with open(node["config"]) as f:
                    if json.load(f) == json.loads(json.dumps(config)):
                        continue
            except (OSError, ValueError):
                pass
            running = [p for p in st.data["processes"]
                       if (p["role"], p["vpc"], p["instance"]) == (ROLE, vname, node["instance"])]
            for p in running:
                procs.stop(p["pid"], p["start"])
            st.data["processes"] = [p for p in st.data["processes"] if p not in running]
            st.save()
            if not certified and any(l.protocol == "HTTPS" for l in alb.listeners):
                ca.make(st.dir, lab.name, compiled.cert_stem(vname, alb.name), [rec["dns_name"]])
                certified = True
            _node(lab, st, vname, alb, node)
            restarted.append(f"{vname}/{alb.name}/{node['subnet']}")
    return restarted


def _start_node(st: State, vname: str, alb: Any, node: dict[str, Any]) -> None:
    argv = [sys.executable, "-m", "dataplane.services.alb", "--config", node["config"]]
    pid = processes.start(st, ROLE, vname, node["instance"], node["netns"], argv,
                          node["output"], st.data["vpcs"][vname]["resolv_conf"])
    processes.wait_ready(pid, processes.answers(node["socket"]),
                         f"ALB {vname}/{alb.name} node in {node['subnet']}", node["output"],
                         NODE_READY_S)



def _ask(socket: str, cmd: str) -> dict[str, Any] | None:
    try:
        reply = control_client.call(socket, cmd, timeout=2)
    except (control_client.ControlError, OSError):
        return None
    reply.pop("ok", None)
    return reply


def lab_status(lab: Lab, data: dict[str, Any]) -> dict[str, Any]:
    """Each ALB: DNS name, listeners, nodes (running, address) and, per node, the health
    of every target as that node sees it (each node checks each target, as AWS)."""
    recs = data.get("albs")
    if not recs:
        return {}
    procs_by_node = {(p["vpc"], p["instance"]): p for p in data.get("processes", [])
                     if p["role"] == ROLE}
    out = {}
    for key, rec in recs.items():
        nodes = []
        for node in rec["nodes"]:
            p = procs_by_node.get((rec["vpc"], node["instance"]))
            running = bool(p) and procs.alive(p["pid"], p["start"])
            health = _ask(node["socket"], "health") if running else None
            nodes.append({**{k: node[k] for k in ("subnet", "az", "address", "netns",
                                                  "access_log")},
                          "pid": p["pid"] if p else None, "running": running,
                          "target_groups": (health or {}).get("target_groups")})
        out[key] = {"dns_name": rec["dns_name"], "listeners": rec["listeners"], "nodes": nodes}
    return {"albs": out}
