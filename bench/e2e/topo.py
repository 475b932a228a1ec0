"""The bench's topology: three namespaces in a line, built with pyroute2, named
`vb-<pid>-…` so that a run's leftovers are told apart from everything else and from
other runs, and removed by name prefix even after the run was killed (`--cleanup`).

    vb-P-gen                        vb-P-fwd                         vb-P-sink
    vb-P-gen 10.0.1.10/24 ──── vb-P-e0   [forwarder]   vb-P-e1 ──── vb-P-sink 10.0.2.20/24
    (generator, clients)       ingress                 egress       (counters, servers)

Every veth has MTU 9001 (an AWS ENI's). The forwarder namespace gets no addresses
here: each data path (paths.py) configures it, so the three paths share the identical
wiring. The namespaces, veths, addresses, routes and neighbours are made by
netns_setup/scratch.py's builder (the one the forwarder's root tests use too): links are
created inside their namespaces, so nothing of the bench ever appears in the root
namespace.

Removal: `Topology.remove()` in a `finally`, an atexit hook and SIGTERM/SIGINT/SIGHUP
(turned into SystemExit so the `finally` runs); children are started with
PR_SET_PDEATHSIG so they die with the bench even under SIGKILL; `cleanup()` removes
every `vb-<pid>-*` namespace and ends the processes still inside one, by PID.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess

from netns_setup import kernel
from netns_setup.nsenter import in_netns_thread, write_sysctls
from netns_setup.scratch import BENCH_RUN_ROOTS, Scratch, remove_runs

PREFIX_ROOT, AFXDP_PREFIX_ROOT = BENCH_RUN_ROOTS[:2]   # bench/afxdp: the same shape, its own names
MTU = 9001
GEN_IP, SINK_IP = "10.0.1.10", "10.0.2.20"
FWD_IN_IP, FWD_OUT_IP = "10.0.1.1", "10.0.2.1"          # kernel paths only
EP_IP, NLB_IP = "10.0.1.50", "10.0.2.100"               # endpoint ENI, NLB ENI (SNAT)
SINK_NET = "10.0.2.0/24"                                # the VPC-link paths reach it
LINK_ENI_IP = NLB_IP               # the VPC link's ENI (SNAT source) sits where the NLB's does

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn for every child: killed when the bench's process ends, however."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def popen(argv: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen(argv, preexec_fn=die_with_parent, **kw)


def in_ns_argv(ns: str, argv: list[str], cpu: int | None = None) -> list[str]:
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return ["nsenter", f"--net=/run/netns/{ns}", *pin, *argv]


def run_in(ns: str, argv: list[str], timeout: float = 60, check: bool = True,
           input: str | None = None, cpu: int | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run(in_ns_argv(ns, argv, cpu), capture_output=True, text=True,
                         timeout=timeout, input=input, preexec_fn=die_with_parent)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}… in {ns} failed ({out.returncode}): {out.stderr.strip()}")
    return out


def write_sysctl(ns: str, path: str, value: str) -> None:
    """Writes the per-namespace sysctl /proc/sys/`path` (e.g. net/ipv4/ip_forward) in `ns`."""
    write_sysctls(ns, {path.replace("/", "."): value})


def read_proc(ns: str, path: str) -> str:
    def read() -> str:
        with open(path) as f:
            return f.read()
    return in_netns_thread(ns, read)


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 5) -> None:
    """Ends a process this bench started and its process group (trafgen forks its
    sender): `sig` to the group of the child we started, by its PID, then SIGKILL if it
    lingers, and SIGKILL once more for a forked child that should outlive it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        except ProcessLookupError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Topology:
    """generator → forwarder → sink, named `<prefix_root><pid>-…` (the AF_XDP experiment
    in bench/afxdp builds the same shape under its own prefix)."""

    def __init__(self, tag: str = "", prefix_root: str = PREFIX_ROOT) -> None:
        self.scratch = Scratch(prefix_root)
        p = self.prefix = self.scratch.prefix
        self.gen, self.fwd, self.sink = (self.scratch.name(r) for r in ("gen", "fwd", "sink"))
        self.gen_if, self.sink_if = f"{p}gen", f"{p}sink"
        self.e0, self.e1 = f"{p}e0", f"{p}e1"
        self.macs: dict[str, str] = {}

    # -- building -------------------------------------------------------------------------

    def create(self) -> "Topology":
        with self.scratch.undone_on_failure() as s:
            for role in ("gen", "fwd", "sink"):
                s.namespace(role)
            s.veth(self.gen, self.gen_if, self.fwd, self.e0, mtu=MTU)
            s.veth(self.sink, self.sink_if, self.fwd, self.e1, mtu=MTU)
            s.address(self.gen, self.gen_if, GEN_IP, 24)
            s.address(self.sink, self.sink_if, SINK_IP, 24)
            self.macs = {self.gen_if: self.mac(self.gen, self.gen_if), self.e0: self.mac(self.fwd, self.e0),
                         self.e1: self.mac(self.fwd, self.e1), self.sink_if: self.mac(self.sink, self.sink_if)}
        return self

    @staticmethod
    def mac(ns: str, ifname: str) -> str:
        return kernel.link_mac(ns, ifname)

    def add_addr(self, ns: str, ifname: str, ip: str, prefixlen: int) -> None:
        self.scratch.address(ns, ifname, ip, prefixlen)

    def add_default_route(self, ns: str, gateway: str) -> None:
        self.scratch.route(ns, "0.0.0.0/0", gateway=gateway)

    def add_neighbour(self, ns: str, ifname: str, ip: str, mac: str) -> None:
        """A permanent ARP entry, so that no resolution happens inside a measurement."""
        self.scratch.neighbour(ns, ifname, ip, mac)

    def counters(self, ns: str, ifname: str) -> dict[str, int]:
        stats = kernel.link_stats(ns, ifname)
        return {k: stats[k] for k in ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes",
                                      "rx_dropped", "tx_dropped")}

    def set_rps(self, ns: str, ifname: str, cpu_mask: int) -> None:
        """Steers `ifname`'s receive processing to the CPUs of `cpu_mask` (RPS). sysfs
        shows a namespace's devices only when mounted from inside it, so this runs in a
        private mount namespace (unshare -m) that mounts its own sysfs: nothing of the
        host's mounts changes."""
        run_in(ns, ["unshare", "-m", "sh", "-c",
                    f"mount -t sysfs sysfs /sys && echo {cpu_mask:x} > /sys/class/net/{ifname}/queues/rx-0/rps_cpus"])

    # -- removal --------------------------------------------------------------------------

    def remove(self) -> None:
        """Ends the processes left inside the namespaces (by PID), removes them."""
        self.scratch.remove()


def leftovers() -> list[str]:
    """Every bench namespace in /run/netns, and any `vb-` link in this namespace."""
    names = [ns for ns in kernel.list_netns() if ns.startswith(PREFIX_ROOT)]
    names += [f"link:{name}" for _, name in socket.if_nameindex() if name.startswith(PREFIX_ROOT)]
    return names


def cleanup(only_dead: bool = False) -> list[str]:
    """Removes every `vb-<pid>-*` (and bench/afxdp's `vx-<pid>-*`, bench/apigw's
    `vg-<pid>-*`) namespace (with
    `only_dead`, only those of bench processes that no longer run). Root-namespace `vb-`
    links cannot come from the bench; any found is reported, not touched."""
    return remove_runs(BENCH_RUN_ROOTS, only_dead=only_dead)


_live: list[Topology] = []


def _on_signal(signum, frame) -> None:
    raise SystemExit(128 + signum)


def install_handlers() -> None:
    """Removes live topologies at exit and on SIGTERM/SIGINT/SIGHUP."""
    atexit.register(lambda: [t.remove() for t in list(_live)])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)


class live_topology:
    """`with live_topology() as topo:` — created, registered for the exit hooks, removed."""
    def __enter__(self) -> Topology:
        self.topo = Topology().create()
        _live.append(self.topo)
        return self.topo

    def __exit__(self, *exc) -> None:
        try:
            self.topo.remove()
        finally:
            _live.remove(self.topo)
