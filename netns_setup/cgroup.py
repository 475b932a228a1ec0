"""A control group (cgroup v2) per lab: every process of the lab in one place the kernel
keeps, so none can slip out of `down` by leaving its process group or losing its parent.

A process's group or parent says nothing reliable about where it came from: a server a
`run:` shell forked lives on when the shell exits, and `vpclab exec … &` leaves a process
that leads no group. A cgroup is inherited by every child at fork and cannot be left
without writing to the hierarchy, so the lab's group holds everything its processes ever
started. `cgroup.kill` (Linux 5.14) SIGKILLs the whole group and its subgroups at once, and
`cgroup.events` says `populated 0` once the last of them has exited, zombies included.

Where cgroup v2 is: on a unified host /sys/fs/cgroup is itself the cgroup2 file system;
on a hybrid one (v1 controllers under /sys/fs/cgroup/<controller>, as on this project's
VM) the v2 hierarchy is mounted at /sys/fs/cgroup/unified. `v2_root()` finds whichever
is mounted, from /proc/self/mounts. A group is a directory there; this module only makes
groups directly below that root, named by the caller, and never touches another one.

`create()` returns None (and the reason in `unavailable_reason()`) when there is no
writable cgroup v2 with `cgroup.kill`: in a container without its own cgroup namespace,
on an old kernel, or read-only. The caller then falls back to walking the process tree
(netns_setup/procs.py). Nothing here knows about labs.

Accounting comes for free: `cpu.stat` (usage_usec) is in every v2 group; `memory.current`
only where the memory controller is enabled in the v2 tree (on a hybrid host memory is
usually a v1 controller, so it is absent and `usage()` says None).
"""
from __future__ import annotations

import errno
import os
import time

MOUNT_POINTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")   # in order of preference
MOUNTS_FILE = "/proc/self/mounts"
EMPTY_WAIT_S = 5.0     # how long `kill()` waits for the group to empty


class CgroupError(OSError):
    """The group could not be made, joined or emptied; the message says which and why."""


def v2_root() -> str | None:
    """Where the cgroup2 file system is mounted (first of MOUNT_POINTS), or None."""
    try:
        with open(MOUNTS_FILE) as f:
            mounted = {fields[1] for fields in (line.split() for line in f)
                       if len(fields) > 2 and fields[2] == "cgroup2"}
    except OSError:
        return None
    return next((m for m in MOUNT_POINTS if m in mounted), None)


def unavailable_reason() -> str | None:
    """Why `create()` would return None here, or None when cgroup v2 can be used."""
    root = v2_root()
    if root is None:
        return f"no cgroup2 file system mounted at {' or '.join(MOUNT_POINTS)}"
    if not os.access(root, os.W_OK):
        return f"cgroup v2 at {root} is not writable"
    if not _kernel_has_kill():
        return f"the kernel ({os.uname().release}) has no cgroup.kill (needs 5.14)"
    return None


def _kernel_has_kill() -> bool:
    """cgroup.kill exists in non-root groups only; the root one lacks it even on 5.14+."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 14)


def path_of(name: str) -> str | None:
    root = v2_root()
    return None if root is None else os.path.join(root, name)


def create(name: str) -> str | None:
    """Make the group `name` below the v2 root (kept if it exists); its path, or None
    when no usable cgroup v2 is there (see `unavailable_reason()`)."""
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"bad cgroup name {name!r}: one path component expected")
    if unavailable_reason() is not None:
        return None
    path = path_of(name)
    assert path is not None
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass
    except OSError:
        return None
    if not os.path.exists(os.path.join(path, "cgroup.kill")):
        _rmdir(path)
        return None
    return path


def groups(prefix: str) -> list[str]:
    """Names of the groups directly below the v2 root that start with `prefix`."""
    root = v2_root()
    if root is None:
        return []
    try:
        return sorted(d for d in os.listdir(root)
                      if d.startswith(prefix) and os.path.isdir(os.path.join(root, d)))
    except OSError:
        return []


def join(path: str, pid: int = 0) -> None:
    """Move `pid` (0: the calling process) into the group at `path`. Safe between fork
    and exec: one open, one write, no allocation worth speaking of."""
    try:
        fd = os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY)
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise CgroupError(e.errno, f"joining cgroup {path}: {e.strerror}") from e


def pids(path: str) -> list[int]:
    """Every process in the group and its subgroups."""
    out: list[int] = []
    for dirpath, _dirs, _files in os.walk(path):
        try:
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                out += [int(line) for line in f if line.strip()]
        except OSError:
            continue
    return sorted(set(out))


def populated(path: str) -> bool:
    """True while any process is in the group or below (False if there is no group)."""
    try:
        with open(os.path.join(path, "cgroup.events")) as f:
            return any(line.split() == ["populated", "1"] for line in f)
    except FileNotFoundError:
        return False


def kill(path: str, wait: float = EMPTY_WAIT_S) -> bool:
    """SIGKILL every process in the group (subgroups too) and wait, at most `wait`
    seconds, until it is empty. True if it is empty (or was never there)."""
    if not os.path.isdir(path):
        return True
    if populated(path):
        try:
            with open(os.path.join(path, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError as e:
            raise CgroupError(e.errno, f"cgroup.kill of {path}: {e.strerror}") from e
    deadline = time.monotonic() + wait
    while populated(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def remove(path: str) -> bool:
    """Remove the (empty) group and its subgroups, deepest first. True if it is gone."""
    if not os.path.isdir(path):
        return True
    for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
        _rmdir(dirpath)
    return not os.path.isdir(path)


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
            raise


def usage(path: str) -> dict[str, int | None]:
    """{"cpu_usec": …, "memory_bytes": …}: CPU time used by every process that was ever
    in the group, and memory in use now (None without the v2 memory controller)."""
    cpu = mem = None
    try:
        with open(os.path.join(path, "cpu.stat")) as f:
            cpu = next((int(v) for k, v in (line.split() for line in f) if k == "usage_usec"),
                       None)
    except OSError:
        pass
    try:
        with open(os.path.join(path, "memory.current")) as f:
            mem = int(f.read())
    except (OSError, ValueError):
        pass
    return {"cpu_usec": cpu, "memory_bytes": mem}
