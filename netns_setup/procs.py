"""Processes of a lab: started in a namespace, recorded by identity, stopped by PID.

A process is started with `spawn()` in a new session (so it and its children form one
process group whose id is its PID), its output appended to a log file, optionally in a
private mount namespace with the lab's resolv.conf (see nsenter.py). Its identity is
(PID, start time in clock ticks since boot, from /proc/PID/stat field 22): `stop()`
signals only a process whose start time still matches, so a PID reused by the system
after a reboot-free crash is never hit. Nothing here finds processes by name.

`pids_in_netns()` lists processes whose network namespace is a given named namespace
(same inode as /run/netns/NAME). Cleanup uses it for processes vpclab started but had
no time to record (a `kill -9` between fork and state write): any process left inside
a lab namespace would keep that namespace alive after it is unmounted.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

from .nsenter import enter

STOP_GRACE_S = 3.0   # SIGTERM, then this long before SIGKILL


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(")") + 2:].split()
    return int(rest[19])


PF_EXITING = 0x4   # task flag: the process is tearing itself down (include/linux/sched.h)


def is_zombie(pid: int) -> bool:
    """Gone, a zombie, or on its way there: a killed process with large mappings (the
    forwarder's packet rings) takes a moment to exit and is not alive meanwhile."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return True
    fields = data[data.rindex(")") + 2:].split()
    return fields[0] in ("Z", "X") or bool(int(fields[6]) & PF_EXITING)


def alive(pid: int, started: int | None) -> bool:
    st = start_time(pid)
    return st is not None and (started is None or st == started) and not is_zombie(pid)


def spawn(netns: str, argv: list[str], log_path: str, resolv_conf: str | None = None,
          cwd: str = "/") -> tuple[int, int]:
    """Start `argv` in `netns`, output appended to `log_path`. Returns (pid, start time)."""
    log = open(log_path, "ab", buffering=0)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                cwd=cwd, start_new_session=True, close_fds=True,
                                preexec_fn=lambda: enter(netns, resolv_conf))
    finally:
        log.close()
    st = start_time(proc.pid)
    # The Popen object is dropped on purpose: the process outlives `vpclab up`. Mark it
    # as waited-for so Python doesn't warn; init reaps it once this process exits.
    proc.returncode = 0
    return proc.pid, st if st is not None else 0


def stop(pid: int, started: int | None, grace: float = STOP_GRACE_S) -> bool:
    """SIGTERM the process group of (pid, started), SIGKILL after `grace`. True if it ran."""
    if not alive(pid, started):
        _reap(pid)
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if not alive(pid, started):
                return True
            time.sleep(0.02)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def pids_in_netns(inode: int) -> list[int]:
    """PIDs whose network namespace has inode `inode` (from /run/netns/NAME)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.stat(f"/proc/{d}/ns/net").st_ino == inode:
                out.append(int(d))
        except OSError:
            continue
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
