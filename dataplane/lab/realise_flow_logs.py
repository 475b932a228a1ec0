"""VPC Flow Logs' part of `up`, and turning them on and off in a running lab.

The state file's `flow_logs` record is {target: {id, interval, format}}: the topology's
flow logs when `up` writes it, changed by `enable` and `disable` under the lab's lock
(State.locked, as the supervisor's restarts). The collector process
(dataplane/services/flowlogs/collector.py, role `flowlogs`) reads it whenever the state
file changes. `up` starts the collector as a final step when the topology has a flow
log; `enable` starts it when none runs; `disable` of the last flow log stops it (by its
PID) and drops its process record; `down` ends it with the lab's other processes, and
the supervisor restarts it if it dies. Records stay in /run/vpclab/<lab>/flowlogs/
until `down` removes the lab's directory.
"""
from __future__ import annotations

import os
import sys
from typing import Any

from netns_setup import procs

from dataplane.model import Lab
from dataplane.model.flow_logs import (DEFAULT_FORMAT, DEFAULT_INTERVAL, flow_log_id,
                                       interval_problem, parse_format)

from . import processes
from .progress import Step
from .state import LabError, State

ROLE = "flowlogs"
LOG = "flowlogs.log"


def _entry(lab: str, target: str, interval: int, fmt: str) -> dict[str, Any]:
    return {"id": flow_log_id(lab, target), "interval": interval, "format": fmt}


def record(lab: Lab, run_dir: str) -> dict[str, Any]:
    """The state file's `flow_logs` record ({} when the topology asks for none)."""
    if not lab.flow_logs:
        return {}
    return {"flow_logs": {t: _entry(lab.name, t, fl.interval, fl.format)
                          for t, fl in lab.flow_logs.items()}}


def final_steps(lab: Lab, st: State) -> list[Step]:
    if not lab.flow_logs:
        return []
    return [Step(f"flow logs on {', '.join(lab.flow_logs)}: collector (python -m "
                 f"dataplane.services.flowlogs), records in {st.dir}/flowlogs/",
                 lambda: start_collector(st))]


def collector(st: State) -> dict[str, Any] | None:
    """The collector's process record, if the lab has one."""
    return next((p for p in st.data.get("processes", []) if p["role"] == ROLE), None)


def start_collector(st: State) -> int:
    from .blueprint import supervisor_netns     # where the lab's own processes run
    return processes.start(st, ROLE, "flowlogs", None, supervisor_netns(st.data),
                           [sys.executable, "-m", "dataplane.services.flowlogs", st.lab],
                           os.path.join(st.dir, LOG), None)


def enable(lab: str, target: str, interval: int = DEFAULT_INTERVAL,
           fmt: str = DEFAULT_FORMAT) -> dict[str, Any]:
    """A flow log on `target` (VPC, VPC/INSTANCE or ENI ID) of running lab `lab`, or
    the existing one changed; starts the collector if none runs. Returns its record.
    Raises LabError naming what is wrong, before anything is changed."""
    from dataplane.services.flowlogs.collector import Catalog
    why = interval_problem(interval)
    if why:
        raise LabError(f"--interval: {why}")
    try:
        parse_format(fmt)
    except ValueError as e:
        raise LabError(f"--format: {e}") from None
    with State.locked(lab) as st:
        if st is None or st.data.get("status") != "up":
            raise LabError(f"lab {lab} is not up")
        why = Catalog.of(st.data).resolve(target)
        if why:
            raise LabError(why)
        logs = st.data.setdefault("flow_logs", {})
        logs[target] = _entry(lab, target, interval, fmt)
        st.save()
        rec = collector(st)
        if rec is None or not procs.alive(rec["pid"], rec["start"]):
            if rec is not None:
                processes.restart(st, rec)
            else:
                start_collector(st)
        return logs[target]


def disable(lab: str, target: str) -> None:
    """Remove the flow log on `target`; the last one removed stops the collector.
    Records already written stay."""
    with State.locked(lab) as st:
        if st is None or st.data.get("status") != "up":
            raise LabError(f"lab {lab} is not up")
        logs = st.data.get("flow_logs") or {}
        if target not in logs:
            raise LabError(f"no flow log on {target!r} (flow logs: "
                           f"{', '.join(logs) or 'none'})")
        del logs[target]
        rec = collector(st) if not logs else None
        if rec is not None:
            procs.stop(rec["pid"], rec["start"])
            st.data["processes"].remove(rec)
        st.save()
