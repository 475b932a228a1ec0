"""Scratch namespaces: the throwaway topologies of the root tests and the benchmarks.

A test or a benchmark run that needs a few namespaces wired by veths — not a lab — makes
them with one `Scratch`. Every namespace it makes is named `<root><pid>-<role>`: `root`
says whose it is (`vb-` bench/e2e, `vx-` bench/afxdp, `tio-` the forwarder's root tests,
`vg-` bench/apigw, `bal-` its ALB scenario, `tsc-` the test of this module), `pid` is the
process that made it, so parallel runs and the leftovers of a killed run are told apart,
and `role` is the caller's word for it (`gen`, `fwd`, `cli`…). A namespace's `lo` carries
the altname `scratch.<namespace>` and each veth end `scratch.<namespace>.<ifname>`: never
`vpclab.…`, so a lab's cleanup, which removes only what carries its own mark, never takes
a scratch namespace for a lab's.

The objects are made by kernel.py's `ensure_*`, which wait until the kernel shows them;
a veth is created inside its first namespace with the peer put straight into the second,
so nothing ever appears in the root namespace. The builder refuses to configure a
namespace it did not make. Interface names are the caller's (`eth0`, `vb-123-e0`), at
most 15 bytes (IFNAMSIZ - 1): a longer one is refused with its name before anything is
sent to the kernel.

Removal ends every process still inside a namespace (SIGKILL by PID: in a scratch
namespace they are the caller's own) and then removes the namespace, whose veths go with
it. `with Scratch(...) as s:` removes on leaving, whatever happened; `s.undone_on_failure()`
removes only if the block raises (for a topology built now and used later, removed by an
explicit `remove()`). `remove_runs(roots)` removes what killed runs left, found by name.
"""
from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from typing import Iterator

from . import kernel
from .procs import pids_in_netns

MARK = "scratch"
IFNAMSIZ = 16
PROCESS_EXIT_WAIT_S = 5.0


class ScratchError(ValueError):
    """A scratch topology was asked for something it does not do; says what."""


# Roots of the benchmarks' scratch runs (bench/e2e, bench/afxdp, bench/apigw and its ALB
# scenario): `vpclab cleanup` removes what killed runs of theirs left, without importing bench.
BENCH_RUN_ROOTS = ("vb-", "vx-", "vg-", "bal-")
# bench/apigw's labs are named `bgw-<pid>`: `vpclab cleanup` takes down one whose run is gone.
BENCH_LAB_ROOT = "bgw-"


def mark_of(namespace: str, ifname: str | None = None) -> str:
    """The ownership altname of `namespace`'s `lo`, or of its link `ifname`."""
    return f"{MARK}.{namespace}" + (f".{ifname}" if ifname else "")


class Scratch:
    """Namespaces `<root><pid>-<role>` and the veths, addresses, routes and neighbours
    between them, removed together by `remove()` (see the module docstring)."""

    def __init__(self, root: str, pid: int | None = None) -> None:
        if not root or "/" in root:
            raise ScratchError(f"scratch root {root!r} must be a non-empty name prefix "
                               "without '/', such as 'vb-'")
        self.prefix = f"{root}{os.getpid() if pid is None else pid}-"
        self.namespaces: list[str] = []

    def name(self, role: str) -> str:
        """The name of the namespace for `role` (made or not)."""
        return self.prefix + role

    # -- building ----------------------------------------------------------------------
    def namespace(self, role: str) -> str:
        """Makes namespace `<prefix><role>` with `lo` up; returns its name."""
        name = self.name(role)
        if name not in self.namespaces:
            self.namespaces.append(name)    # recorded first: removed even if half made
        kernel.ensure_netns(name, mark_of(name))
        return name

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str, mtu: int = 9001) -> None:
        """A veth `if_a` in `ns_a` ⇄ `if_b` in `ns_b`, both ends up with MTU `mtu`."""
        for ns, ifname in ((ns_a, if_a), (ns_b, if_b)):
            self._own(ns)
            if not ifname or len(ifname.encode()) >= IFNAMSIZ:
                raise ScratchError(f"interface name {ifname!r} must be 1 to {IFNAMSIZ - 1} "
                                   "bytes long")
        kernel.ensure_veth(ns_a, if_a, mark_of(ns_a, if_a), ns_b, if_b, mark_of(ns_b, if_b),
                           mtu)

    def address(self, ns: str, ifname: str, address: str, prefixlen: int) -> None:
        kernel.ensure_address(self._own(ns), ifname, address, prefixlen)

    def route(self, ns: str, dst: str, ifname: str | None = None,
              gateway: str | None = None) -> None:
        """A route to `dst` (CIDR; `0.0.0.0/0` for the default) out of `ifname`/via `gateway`."""
        kernel.ensure_route(self._own(ns), dst, ifname=ifname, gateway=gateway)

    def neighbour(self, ns: str, ifname: str, address: str, mac: str) -> None:
        """A permanent ARP entry, so that no resolution happens while traffic runs."""
        kernel.ensure_neighbour(self._own(ns), ifname, address, mac)

    def _own(self, ns: str) -> str:
        if ns not in self.namespaces:
            raise ScratchError(f"namespace {ns!r} was not made by this scratch topology "
                               f"(it made: {', '.join(self.namespaces) or 'nothing yet'})")
        return ns

    # -- removal -----------------------------------------------------------------------
    def remove(self) -> None:
        """Ends the processes inside each namespace, then removes it. Safe to repeat."""
        for name in reversed(self.namespaces):
            remove_namespace(name)
        self.namespaces.clear()

    @contextmanager
    def undone_on_failure(self) -> Iterator["Scratch"]:
        """Removes everything made so far if the block raises (anything, ^C included)."""
        try:
            yield self
        except BaseException:
            self.remove()
            raise

    def __enter__(self) -> "Scratch":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def end_processes_in(namespace: str) -> list[int]:
    """SIGKILLs, by PID, every process (other than this one) inside `namespace` and waits
    until they are gone (at most PROCESS_EXIT_WAIT_S). Returns the PIDs it signalled."""
    inode = kernel.netns_inode(namespace)
    if inode is None:
        return []

    def inside() -> list[int]:
        return [pid for pid in pids_in_netns(inode) if pid != os.getpid()]
    pids = inside()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + PROCESS_EXIT_WAIT_S
    while inside() and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


def remove_namespace(namespace: str) -> bool:
    """Ends the processes inside `namespace`, then removes it. True if it existed."""
    end_processes_in(namespace)
    return kernel.remove_netns(namespace)


def run_of(namespace: str, roots: tuple[str, ...]) -> int | None:
    """The PID in `<root><pid>-<role>` for one of `roots`, or None if not so named."""
    for root in roots:
        if namespace.startswith(root):
            pid, sep, _ = namespace[len(root):].partition("-")
            if sep and pid.isdigit():
                return int(pid)
    return None


def dead_bench_lab(lab: str) -> bool:
    """True for a lab `bgw-<pid>` (BENCH_LAB_ROOT) whose benchmark process no longer runs."""
    pid = lab[len(BENCH_LAB_ROOT):]
    return lab.startswith(BENCH_LAB_ROOT) and pid.isdigit() and not _running(int(pid))


def remove_runs(roots: tuple[str, ...], only_dead: bool = False) -> list[str]:
    """Removes every namespace `<root><pid>-…` of `roots` (with `only_dead`, only those
    whose process no longer runs) and returns their names."""
    removed = []
    for name in kernel.list_netns():
        pid = run_of(name, roots)
        if pid is None:
            continue
        if only_dead and _running(pid):
            continue
        remove_namespace(name)
        removed.append(name)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
