"""What a lab's state file says and what the kernel shows: `vpclab status`, and the
check `up` makes before calling a lab already up."""
from __future__ import annotations

import os
from typing import Any

from netns_setup import cgroup, kernel

from dataplane import kinds
from dataplane.forwarder import control
from dataplane.model import Lab, names

from . import processes, realise_vpc
from .actions import hyperplane_of
from .state import LabError, State


def check_present(st: State) -> list[str]:
    """What the state says exists but the kernel doesn't show (empty if all is well)."""
    missing = [f"namespace {n}" for n in st.data.get("namespaces", [])
               if not kernel.netns_exists(n)]
    for p in st.data.get("processes", []):
        state, code = processes.process_state(p)
        if state == "running":
            continue
        missing.append(f"{p['role']} process {p['pid']} ({p['vpc']}"
                       f"{'/' + p['instance'] if p.get('instance') else ''}) "
                       + (f"exited with code {code}" if state == "exited" else "stopped")
                       + (" (the supervisor gave up restarting it)" if p.get("gave_up") else ""))
    return missing


def status(lab: str) -> dict[str, Any]:
    st = State.load(lab)
    if st is None:
        raise LabError(f"no lab {lab} (no state in {names.lab_dir(lab)})")
    d = st.data
    out: dict[str, Any] = {"lab": lab, "status": d.get("status"), "region": d.get("region"),
                           "state_dir": st.dir, "vpcs": {}, "processes": []}
    if d.get("status") == "reconciling" and st.owner_alive():
        out["status"] = f"reconciling (vpclab pid {d.get('owner_pid')} is changing it)"
    elif d.get("status") == "reconciling":
        out["status"] = ("reconciling (interrupted: `vpclab up FILE` finishes the change, "
                         "`vpclab down` removes the lab)")
    elif d.get("status") != "up" and not st.owner_alive():
        out["status"] = f"{d.get('status')} (unfinished: run vpclab cleanup)"
    checked = realise_vpc.source_dest_drops(st)
    for vname, v in d.get("vpcs", {}).items():
        out["vpcs"][vname] = {
            "netns": v["netns"], "present": kernel.netns_exists(v["netns"]),
            "cidr": v["cidr"], "dns": v["dns"],
            "instances": {n: {**{k: i[k] for k in ("netns", "ip", "prefixlen", "subnet",
                                                   "eni", "security_groups", "log")},
                              "present": kernel.netns_exists(i["netns"]),
                              "source_dest_check": i.get("source_dest_check", True),
                              # packets the check dropped: {"source": n, "destination": n}
                              "source_dest_dropped": checked.get(vname, {}).get(n)}
                          for n, i in v["instances"].items()}}
    for p in d.get("processes", []):
        state, code = processes.process_state(p)
        out["processes"].append({**{k: p[k] for k in ("pid", "role", "vpc", "instance",
                                                      "log", "argv")},
                                 "running": state == "running",
                                 # running, exited (with exit_code: run: commands) or stopped
                                 "state": state, "exit_code": code,
                                 "restarts": p.get("restarts", 0),
                                 "gave_up": p.get("gave_up", False)})
    out["tracking"] = _tracking_status(st)
    if d.get("hyperplane"):
        out["hyperplane"] = _hyperplane_status(d)
    lab_model = None
    for kind in kinds.realisers():
        if hasattr(kind, "lab_status"):
            lab_model = lab_model or Lab.from_dict(d["topology"])
            out.update(kind.lab_status(lab_model, d))
    if d.get("status") == "up":
        out["degraded"] = check_present(st)
        if out["degraded"]:
            out["status"] = "degraded"
    return out


def flows(st: State, health: bool = False) -> list[dict[str, Any]]:
    """The forwarder's flows (`vpclab flows`; the NLBs' own health checks' only with
    `health`); a VPC link's flows carry the link's name as `vpc_link` beside the
    forwarder's `service_name` (its vpclink- ID)."""
    hp = hyperplane_of(st)
    try:
        reply = control.call(hp["socket"], "flows")
    except control.ControlError as e:
        raise LabError(str(e)) from None
    found = [f for f in reply["flows"] if health or f["in_port_name"] != "health"]
    # The forwarder knows a VPC link by its ID; the lab knows its name too.
    links = {l["id"]: name for name, l in
             hp.get("api_gateway", {}).get("vpc_links", {}).items()}
    for f in found:
        if f["service_name"] in links:
            f["vpc_link"] = links[f["service_name"]]
    return found


def stats(st: State) -> dict[str, Any]:
    """The forwarder's counters (`vpclab stats`): per port, drop reasons, rings."""
    try:
        return control.call(hyperplane_of(st)["socket"], "stats")
    except control.ControlError as e:
        raise LabError(str(e)) from None


def _tracking_status(st: State) -> dict[str, Any]:
    """Where the lab's processes are tracked and, with a cgroup, what they use: CPU
    time of every process that was ever in it, memory now (None without the v2 memory
    controller, e.g. where memory is a cgroup v1 controller)."""
    t = dict(st.data.get("tracking") or {"mode": processes.PROCESS_TREE,
                                         "reason": "the state predates cgroup tracking"})
    group = processes.cgroup_path(st)
    if group is not None:
        t["present"] = os.path.isdir(group)
        t["processes"] = len(cgroup.pids(group))
        t.update(cgroup.usage(group))
    return t


def _hyperplane_status(d: dict[str, Any]) -> dict[str, Any]:
    """The Hyperplane's namespace and socket, then each kind's part (for PrivateLink:
    endpoints with state, ENIs and DNS names; NLBs with nodes, targets and health)."""
    hp = d["hyperplane"]
    lab = Lab.from_dict(d["topology"])
    try:
        health = control.call(hp["socket"], "health", timeout=2)["health"]
    except (control.ControlError, OSError):
        health = None
    out = {"netns": hp["netns"], "present": kernel.netns_exists(hp["netns"]),
           "socket": hp["socket"]}
    for kind in kinds.realisers():
        if hasattr(kind, "status"):
            out.update(kind.status(lab, hp, health))
    return out


def interfaces_table(st: State) -> list[tuple[str, str, str, str]]:
    """(namespace, interface, address, what) rows of everything the lab made."""
    rows = []
    for vname, v in st.data["vpcs"].items():
        rows.append((v["netns"], "lo", f"{v['dns']}/32", f"VPC {vname} DNS (base+2)"))
        for n, i in v["instances"].items():
            rows.append((v["netns"], i["eni"], f"{i['router']}/32",
                         f"VPC router → {n} ({i['ip']})"))
        for n, i in v["instances"].items():
            node = f" (node of {i['managed_by']})" if i.get("managed_by") else ""
            rows.append((i["netns"], names.INSTANCE_IFNAME, f"{i['ip']}/{i['prefixlen']}",
                         f"{vname}/{n}{node} in {i['subnet']}, sg: "
                         f"{', '.join(i['security_groups'])}"))
    hp = st.data.get("hyperplane") or {}
    for e in hp.get("enis", []):
        rows.append((names.vpc_netns(st.lab, e["vpc"]), e["ifname"], f"{e['ip']}",
                     f"{e['kind']} ENI {e['eni_id']} of {e['owner']} ⇄ {e['hp_ifname']} "
                     f"in {hp['netns']}"))
    for name, link in (hp.get("api_gateway") or {}).get("vpc_links", {}).items():
        rows.append((link["netns"], "vpclink0", "169.254.0.2/30",
                     f"VPC link {name}'s routing domain ⇄ the forwarder"))
    gw = st.data.get("api_gateway")
    if gw:
        rows.append((gw["netns"], "internet0", f"{gw['front_end']['address']}/24",
                     "API Gateway's front end (:80, :443)"))
        rows.append((gw["internet"]["netns"], names.INSTANCE_IFNAME, f"{gw['internet']['ip']}/24",
                     "the internet (API clients)"))
    return rows
