"""The bench's topology: three namespaces in a line, built with pyroute2, named
`vb-<pid>-…` so that a run's leftovers are told apart from everything else and from
other runs, and removed by name prefix even after the run was killed (`--cleanup`).

    vb-P-gen                        vb-P-fwd                         vb-P-sink
    vb-P-gen 10.0.1.10/24 ──── vb-P-e0   [forwarder]   vb-P-e1 ──── vb-P-sink 10.0.2.20/24
    (generator, clients)       ingress                 egress       (counters, servers)

Every veth has MTU 9001 (an AWS ENI's). The forwarder namespace gets no addresses
here: each data path (paths.py) configures it, so the three paths share the identical
wiring. Links are created inside their namespaces (the pair's peer is put straight
into its namespace), so nothing of the bench ever appears in the root namespace.

Removal: `Topology.remove()` in a `finally`, an atexit hook and SIGTERM/SIGINT/SIGHUP
(turned into SystemExit so the `finally` runs); children are started with
PR_SET_PDEATHSIG so they die with the bench even under SIGKILL; `cleanup()` removes
every `vb-*` namespace and ends the processes still inside one, by PID.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import time

from pyroute2 import IPRoute, netns

from netns_setup import scratch_runs
from netns_setup.nsenter import in_netns_thread

PREFIX_ROOT, AFXDP_PREFIX_ROOT = scratch_runs.RUN_PREFIXES  # bench/afxdp: its own names
MTU = 9001
GEN_IP, SINK_IP = "10.0.1.10", "10.0.2.20"
FWD_IN_IP, FWD_OUT_IP = "10.0.1.1", "10.0.2.1"          # kernel paths only
EP_IP, NLB_IP = "10.0.1.50", "10.0.2.100"               # endpoint ENI, NLB ENI (SNAT)

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def link_index(ipr, ifname: str, wait: float = 5.0) -> int:
    """The link's index, waiting until the kernel shows it (a new veth's peer may take
    a moment to appear in its namespace's dump)."""
    deadline = time.monotonic() + wait
    while True:
        found = ipr.link_lookup(ifname=ifname)
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise RuntimeError(f"link {ifname} did not appear")
        time.sleep(0.02)


def ipr_in(ns: str, fn):
    """Runs `fn(ipr)` with an IPRoute whose socket was opened inside `ns` (from a thread
    that entered it: netns_setup.nsenter.in_netns_thread)."""
    def work():
        with IPRoute() as ipr:
            return fn(ipr)
    return in_netns_thread(ns, work)


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
    """Writes a per-namespace sysctl through /proc/sys, from a thread inside `ns`
    (/proc/sys/net resolves against the writing thread's namespace)."""
    def write() -> None:
        with open(f"/proc/sys/{path}", "w") as f:
            f.write(value)
    in_netns_thread(ns, write)


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
        p = f"{prefix_root}{os.getpid()}-"
        self.prefix = p
        self.gen, self.fwd, self.sink = f"{p}gen", f"{p}fwd", f"{p}sink"
        self.gen_if, self.sink_if = f"{p}gen", f"{p}sink"
        self.e0, self.e1 = f"{p}e0", f"{p}e1"
        self.macs: dict[str, str] = {}

    # -- building -------------------------------------------------------------------------

    def create(self) -> "Topology":
        try:
            for ns in (self.gen, self.fwd, self.sink):
                netns.create(ns)
            self._pair(self.gen, self.gen_if, GEN_IP, self.e0)
            self._pair(self.sink, self.sink_if, SINK_IP, self.e1)
            for ns in (self.gen, self.fwd, self.sink):
                ipr_in(ns, lambda ipr: ipr.link("set", index=link_index(ipr, "lo"), state="up"))
            self.macs = {self.gen_if: self.mac(self.gen, self.gen_if), self.e0: self.mac(self.fwd, self.e0),
                         self.e1: self.mac(self.fwd, self.e1), self.sink_if: self.mac(self.sink, self.sink_if)}
        except BaseException:
            self.remove()
            raise
        return self

    def _pair(self, host_ns: str, host_if: str, host_ip: str, fwd_if: str) -> None:
        def host(ipr) -> None:
            ipr.link("add", ifname=host_if, kind="veth", mtu=MTU,
                     peer={"ifname": fwd_if, "net_ns_fd": self.fwd, "mtu": MTU})
            idx = link_index(ipr, host_if)
            ipr.addr("add", index=idx, address=host_ip, prefixlen=24)
            ipr.link("set", index=idx, state="up")
        ipr_in(host_ns, host)
        ipr_in(self.fwd, lambda ipr: ipr.link("set", index=link_index(ipr, fwd_if), state="up"))

    @staticmethod
    def mac(ns: str, ifname: str) -> str:
        return ipr_in(ns, lambda ipr: ipr.link("get", index=link_index(ipr, ifname))[0].get_attr("IFLA_ADDRESS"))

    def add_addr(self, ns: str, ifname: str, ip: str, prefixlen: int) -> None:
        ipr_in(ns, lambda ipr: ipr.addr("add", index=link_index(ipr, ifname), address=ip, prefixlen=prefixlen))

    def add_default_route(self, ns: str, gateway: str) -> None:
        ipr_in(ns, lambda ipr: ipr.route("add", dst="0.0.0.0/0", gateway=gateway))

    def add_neighbour(self, ns: str, ifname: str, ip: str, mac: str) -> None:
        """A permanent ARP entry, so that no resolution happens inside a measurement."""
        ipr_in(ns, lambda ipr: ipr.neigh("replace", dst=ip, lladdr=mac, state=0x80,  # NUD_PERMANENT
                                         ifindex=link_index(ipr, ifname)))

    def counters(self, ns: str, ifname: str) -> dict[str, int]:
        def read(ipr) -> dict[str, int]:
            stats = ipr.link("get", index=link_index(ipr, ifname))[0].get_attr("IFLA_STATS64")
            return {k: stats[k] for k in ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes",
                                           "rx_dropped", "tx_dropped")}
        return ipr_in(ns, read)

    def set_rps(self, ns: str, ifname: str, cpu_mask: int) -> None:
        """Steers `ifname`'s receive processing to the CPUs of `cpu_mask` (RPS). sysfs
        shows a namespace's devices only when mounted from inside it, so this runs in a
        private mount namespace (unshare -m) that mounts its own sysfs: nothing of the
        host's mounts changes."""
        run_in(ns, ["unshare", "-m", "sh", "-c",
                    f"mount -t sysfs sysfs /sys && echo {cpu_mask:x} > /sys/class/net/{ifname}/queues/rx-0/rps_cpus"])

    # -- removal --------------------------------------------------------------------------

    def remove(self) -> None:
        for ns in (self.gen, self.fwd, self.sink):
            _remove_ns(ns)


def _ns_inode(ns: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return None


def _pids_in(inode: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def _remove_ns(ns: str) -> None:
    """Ends the processes still inside `ns` (by PID: they are the bench's own), then
    removes it; the veths in it go with it."""
    inode = _ns_inode(ns)
    if inode is None:
        return
    pids = _pids_in(inode)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline and _pids_in(inode):
        time.sleep(0.05)
    if ns in netns.listnetns():
        netns.remove(ns)


def leftovers() -> list[str]:
    """Every bench namespace in /run/netns, and any `vb-` link in this namespace."""
    names = [ns for ns in netns.listnetns() if ns.startswith(PREFIX_ROOT)]
    names += [f"link:{name}" for _, name in socket.if_nameindex() if name.startswith(PREFIX_ROOT)]
    return names


def cleanup(only_dead: bool = False) -> list[str]:
    """Removes every `vb-*` (and bench/afxdp's `vx-*`) namespace (with `only_dead`, only
    those of bench processes that no longer run). Root-namespace `vb-` links cannot come
    from the bench; any found is reported, not touched."""
    removed = []
    dead = set(scratch_runs.dead_run_namespaces()) if only_dead else None
    for ns in sorted(netns.listnetns()):
        if not ns.startswith(scratch_runs.RUN_PREFIXES) or (dead is not None and ns not in dead):
            continue
        _remove_ns(ns)
        removed.append(ns)
    return removed


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
