"""Bringing a lab up: the plan checked against the kernel, the state file, then `up` as
an ordered list of steps, and a rollback of everything if one fails.

The steps (each a line of progress, lab/progress.py):

1. per VPC, in file order, lab/realise_vpc.py's: its namespace, instances, router,
   security groups, DNS, `run:` commands;
2. when any kind asks for Hyperplane ENIs (dataplane/kinds.py), lab/hyperplane.py's:
   the forwarder's namespace, each ENI, each kind's own steps
   (lab/realise_<kind>.py), and the forwarder;
3. each kind's `final_steps` (API Gateway's internet, CA and front end), which need
   every VPC and the forwarder first. A kind's `record(lab, dir)` is its own part of
   the state file (`api_gateway`), written before anything is made;
4. the `ready:` checks of `run:` commands (lab/processes.py), all in one bounded wait;
5. the supervisor.

The state file `/run/vpclab/<lab>/state.json` is written *before* anything is made
(the full list of planned namespaces, after checking that none exists yet) and updated
as each process starts, so `down`, `status` and `cleanup` need nothing but it, even
after a `kill -9` half-way. A failure in `up` tears down everything it made
(lab/down.py) and raises `LabError` naming the step that failed.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

from netns_setup import kernel, procs

from dataplane import kinds
from dataplane.compile import hyperplane as compiled
from dataplane.model import Lab, names

from . import hyperplane, processes, realise_vpc
from .down import teardown
from .plan import digest, plan
from .progress import Interrupted, Progress, Step, check_interrupt, run_steps
from .state import STATE_VERSION, LabError, State
from .status import check_present


def up(lab: Lab, progress: bool | None = None) -> tuple[State, bool]:
    """Make the lab; returns (state, created). `created` is False if it was already up.

    Raises LabError, after rolling back everything it made, if any step fails.
    """
    lab.check()
    plans = plan(lab)
    want = digest(lab)
    old = State.load(lab.name)
    if old is not None:
        status = old.data.get("status")
        if status == "up" and old.data.get("digest") == want:
            return repair(old), False
        if status == "up":
            raise LabError(f"lab {lab.name} is already up from a different topology; "
                           f"run `vpclab down {lab.name}` first")
        if old.owner_alive():
            raise LabError(f"lab {lab.name} is being changed by vpclab (pid "
                           f"{old.data.get('owner_pid')}); wait for it to finish")
        raise LabError(f"lab {lab.name} has leftovers of an unfinished `{status}` "
                       f"(state in {old.dir}); run `vpclab cleanup` first")

    all_ns = [p.netns for p in plans] + [i.netns for p in plans for i in p.instances]
    hp_ports = compiled.ports(lab)
    if hp_ports:
        all_ns.append(names.hyperplane_netns(lab.name))
    for kind in kinds.realisers():
        if hasattr(kind, "namespaces"):
            all_ns += kind.namespaces(lab)
    all_ns = list(dict.fromkeys(all_ns))     # API Gateway's VPC is also the links' home
    taken = [n for n in all_ns if kernel.netns_exists(n)]
    ours = [n for n in taken if names.lo_altname(lab.name) in kernel.netns_mark(n)]
    if ours:
        raise LabError(f"namespace(s) {', '.join(ours)} are leftovers of lab {lab.name} "
                       f"without state; run `vpclab cleanup` first; nothing was created")
    if taken:
        raise LabError(f"namespace(s) {', '.join(taken)} already exist and were not made by "
                       f"lab {lab.name}; nothing was created")

    st = State({"version": STATE_VERSION, "lab": lab.name, "region": lab.region,
                "status": "building", "owner_pid": os.getpid(),
                "owner_start": procs.start_time(os.getpid()), "digest": want,
                "created_at": time.time(), "topology": lab.to_dict(),
                "namespaces": all_ns, "tracking": processes.tracking(lab.name),
                "vpcs": {p.name: realise_vpc.record(p, lab) for p in plans},
                "processes": []})
    if hp_ports:
        record: dict[str, Any] = {"netns": names.hyperplane_netns(lab.name),
                                  **compiled.paths(lab.name)}
        for kind in kinds.realisers():
            if hasattr(kind, "state"):
                record.update(kind.state(lab))
        record["enis"] = [hyperplane.eni_record(p) for p in hp_ports]
        st.data["hyperplane"] = record
    for kind in kinds.realisers():
        if hasattr(kind, "record"):
            st.data.update(kind.record(lab, st.dir))
    st.save()
    steps = [s for p in plans for s in realise_vpc.steps(lab, p, st)]
    if hp_ports:
        steps += hyperplane.steps(lab, hp_ports, st)
    for kind in kinds.realisers():
        if hasattr(kind, "final_steps"):
            steps += kind.final_steps(lab, st)
    ready = processes.ready_checks(lab, st)
    if ready:
        steps.append(Step("ready: " + ", ".join(f"{c.where} ({c.what})" for c in ready),
                          lambda: processes.wait_until_ready(ready, st, prog.note)))
    steps.append(Step("supervisor: restarts the forwarder, resolvers and front end if they "
                      "die (python -m dataplane.lab.supervisor)",
                      lambda: start_supervisor(st)))
    prog = Progress(len(steps), progress)
    try:
        run_steps(steps, prog)
        check_interrupt()
        st.data["status"] = "up"
        st.data["owner_pid"] = None
        st.save()
    except BaseException as e:
        failed = prog.current or "preparing"
        teardown(st)
        if isinstance(e, (Interrupted, KeyboardInterrupt, SystemExit)):
            raise LabError(f"up of lab {lab.name} interrupted during: {failed}; "
                           f"everything it made was removed") from e
        raise LabError(f"up of lab {lab.name} failed during: {failed}: {e}; "
                       f"everything it made was removed") from e
    return st, True


def start_supervisor(st: State) -> int:
    """The lab's supervisor (lab/supervisor.py), in the lab's cgroup; it lives in the
    Hyperplane's namespace, or the first VPC's (it opens no socket but Unix ones)."""
    netns = (st.data.get("hyperplane") or {}).get("netns") or \
        next(iter(st.data["vpcs"].values()))["netns"]
    return processes.start(st, processes.SUPERVISOR, names.HYPERPLANE, None, netns,
                           [sys.executable, "-m", "dataplane.lab.supervisor", st.lab],
                           os.path.join(st.dir, "supervisor.log"), None)


def repair(st: State) -> State:
    """`up` on a lab that is up from the same file: start again every recorded process
    that has stopped (the supervisor, what it gave up on, `run:` commands, which it
    leaves alone). Namespaces are not remade in place: a lab missing one is refused,
    naming it."""
    gone = [n for n in st.data.get("namespaces", []) if not kernel.netns_exists(n)]
    if gone:
        raise LabError(f"lab {st.lab} is up but damaged (missing: {', '.join(gone)}); a "
                       f"namespace cannot be remade in place: run `vpclab down {st.lab}` "
                       f"and `vpclab up` again")
    with State.locked(st.lab) as locked:
        st = locked or st
        repaired = []
        for p in st.data["processes"]:
            if procs.alive(p["pid"], p["start"]):
                continue
            pid = processes.restart(st, p)
            repaired.append(f"{p['role']} {p['vpc']} (pid {pid})")
    st.repaired = repaired       # for the CLI's message
    missing = check_present(st)
    if missing:
        raise LabError(f"lab {st.lab} is still damaged after repair ({'; '.join(missing)})")
    return st
