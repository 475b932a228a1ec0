"""What `up` makes, computed from the model before anything is made: the one place that
assembles the lab's plan (lab/plan.py), its Hyperplane ports (compile/hyperplane.py) and
every kind's records and steps (dataplane/kinds.py) into

* `namespaces(lab)`: every namespace the lab will have, in the order `up` makes them;
* `record(lab)`: the state file as `up` writes it before making anything (without what
  only a running `up` knows: its PID, the time, where its processes are tracked);
* `steps(lab, st)`: `up`'s ordered steps, each a progress line and what it does.

`up` (lab/up.py) checks the namespaces against the kernel, saves the record and runs the
steps; `vpclab validate --plan` (lab/preview.py) shows the same record and the steps'
lines without running any, so a plan names exactly what `up` makes. Nothing here
touches the kernel or a file.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

from dataplane import kinds
from dataplane.compile import hyperplane as compiled
from dataplane.model import Lab, names

from . import hyperplane, processes, realise_vpc
from .plan import digest, plan
from .progress import Item, Step
from .state import STATE_VERSION, State


def namespaces(lab: Lab) -> list[str]:
    """Every namespace of the lab: VPCs, instances (ALB nodes too), the Hyperplane's,
    then each kind's (the health checker's, API Gateway's, the links', the internet)."""
    plans = plan(lab)
    out = [p.netns for p in plans] + [i.netns for p in plans for i in p.instances]
    if compiled.has_hyperplane(lab):
        out.append(names.hyperplane_netns(lab.name))
    for kind in kinds.realisers():
        if hasattr(kind, "namespaces"):
            out += kind.namespaces(lab)
    return list(dict.fromkeys(out))     # API Gateway's VPC is also the links' home


def record(lab: Lab) -> dict[str, Any]:
    """The state file `up` writes before it makes anything, but for `owner_pid`,
    `owner_start`, `created_at` and `tracking`, which `up` adds."""
    data: dict[str, Any] = {
        "version": STATE_VERSION, "lab": lab.name, "region": lab.region,
        "status": "building", "digest": digest(lab), "topology": lab.to_dict(),
        "namespaces": namespaces(lab),
        "vpcs": {p.name: realise_vpc.record(p, lab) for p in plan(lab)},
        "processes": []}
    hp_ports = compiled.ports(lab)
    if hp_ports:
        hp: dict[str, Any] = {"netns": names.hyperplane_netns(lab.name),
                              **compiled.paths(lab.name)}
        for kind in kinds.realisers():
            if hasattr(kind, "state"):
                hp.update(kind.state(lab))
        hp["enis"] = [hyperplane.eni_record(p) for p in hp_ports]
        hp["port_ids"] = hp_ports.ids
        data["hyperplane"] = hp
    for kind in kinds.realisers():
        if hasattr(kind, "record"):
            data.update(kind.record(lab, names.lab_dir(lab.name)))
    return data


def steps(lab: Lab, st: State,
          note: Callable[[str], None] = lambda line: None) -> list[Item]:
    """`up`'s steps in order: the VPCs' (side by side, one lane each), the Hyperplane's,
    each kind's final ones, and the supervisor. Building them does nothing; running them
    makes the lab."""
    out: list[Item] = [realise_vpc.lanes(lab, plan(lab), st)]
    hp_ports = compiled.ports(lab)
    if hp_ports:
        out += hyperplane.steps(lab, hp_ports, st)
    for kind in kinds.realisers():
        if hasattr(kind, "final_steps"):
            out += kind.final_steps(lab, st)
    ready = ready_step(lab, st.data["vpcs"], st, note)
    if ready:
        out.append(ready)
    out.append(Step("supervisor: restarts the forwarder, resolvers and front end if they "
                    "die (python -m dataplane.lab.supervisor)", lambda: start_supervisor(st)))
    return out


def ready_step(lab: Lab, vpc_records: dict[str, Any], st: State,
               note: Callable[[str], None] = lambda line: None,
               only: set[tuple[str, str]] | None = None) -> Step | None:
    """The one bounded wait for the `ready:` checks of `run:` commands (lab/processes.py;
    of the instances `only` names, when given: those a reconcile started), or None when
    there are none; `note` gets its progress lines. `up` and a reconcile share it."""
    ready = processes.ready_checks(lab, vpc_records, only)
    if not ready:
        return None
    return Step("ready: " + ", ".join(f"{c.where} ({c.what})" for c in ready),
                lambda: processes.wait_until_ready(ready, st, note))


def supervisor_netns(data: dict[str, Any]) -> str:
    """Where the supervisor runs: the Hyperplane's namespace, or the first VPC's (it
    opens no socket but Unix ones)."""
    return (data.get("hyperplane") or {}).get("netns") or \
        next(iter(data["vpcs"].values()))["netns"]


def start_supervisor(st: State) -> int:
    """The lab's supervisor (lab/supervisor.py), in the lab's cgroup."""
    return processes.start(st, processes.SUPERVISOR, names.HYPERPLANE, None,
                           supervisor_netns(st.data),
                           [sys.executable, "-m", "dataplane.lab.supervisor", st.lab],
                           os.path.join(st.dir, "supervisor.log"), None)
