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

**Exit codes of `run:` commands.** A lab's processes outlive `vpclab up`, their parent,
so no later vpclab process can wait() for them, and neither the cgroup nor a pidfd of a
non-child keeps an exit status. So a `run:` command is started under a small shell
(`/bin/sh -c '"$@"; echo $? > EXIT_FILE'`), its parent for its whole life, which writes
the command's status to `<lab dir>/<vpc>.<instance>.exit` when it ends (128+N for a
command killed by signal N, as a shell says it). The recorded pid is that shell's:
`status` says `running` while it lives, then `exited` with the code from the file (a
shell that was itself killed writes nothing: `stopped`, code unknown).

**Readiness.** A `run:` command may declare `ready:` (model/topology.py's Instance):
`{tcp: PORT}` (a TCP connection is accepted) or `{http: PATH, port: PORT}` (GET PATH
answers with a status below 400), checked from inside the instance at its own address,
every 0.1 s, for at most `timeout` seconds (READY_TIMEOUT_S by default). `up` waits for
every declared check in one step near its end (`wait_until_ready`), so the commands
start early and the rest of the lab is built while they start; a command that exits or
is not ready in time fails `up`, naming the instance, and `up` removes everything.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from netns_setup import cgroup, kernel, nsenter, procs

from dataplane.forwarder import control
from dataplane.http_probe import probe_request, status_of
from dataplane.model import names

from .progress import check_interrupt
from .state import LabError, State

CGROUP_V2 = "cgroup v2"
PROCESS_TREE = "process tree"
SUPERVISOR = "supervisor"       # lab/supervisor.py's role
RUN = "run"                     # an instance's `run:` command
READY_TIMEOUT_S = 30.0          # a `ready:` check's default bound
READY_POLL_S = 0.1
READY_NOTE_S = 2.0              # a progress line this often while waiting
# The shell that outlives a `run:` command to write its exit status (module docstring).
EXIT_RECORDER = '"$@"; echo $? > "$0"'
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
    record = {"role": role, "vpc": vpc, "instance": instance, "netns": netns, "argv": argv,
              "log": log, "resolv": resolv, "cwd": cwd}
    if role == RUN:
        record["exit_file"] = os.path.join(st.dir, f"{vpc}.{instance}.exit")
    pid, started = procs.spawn(netns, spawned_argv(record), log, resolv, cwd=cwd,
                               cgroup=cgroup_path(st))
    st.data["processes"].append({"pid": pid, "start": started, **record})
    st.save()
    return pid


def spawned_argv(record: dict[str, Any]) -> list[str]:
    """What is started for a process record: its argv, or for a `run:` command its
    argv under the shell that records its exit status (module docstring)."""
    if not record.get("exit_file"):
        return record["argv"]
    _forget_exit(record)
    return ["/bin/sh", "-c", EXIT_RECORDER, record["exit_file"], *record["argv"]]


def _forget_exit(record: dict[str, Any]) -> None:
    try:
        os.unlink(record["exit_file"])
    except FileNotFoundError:
        pass


def exit_code(record: dict[str, Any]) -> int | None:
    """The exit status of a `run:` command that has ended (None: running, not a `run:`
    command, or ended without a status: its recording shell was killed)."""
    path = record.get("exit_file")
    if not path:
        return None
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def process_state(record: dict[str, Any]) -> tuple[str, int | None]:
    """("running", None), ("exited", code) or ("stopped", None) for a process record."""
    if procs.alive(record["pid"], record["start"]):
        return "running", None
    code = exit_code(record)
    return ("stopped", None) if code is None else ("exited", code)


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
    pid, started = procs.spawn(record["netns"], spawned_argv(record), record["log"],
                               record.get("resolv"), cwd=record.get("cwd", "/"),
                               cgroup=cgroup_path(st))
    record.update(pid=pid, start=started, gave_up=False,
                  restarts=record.get("restarts", 0) + 1, last_restart=time.time())
    st.save()
    return pid


def _alb_node_sockets(data: dict[str, Any], record: dict[str, Any]) -> list[str]:
    return [n["socket"] for alb in data.get("albs", {}).values() for n in alb["nodes"]
            if (alb["vpc"], n["instance"]) == (record["vpc"], record.get("instance"))]


# Where the state keeps the control sockets of each role that has one: {role:
# (state data, process record) -> sockets}.
CONTROL_SOCKETS: dict[str, Callable[[dict[str, Any], dict[str, Any]], list[str]]] = {
    "forwarder": lambda data, record: [data["hyperplane"]["socket"]],
    "apigw": lambda data, record: [data["api_gateway"]["front_end"]["socket"]],
    "alb": _alb_node_sockets,
}


def control_sockets(st: State, record: dict[str, Any]) -> list[str]:
    """The control sockets of a process record (the forwarder's, API Gateway's front
    end's, an ALB node's: CONTROL_SOCKETS); none for the others."""
    find = CONTROL_SOCKETS.get(record["role"])
    return find(st.data, record) if find else []


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


@dataclass
class ReadyCheck:
    """One `run:` command's `ready:`: where to look and for how long."""
    vpc: str
    instance: str
    netns: str
    address: str
    tcp: int | None
    http: str | None
    port: int
    timeout: float

    @property
    def where(self) -> str:
        return f"{self.vpc}/{self.instance}"

    @property
    def what(self) -> str:
        return f"tcp {self.port}" if self.tcp else f"http://{self.address}:{self.port}{self.http}"

    def probe(self, sockets: nsenter.NetnsSockets) -> str | None:
        """None when ready; else why not (refused, an HTTP status…)."""
        try:
            with sockets.socket() as s:
                s.settimeout(1.0)
                s.connect((self.address, self.port))
                if self.tcp:
                    return None
                s.sendall(probe_request(self.http, f"{self.address}:{self.port}",
                                        "vpclab-ready"))
                status = status_of(s.makefile("rb").readline(200))
        except OSError as e:
            return e.strerror or type(e).__name__
        if status is None:
            return "no HTTP status line in the answer"
        return None if status < 400 else f"HTTP {status}"


def ready_checks(lab: Any, vpc_records: dict[str, Any],
                 only: set[tuple[str, str]] | None = None) -> list[ReadyCheck]:
    """Every `ready:` of the lab's `run:` commands (of the instances `only` names, as
    (vpc, instance), when given), in file order; `vpc_records`: the state's `vpcs`."""
    out = []
    for vname, vpc in lab.vpcs.items():
        for iname, inst in vpc.instances.items():
            if inst.run is None or not inst.ready or (only is not None
                                                      and (vname, iname) not in only):
                continue
            rec = vpc_records[vname]["instances"][iname]
            r = inst.ready
            out.append(ReadyCheck(vname, iname, rec["netns"], rec["ip"], r.get("tcp"),
                                  r.get("http"), r.get("tcp") or r.get("port", 80),
                                  float(r.get("timeout", READY_TIMEOUT_S))))
    return out


def wait_until_ready(checks: list[ReadyCheck], st: State,
                     note: Callable[[str], None] = lambda line: None) -> None:
    """Return once every check passes; raise LabError naming the instance whose
    command exited or was not ready within its timeout (its last answer and its log's
    last lines). `note` gets a progress line every READY_NOTE_S seconds."""
    records = {(p["vpc"], p["instance"]): p for p in st.data["processes"] if p["role"] == RUN}
    waiting = list(checks)
    why: dict[str, str | None] = {}
    started = last_note = time.monotonic()
    sockets = {c.where: nsenter.NetnsSockets(c.netns) for c in checks}
    try:
        while waiting:
            check_interrupt()
            for c in list(waiting):
                rec = records[(c.vpc, c.instance)]
                why[c.where] = c.probe(sockets[c.where])
                if why[c.where] is None:
                    waiting.remove(c)
                    continue
                state, code = process_state(rec)
                if state != "running":
                    ended = f"exited with code {code}" if state == "exited" else "stopped"
                    raise LabError(f"the run: command of {c.where} {ended} before it was "
                                   f"ready ({c.what}); log {rec['log']}: {tail(rec['log'])}")
                if time.monotonic() - started > c.timeout:
                    raise LabError(f"the run: command of {c.where} was not ready within "
                                   f"{c.timeout:g} s ({c.what}: {why[c.where]}); log "
                                   f"{rec['log']}: {tail(rec['log'])}")
            if waiting and time.monotonic() - last_note >= READY_NOTE_S:
                last_note = time.monotonic()
                note(f"waiting {last_note - started:.0f} s for " + ", ".join(
                    f"{c.where} ({c.what}: {why[c.where]})" for c in waiting))
            if waiting:
                time.sleep(READY_POLL_S)
    finally:
        for s in sockets.values():
            s.close()


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
