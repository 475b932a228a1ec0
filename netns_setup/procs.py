"""Processes of a lab: started in a namespace, recorded by identity, stopped by PID.

A process is started with `spawn()` in a new session (so it and its children form one
process group whose id is its PID), its output appended to a log file, optionally in a
private mount namespace with the lab's resolv.conf (see nsenter.py) and in the lab's
cgroup (see cgroup.py; joined between fork and exec, so nothing it starts is ever
outside). Its identity is (PID, start time in clock ticks since boot, from
/proc/PID/stat field 22): `stop()` and `stop_all()` signal only a process whose start
time still matches, so a PID reused by the system after a reboot-free crash is never
hit. A process that leads its group is signalled with its group (a shell and the
pipeline it runs); one that does not — `vpclab exec … &`, or a child whose shell has
exited — is signalled by its PID. Stopping is verified: `stop_all()` returns what is
still running after SIGTERM, a grace period and SIGKILL. Nothing here finds processes
by name.

`pids_in_netns()` lists processes whose network namespace is a given named namespace
(same inode as /run/netns/NAME), `pids_by_netns()` those of several in one walk of /proc; `descendants()` walks the process tree below a PID
(psutil), for hosts where no cgroup v2 holds a lab's processes. Teardown uses both for
processes vpclab started but had no time to record (a `kill -9` between fork and state
write), or that its processes started: any process left inside a lab namespace would
keep that namespace alive after it is unmounted.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil

from . import cgroup as cgroups
from .nsenter import enter

STOP_GRACE_S = 3.0   # SIGTERM, then this long before SIGKILL


def _stat_after_comm(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after comm (field 3, the state, is the first), or
    None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    return data[data.rindex(")") + 2:].split()


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat, or None if there is no such process."""
    fields = _stat_after_comm(pid)
    return None if fields is None else int(fields[19])


PF_EXITING = 0x4   # task flag: the process is tearing itself down (include/linux/sched.h)


def is_zombie(pid: int) -> bool:
    """Gone, a zombie, or on its way there: a killed process with large mappings (the
    forwarder's packet rings) takes a moment to exit and is not alive meanwhile."""
    fields = _stat_after_comm(pid)
    return fields is None or fields[0] in ("Z", "X") or bool(int(fields[6]) & PF_EXITING)


def alive(pid: int, started: int | None) -> bool:
    st = start_time(pid)
    return st is not None and (started is None or st == started) and not is_zombie(pid)


def spawn(netns: str, argv: list[str], log_path: str, resolv_conf: str | None = None,
          cwd: str = "/", cgroup: str | None = None) -> tuple[int, int]:
    """Start `argv` in `netns` (and in the cgroup at path `cgroup`, if given), in
    directory `cwd`, output appended to `log_path`. Returns (pid, start time)."""
    def child() -> None:
        if cgroup is not None:
            cgroups.join(cgroup)
        enter(netns, resolv_conf)

    log = open(log_path, "ab", buffering=0)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                cwd=cwd, start_new_session=True, close_fds=True,
                                preexec_fn=child)
    finally:
        log.close()
    st = start_time(proc.pid)
    # The Popen object is dropped on purpose: the process outlives `vpclab up`. Mark it
    # as waited-for so Python doesn't warn; init reaps it once this process exits.
    proc.returncode = 0
    return proc.pid, st if st is not None else 0


Identity = tuple[int, "int | None"]     # (pid, start time); None: whatever runs there


def stop(pid: int, started: int | None, grace: float = STOP_GRACE_S) -> bool:
    """Stop (pid, started) as `stop_all()` does. True if it ran and is now gone."""
    if not alive(pid, started):
        _reap(pid)
        return False
    return not stop_all([(pid, started)], grace)


def stop_all(targets: list[Identity], grace: float = STOP_GRACE_S) -> list[Identity]:
    """SIGTERM every target still running, SIGKILL those left after `grace` seconds,
    wait as long again; returns the targets still running after that (normally none)."""
    left = [t for t in targets if alive(*t)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, _started in left:
            _signal(pid, sig)
        deadline = time.monotonic() + grace
        while left and time.monotonic() < deadline:
            for pid, _started in left:
                _reap(pid)
            left = [t for t in left if alive(*t)]
            if left:
                time.sleep(0.02)
        if not left:
            break
    return left


def _signal(pid: int, sig: int) -> None:
    """Signal the group `pid` leads, or `pid` alone when it leads none."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def descendants(pid: int) -> list[int]:
    """Every process below `pid` in the process tree, [] when `pid` is gone."""
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def comm(pid: int) -> str:
    """The process's command name (/proc/PID/comm), "?" when it is gone."""
    try:
        with open(f"/proc/{pid}/comm", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return "?"


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def pids_in_netns(inode: int) -> list[int]:
    """PIDs whose network namespace has inode `inode` (from /run/netns/NAME)."""
    return pids_by_netns({inode}).get(inode, [])


def pids_by_netns(inodes: set[int]) -> dict[int, list[int]]:
    """{inode: PIDs} of the processes whose network namespace is one of `inodes`, from
    one walk of /proc (a lab's teardown asks for every namespace of the lab at once)."""
    out: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            inode = os.stat(f"/proc/{d}/ns/net").st_ino
        except OSError:
            continue
        if inode in inodes:
            out.setdefault(inode, []).append(int(d))
    return out


def udp_listening(pid: int, address: str, port: int) -> bool:
    """True if the namespace of `pid` has a UDP socket bound to address:port."""
    a = address.split(".")
    want = "".join(f"{int(x):02X}" for x in reversed(a)) + f":{port:04X}"
    try:
        with open(f"/proc/{pid}/net/udp") as f:
            return any(line.split()[1] == want for line in list(f)[1:])
    except OSError:
        return False
