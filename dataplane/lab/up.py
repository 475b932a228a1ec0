"""Bringing a lab up: the plan checked against the kernel, the state file, then `up` as
an ordered list of steps, and a rollback of everything if one fails. The namespaces, the
state record and the steps come from lab/blueprint.py, which `validate --plan` shows.

The steps (each a line of progress, lab/progress.py):

1. per VPC, lab/realise_vpc.py's: its namespace, instances, router, security groups,
   DNS, `run:` commands — each VPC's in order, VPCs side by side (lab/progress.py,
   `Parallel`);
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
import time
from typing import Callable

from netns_setup import kernel, procs

from dataplane.model import Lab, names, reads_whole_lab

from . import blueprint, processes
from .down import teardown
from .plan import digest
from .progress import Interrupted, Progress, check_interrupt, run_steps
from .reconcile import RECONCILING, reconcile
from .state import LabError, State
from .status import check_present


@reads_whole_lab
def up(lab: Lab, progress: bool | None = None, show: Callable[[str], None] | None = None,
       plan_only: bool = False) -> tuple[State, bool]:
    """Make the lab; returns (state, created). `created` is False if it was already up:
    from the same file, it is repaired; from another, reconciled (lab/reconcile.py:
    `show` gets the plan's lines; `plan_only` stops there). A reconcile that was killed
    half-way (status `reconciling`, its process gone) is resumed toward `lab`.

    Raises LabError, after rolling back everything it made, if any step fails.
    """
    lab.check()
    want = digest(lab)
    old = State.load(lab.name)
    if plan_only and (old is None or old.data.get("status") != "up"):
        raise LabError(f"lab {lab.name} is not up: there is no running lab to compare the "
                       f"file with (`vpclab validate --plan` shows what up would make)")
    if old is not None:
        status = old.data.get("status")
        if status == "up" and old.data.get("digest") == want and not plan_only:
            return repair(old), False
        if status == "up":
            return reconcile(old, lab, progress, show, plan_only), False
        if old.owner_alive():
            raise LabError(f"lab {lab.name} is being changed by vpclab (pid "
                           f"{old.data.get('owner_pid')}); wait for it to finish")
        if status == RECONCILING and not plan_only:
            # a reconcile that was killed: its state says what runs (lab/reconcile.py)
            if show:
                show(f"lab {lab.name}: resuming an interrupted reconcile")
            return reconcile(old, lab, progress, show), False
        raise LabError(f"lab {lab.name} has leftovers of an unfinished `{status}` "
                       f"(state in {old.dir}); run `vpclab cleanup` first")

    data = blueprint.record(lab)
    all_ns = data["namespaces"]
    taken = [n for n in all_ns if kernel.netns_exists(n)]
    ours = [n for n in taken if names.lo_altname(lab.name) in kernel.netns_mark(n)]
    if ours:
        raise LabError(f"namespace(s) {', '.join(ours)} are leftovers of lab {lab.name} "
                       f"without state; run `vpclab cleanup` first; nothing was created")
    if taken:
        raise LabError(f"namespace(s) {', '.join(taken)} already exist and were not made by "
                       f"lab {lab.name}; nothing was created")

    data.update({"owner_pid": os.getpid(), "owner_start": procs.start_time(os.getpid()),
                 "created_at": time.time(), "tracking": processes.tracking(lab.name)})
    st = State(data)
    st.save()
    prog = Progress(0, progress)       # run_steps counts the steps
    steps = blueprint.steps(lab, st, prog.note)
    try:
        with kernel.connections():       # closed before any rollback (kernel.py)
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
