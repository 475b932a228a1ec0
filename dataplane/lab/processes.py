"""The processes a lab runs (dnsmasq, `run:` commands, the forwarder): started in
their namespace and in the lab's cgroup, recorded in the state file at once, and ended
— all of them, including what they started — when the lab is taken down.

Where the lab's processes are tracked is decided once, by `tracking()` before `up`
writes the state: a cgroup v2 group `vpclab.<lab>` (netns_setup/cgroup.py) when one can
be made, else the process tree below the recorded processes (psutil). The state says
which (`status` shows it). `vpclab exec` joins the same group, so what a user starts by
hand is the lab's too.

`end()` is what `down`, a failed `up` and `cleanup` use. It ends the recorded processes
first (SIGTERM, a grace period, SIGKILL: the forwarder and dnsmasq get to exit cleanly),
then every other process of the lab: the whole cgroup at once with `cgroup.kill`, waiting
until it is empty, or, without one, the recorded processes' descendants found before
their parents died; and in both cases any process inside one of the lab's namespaces
(found by the inode of /proc/PID/ns/net), whoever started it. It reports what it
verified: each process it found and saw gone, and those still running.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable

from netns_setup import cgroup, kernel, procs

from dataplane.forwarder import control
from dataplane.model import names

from .progress import check_interrupt
from .state import LabError, State

CGROUP_V2 = "cgroup v2"
PROCESS_TREE = "process tree"
SUPERVISOR = "supervisor"       # lab/supervisor.py's role
SWEEPS = 3      # rounds of find-and-end after the first (a process may fork meanwhile)


def tracking(lab: str) -> dict[str, Any]:
    """The lab's record of where its processes are tracked; makes its cgroup."""
    path = cgroup.create(names.cgroup_name(lab))
    if path is not None:
        return {"mode": CGROUP_V2, "path": path}
    why = cgroup.unavailable_reason() or f"cannot make cgroup {names.cgroup_name(lab)}"
    return {"mode": PROCESS_TREE, "reason": why}


def cgroup_path(st: State) -> str | None:
    t = st.data.get("tracking") or {}
    return t.get("path") if t.get("mode") == CGROUP_V2 else None


def start(st: State, role: str, vpc: str, instance: str | None, netns: str,
          argv: list[str], log: str, resolv: str | None, cwd: str = "/") -> int:
    if cwd != "/":
        os.makedirs(cwd, mode=0o755, exist_ok=True)
    pid, started = procs.spawn(netns, argv, log, resolv, cwd=cwd, cgroup=cgroup_path(st))
    st.data["processes"].append({"pid": pid, "start": started, "role": role, "vpc": vpc,
                                 "instance": instance, "netns": netns, "argv": argv,
                                 "log": log, "resolv": resolv, "cwd": cwd})
    st.save()
    return pid


def restart(st: State, record: dict[str, Any]) -> int:
    """Start a recorded process again as it was started (its namespace, command, log,
    resolver, directory, and the lab's cgroup) and update its record: new pid and start
    time, one more restart, no longer given up. A control socket the dead process left
    is removed first, as it would refuse the new process's bind. The caller holds the
    state's lock (State.locked); the state is saved at once, as `start` does. Returns
    the new pid (the caller waits for it to be ready if it must)."""
    for sock in control_sockets(st, record):
        try:
            os.unlink(sock)
        except FileNotFoundError:
            pass
    pid, started = procs.spawn(record["netns"], record["argv"], record["log"],
                               record.get("resolv"), cwd=record.get("cwd", "/"),
                               cgroup=cgroup_path(st))
    record.update(pid=pid, start=started, gave_up=False,
                  restarts=record.get("restarts", 0) + 1, last_restart=time.time())
    st.save()
    return pid


def control_sockets(st: State, record: dict[str, Any]) -> list[str]:
    """The control sockets of a process record (the forwarder's, API Gateway's front
    end's, an ALB node's); none for the others."""
    if record["role"] == "forwarder":
        return [st.data["hyperplane"]["socket"]]
    if record["role"] == "apigw":
        return [st.data["api_gateway"]["front_end"]["socket"]]
    if record["role"] == "alb":
        return [n["socket"] for alb in st.data.get("albs", {}).values() for n in alb["nodes"]
                if (alb["vpc"], n["instance"]) == (record["vpc"], record.get("instance"))]
    return []


def wait_ready(pid: int, ready: Callable[[], bool], what: str, log: str,
               timeout: float) -> None:
    """Return once `ready()` is true; raise LabError naming `what`, with its log's last
    lines, if process `pid` dies first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not ready():
        check_interrupt()
        if not procs.alive(pid, None) or time.monotonic() > deadline:
            raise LabError(f"{what} did not start: {tail(log)}")
        time.sleep(0.02)


def answers(socket: str) -> Callable[[], bool]:
    """Whether a process answers `ping` on its control socket (the forwarder's protocol:
    the forwarder, API Gateway's front end)."""
    def ready() -> bool:
        try:
            control.call(socket, "ping", timeout=1)
            return True
        except (control.ControlError, OSError):
            return False
    return ready


def end(recorded: list[dict[str, Any]], namespaces: list[str],
        group: str | None) -> tuple[list[str], list[str]]:
    """End every process of a lab (see the module docstring): `recorded` from its
    state, its `namespaces`, its cgroup path `group` (None: walk the process tree).
    Returns (processes verified gone, processes still running), one line each."""
    me = os.getpid()
    if group is not None and me in cgroup.pids(group):
        cgroup.join(os.path.dirname(group))      # `vpclab exec … vpclab down` ends the rest
    found: dict[int, tuple[int | None, str]] = {}    # pid -> (start time, what it is)
    for p in recorded:
        if procs.alive(p["pid"], p["start"]):
            found[p["pid"]] = (p["start"], p["role"])
    first = [(pid, start) for pid, (start, _) in found.items()]
    inodes = {n: ino for n in namespaces if (ino := kernel.netns_inode(n)) is not None}

    def sweep() -> list[procs.Identity]:
        """Add every process of the lab to `found`; return those still running."""
        where: dict[int, str] = {}
        if group is not None:
            where.update((pid, "in the lab's cgroup") for pid in cgroup.pids(group))
        else:
            for pid, _ in first:
                where.update((c, f"started by {pid}") for c in procs.descendants(pid))
        inside = procs.pids_by_netns(set(inodes.values()))
        for n, ino in inodes.items():
            where.update((pid, f"in {n}") for pid in inside.get(ino, []))
        for pid, what in where.items():
            if pid != me and pid not in found:
                started = procs.start_time(pid)
                if started is not None:
                    found[pid] = (started, f"{procs.comm(pid)}, {what}")
        return [(pid, s) for pid, (s, _) in found.items() if procs.alive(pid, s)]

    sweep()                                  # before the parents go (the tree walk needs them)
    # The supervisor first, so that it restarts nothing it sees die below.
    procs.stop_all([(p["pid"], p["start"]) for p in recorded if p["role"] == SUPERVISOR
                    and (p["pid"], p["start"]) in first])
    procs.stop_all(first)
    if group is not None:
        try:
            cgroup.kill(group)
        except cgroup.CgroupError:
            pass        # the sweeps below still find its members and end them one by one
    for _ in range(SWEEPS):
        left = sweep()
        if not left:
            break
        procs.stop_all(left)
    gone = [f"process {pid} ({what})" for pid, (s, what) in found.items()
            if not procs.alive(pid, s)]
    running = [f"process {pid} ({what})" for pid, (s, what) in found.items()
               if procs.alive(pid, s)]
    return gone, running


def tail(path: str, n: int = 3) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = f.read().strip().splitlines()
        return " | ".join(lines[-n:]) or "(empty log)"
    except OSError:
        return "(no log)"
