"""Namespaces of scratch runs that are not labs: bench/e2e's `vb-<pid>-…` and
bench/afxdp's `vx-<pid>-…`, named after the PID of the run that made them.

A run removes its own namespaces when it ends, even on SIGTERM; a `kill -9` leaves
them. `dead_run_namespaces()` finds those whose run is gone (a running one's are never
listed) and `remove_dead_runs()` removes them with whatever still runs inside, by PID.
`vpclab cleanup` calls it; bench/e2e's `--cleanup` uses the same list.
"""
from __future__ import annotations

import os

from . import kernel, procs

RUN_PREFIXES = ("vb-", "vx-")


def run_pid(ns: str) -> int | None:
    """The PID in `vb-<pid>-…` / `vx-<pid>-…`, or None for any other name."""
    if not ns.startswith(RUN_PREFIXES):
        return None
    try:
        return int(ns.split("-")[1])
    except (ValueError, IndexError):
        return None


def dead_run_namespaces() -> list[str]:
    out = []
    for ns in kernel.list_netns():
        pid = run_pid(ns)
        if pid is None:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            out.append(ns)
        except PermissionError:
            pass                      # a process of another user: alive
    return out


def remove_dead_runs() -> list[str]:
    removed = []
    for ns in dead_run_namespaces():
        inode = kernel.netns_inode(ns)
        if inode is not None:
            for pid in procs.pids_in_netns(inode):
                procs.stop(pid, procs.start_time(pid))
        if kernel.remove_netns(ns):
            removed.append(ns)
    return removed
