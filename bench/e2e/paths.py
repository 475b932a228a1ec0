"""The data paths, each set up on a fresh Topology (topo.py) in the forwarder namespace
only; generator and sink are the same for all of them. Two translation kinds, each by
the vpclab forwarder and by the kernel:

vpclab         the Hyperplane forwarder (`python -m dataplane.forwarder.daemon`, pinned to CPU 1)
               as a lab runs it; *vpclab-busypoll* the same with busy polling
               (io.busy_poll_us = BUSY_POLL_US): its loop never sleeps while traffic runs.
               on vb-P-e0 (port 0, endpoint ENI 10.0.1.50) and vb-P-e1 (port 1, NLB ENI
               10.0.2.100). No addresses in the namespace: the forwarder answers ARP.
               Segmentation offload stays on: GSO frames and partial checksums go
               through it whole (virtio-net headers on its rings), with vb-P-gen's and
               vb-P-sink's gso_max_size cut to a ring slot (netns_setup/offload.py).
               Its ring geometry and busy polling come from Settings.forwarder_io.
kernel-nat     addresses on e0/e1, ip_forward=1, an nftables ruleset doing the same
               DNAT (endpoint → target) and SNAT (→ NLB address) with conntrack.
kernel-route   addresses on e0/e1, ip_forward=1, no rules: the generator addresses the
               sink directly.
vpclab-vpc-nat the same forwarder with one VPC link (VPC-to-VPC NAT, the spec's
               "vpc_nat" kind) instead of the PrivateLink services: attached on e0 (port
               0, answering for the gateway 10.0.1.1), its one ENI 10.0.2.100 on e1 (port
               1), reaching the sink's subnet 10.0.2.0/24. The generator addresses the sink
               directly; the forwarder keeps the destination and puts the ENI's address
               and a port of its choosing in the source.
kernel-snat    kernel-route's addresses and forwarding plus an nftables ruleset doing the
               same SNAT only (`snat ip to 10.0.2.100` toward 10.0.2.0/24, conntrack).

Services, identical in the two PrivateLink paths (`(client, cport, vip, vport) ⇒ (snat_ip,
snat_port, target, tport)` in vpclab; conntrack's choice of SNAT port in the kernel):

    udp 10.0.1.50:9    ⇒ 10.0.2.20:10000-10031   (pps and new flows: 32 targets, so that
                                                 1,000,000 flows fit the SNAT port pools)
    udp 10.0.1.50:7    ⇒ 10.0.2.20:7             (latency ping-pong)
    tcp 10.0.1.50:5201 ⇒ 10.0.2.20:5201          (iperf3)
    tcp 10.0.1.50:80   ⇒ 10.0.2.20:8080          (connections per second)

In the two VPC-link paths the generator sends its pps and new-flow traffic to
10.0.2.20:10000-10031 itself (`(src, sport, dst, dport) ⇒ (10.0.2.100, snat port, dst,
dport)`): SNAT ports are unique per destination, so the 32 destination ports are what
lets 1,000,000 flows fit the pools here too. These paths measure packets per second and
new flows only (Path.figures).

CPUs: the vpclab forwarder runs on CPU 1, generators, clients and servers on CPU 0. Every
path steers e0's and e1's receive processing to CPU 1 (RPS), so that forwarding (for
vpclab: the copy into its receive rings) runs on CPU 1 too, for TCP, connections and
latency; for the trafgen figures RPS is off
(trafgen exits on the EAGAIN that RPS's backpressure gives it), so the kernel forwards in
the generator's softirq on CPU 0, and vpclab is measured once more with its forwarder
moved to CPU 0 (figures "CPU 0 only") for a like-for-like CPU budget.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from bench.e2e.topo import (EP_IP, FWD_IN_IP, FWD_OUT_IP, LINK_ENI_IP, NLB_IP, SINK_IP, SINK_NET,
                            Topology, popen, read_proc, run_in, write_sysctl)
from dataplane.forwarder.io import max_frame
from netns_setup import nft
from netns_setup.offload import cap_gso_size, disable_segmentation_offload

PATHS = ("vpclab", "vpclab-busypoll", "kernel-nat", "kernel-route", "vpclab-vpc-nat", "kernel-snat")
VPCLAB_PATHS = ("vpclab", "vpclab-busypoll", "vpclab-vpc-nat")
# What suite.py measures, by group; the VPC-link paths run the first two only.
FIGURES = ("pps", "new_flows", "ndr", "latency", "cps", "tcp")
KINDS = ("privatelink", "vpc_nat")
# The busy-polling forwarder reads its rings for this long after the last frame before
# it sleeps: longer than the latency figure's 1 ms between pings, so it never sleeps
# while a figure runs (the spec's io.busy_poll_us; labs run without it).
BUSY_POLL_US = 2000
GEN_CPU, FWD_CPU = 0, 1
UDP_VPORT, ECHO_PORT, IPERF_PORT, CPS_VPORT, CPS_TPORT = 9, 7, 5201, 80, 8080
N_TARGETS, TARGET_PORT0 = 32, 10000
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Path:
    name = ""
    offload = "on"      # segmentation offload on the devices that send into the forwarder ns
    figures = FIGURES
    # The generator addresses the sink itself (no DNAT), at this many UDP ports from
    # TARGET_PORT0 for pps and new flows (measure.py spreads the flows over them).
    addresses_sink = False
    udp_dports = 1

    def __init__(self, topo: Topology, workdir: str) -> None:
        self.topo, self.workdir = topo, workdir

    def take_kind(self, kind: str) -> None:
        """A NAT path translates as PrivateLink (DNAT to the targets behind the endpoint)
        or as a VPC link (SNAT only: the generator addresses the sink, the pps and
        new-flow traffic spread over N_TARGETS destination ports)."""
        if kind not in KINDS:
            raise ValueError(f"unknown service kind {kind!r}: one of {', '.join(KINDS)}")
        self.kind = kind
        if kind == "vpc_nat":
            self.figures, self.addresses_sink, self.udp_dports = ("pps", "new_flows"), True, N_TARGETS

    # where the generator sends, per service
    def udp_dst(self) -> tuple[str, int]:
        return (SINK_IP, TARGET_PORT0) if self.addresses_sink else (EP_IP, UDP_VPORT)

    def echo_dst(self) -> tuple[str, int]:
        return (SINK_IP, ECHO_PORT) if self.addresses_sink else (EP_IP, ECHO_PORT)

    def iperf_dst(self) -> tuple[str, int]:
        return (SINK_IP, IPERF_PORT) if self.addresses_sink else (EP_IP, IPERF_PORT)

    def cps_dst(self) -> tuple[str, int]:
        return (SINK_IP, CPS_TPORT) if self.addresses_sink else (EP_IP, CPS_VPORT)

    def setup(self) -> None:
        raise NotImplementedError

    def rps(self, on: bool) -> None:
        """Steers e0's and e1's receive processing (for vpclab: the copy into the
        forwarder's receive ring) to the forwarder's CPU, or back to the sender's."""
        t = self.topo
        for ifname in (t.e0, t.e1):
            t.set_rps(t.fwd, ifname, 1 << FWD_CPU if on else 0)

    def stop(self) -> None:
        pass

    def flow_count(self) -> int | None:
        return None

    def memory(self) -> dict:
        return {}

    def cpu_roles(self) -> dict[str, str]:
        raise NotImplementedError


class VpclabPath(Path):
    """The forwarder with PrivateLink services (kind "privatelink") or one VPC link
    (kind "vpc_nat") between e0 and e1."""
    name = "vpclab"
    offload = "on (GSO through the forwarder)"

    def __init__(self, topo: Topology, workdir: str, flow_capacity: int,
                 io: dict[str, int] | None = None, kind: str = "privatelink") -> None:
        super().__init__(topo, workdir)
        self.take_kind(kind)
        self.flow_capacity = flow_capacity
        self.io = dict(io or {})
        self.proc: subprocess.Popen | None = None
        self.sock = os.path.join(workdir, f"fwd-{os.getpid()}.sock")
        self.base_rss = 0

    def spec(self) -> dict:
        t = self.topo
        if self.kind == "vpc_nat":
            # the attachment answers for the generator's gateway, the ENI for its address
            names, addrs = ("attachment", "eni"), ([FWD_IN_IP], [LINK_ENI_IP])
            services = [{"name": "vpclink-bench", "kind": "vpc_nat", "in_port": 0, "prefixes": [SINK_NET],
                         "enis": [{"port": 1, "ip": LINK_ENI_IP}], "routes": [{"cidr": SINK_NET, "eni": 0}],
                         "protocols": ["tcp", "udp"], "snat_ports": [1024, 65535], "idle_timeout_s": 350,
                         "mtu": 8500, "mss_clamp": 8460}]
        else:
            flags = {"mtu": 8500, "rst_on_miss": True, "hash_tcp_seq": True}
            tcp = {**flags, "proto": "tcp", "mss_clamp": 8460}
            udp = {"mtu": 8500, "proto": "udp"}
            svc = lambda name, vport, backends, extra: {  # noqa: E731
                "name": name, "in_port": 0, "out_port": 1, "vip": EP_IP, "vport": vport, **extra,
                "backends": [{"ip": SINK_IP, "port": p} for p in backends]}
            names, addrs = ("endpoint", "nlb"), ([EP_IP], [NLB_IP])
            services = [
                svc("vpce-bench/udp9", UDP_VPORT, range(TARGET_PORT0, TARGET_PORT0 + N_TARGETS), udp),
                svc("vpce-bench/udp7", ECHO_PORT, [ECHO_PORT], udp),
                svc("vpce-bench/iperf", IPERF_PORT, [IPERF_PORT], tcp),
                svc("vpce-bench/cps", CPS_VPORT, [CPS_TPORT], tcp),
            ]
        return {
            "flow_capacity": self.flow_capacity,
            "io": self.io,
            "ports": [
                {"id": 0, "name": names[0], "ifname": t.e0, "mac": t.macs[t.e0], "addrs": addrs[0],
                 "peer_mac": t.macs[t.gen_if]},
                {"id": 1, "name": names[1], "ifname": t.e1, "mac": t.macs[t.e1], "addrs": addrs[1],
                 "peer_mac": t.macs[t.sink_if]},
            ],
            "services": services,
        }

    def setup(self) -> None:
        t = self.topo
        for ns, ifname in ((t.gen, t.gen_if), (t.sink, t.sink_if)):
            cap_gso_size(ifname, ns, max_frame(self.io.get("slot_size", 0)))
        # as in a lab: the forwarder's frames do not go on into the namespace's IP stack
        nft.apply(t.fwd, nft.render_ports_capture_only("vb-ports", [t.e0, t.e1]))
        spec_file = os.path.join(self.workdir, "spec.json")
        with open(spec_file, "w") as f:
            json.dump(self.spec(), f)
        self.proc = popen(["taskset", "-c", str(FWD_CPU), sys.executable, "-m", "dataplane.forwarder.daemon",
                           "--spec", spec_file, "--socket", self.sock, "--netns", t.fwd],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"the forwarder did not start: {line} {self.proc.stderr.read()}")
        time.sleep(0.2)
        self.base_rss = rss_bytes(self.proc.pid)
        self.rps(True)

    def pin(self, cpu: int) -> None:
        """Moves every thread of the forwarder (its poll loop included) to `cpu`."""
        for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
            os.sched_setaffinity(int(tid), {cpu})
        self.cpu = cpu

    def stats(self) -> dict:
        from dataplane.forwarder.control import call
        return call(self.sock, "stats")

    def flow_count(self) -> int | None:
        return self.stats()["flows"]

    def memory(self) -> dict:
        stats = self.stats()
        return {"rss_bytes": rss_bytes(self.proc.pid), "rss_before_traffic_bytes": self.base_rss,
                "flows": stats["flows"], "capacity": stats["capacity"],
                "engine_memory_bytes": stats["memory_bytes"]}

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc and self.proc.returncode not in (0, None):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"the forwarder exited with {self.proc.returncode}: {err[-2000:]}")

    def cpu_roles(self) -> dict[str, str]:
        loop = (f"its C loop, busy polling (it reads the rings for {self.io['busy_poll_us']} µs after "
                "the last frame before it sleeps, so it spins while traffic runs)"
                if self.io.get("busy_poll_us") else "its C poll loop")
        roles = {"0": "trafgen, the clients and the sink's servers; for packets per second and new flows "
                      "also the softirq that delivers e0's frames into the forwarder's AF_PACKET receive "
                      "ring (RPS off, as for the kernel paths)",
                 "1": f"the forwarder process (python -m dataplane.forwarder.daemon under taskset -c 1): {loop}, "
                      "the translation, the transmit into e1 and with it the sink's receive softirq; "
                      "for TCP, connections and latency also the delivery into its receive rings, "
                      "steered there by RPS on e0 and e1 as for the kernel paths"}
        if self.name == "vpclab":
            roles["figures marked 'CPU 0 only'"] = (
                "every thread of the forwarder moved to CPU 0 as well (sched_setaffinity), the CPU "
                "budget the kernel paths have for packets per second")
        return roles


class KernelPath(Path):
    nat = False

    def setup(self) -> None:
        t = self.topo
        t.add_addr(t.fwd, t.e0, FWD_IN_IP, 24)
        t.add_addr(t.fwd, t.e1, FWD_OUT_IP, 24)
        t.add_default_route(t.gen, FWD_IN_IP)
        t.add_default_route(t.sink, FWD_OUT_IP)
        write_sysctl(t.fwd, "net/ipv4/ip_forward", "1")
        self.rps(True)

    def disable_offload(self) -> None:
        t = self.topo
        for ns, ifname in ((t.gen, t.gen_if), (t.sink, t.sink_if)):
            disable_segmentation_offload(ifname, ns)
        self.offload = "off"

    def cpu_roles(self) -> dict[str, str]:
        what = "forwarding" + (" and NAT (nftables, conntrack)" if self.nat else "")
        return {"0": f"trafgen, the clients and the sink's servers; for packets per second and new flows also "
                     f"all of the kernel's {what}: a veth transmit runs the receiving side's processing in the "
                     f"sender's softirq, on the sender's CPU",
                "1": f"for TCP, connections and latency: the {what}, steered there by RPS on e0 and e1. "
                     f"RPS is off for the trafgen figures: with it, trafgen's transmit ring meets EAGAIN once "
                     f"CPU 1's backlog fills and trafgen exits (it cannot take backpressure)"}


class KernelNatPath(KernelPath):
    """nftables with conntrack: PrivateLink's DNAT and SNAT (kind "privatelink"), or the
    SNAT of a VPC link only, toward the sink's subnet (kind "vpc_nat")."""
    name = "kernel-nat"
    nat = True

    def __init__(self, topo: Topology, workdir: str, kind: str = "privatelink") -> None:
        super().__init__(topo, workdir)
        self.take_kind(kind)

    def ruleset(self) -> str:
        t = self.topo
        if self.kind == "vpc_nat":
            return f"""
table ip vbnat {{
    chain post {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "{t.e1}" ip daddr {SINK_NET} snat ip to {LINK_ENI_IP}
    }}
}}
"""
        targets = ", ".join(f"{i} : {SINK_IP} . {TARGET_PORT0 + i}" for i in range(N_TARGETS))
        return f"""
table ip vbnat {{
    chain pre {{
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr {EP_IP} udp dport {UDP_VPORT} dnat ip to jhash ip saddr . udp sport mod {N_TARGETS} map {{ {targets} }}
        ip daddr {EP_IP} udp dport {ECHO_PORT} dnat ip to {SINK_IP}:{ECHO_PORT}
        ip daddr {EP_IP} tcp dport {IPERF_PORT} dnat ip to {SINK_IP}:{IPERF_PORT}
        ip daddr {EP_IP} tcp dport {CPS_VPORT} dnat ip to {SINK_IP}:{CPS_TPORT}
    }}
    chain post {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "{t.e1}" ip daddr {SINK_IP} snat ip to {NLB_IP}
    }}
}}
"""

    def setup(self) -> None:
        super().setup()
        t = self.topo
        if self.kind == "privatelink":
            t.add_addr(t.fwd, t.e0, EP_IP, 32)     # answers ARP for the endpoint address
        t.add_addr(t.fwd, t.e1, NLB_IP, 32)        # and for the SNAT address
        run_in(t.fwd, ["nft", "-f", "-"], input=self.ruleset())

    def flow_count(self) -> int | None:
        return int(read_proc(self.topo.fwd, "/proc/sys/net/netfilter/nf_conntrack_count"))

    def memory(self) -> dict:
        count = self.flow_count()
        objsize = conntrack_objsize()
        return {"conntrack_entries": count, "conntrack_object_bytes": objsize,
                "conntrack_max": int(read_proc(self.topo.fwd, "/proc/sys/net/netfilter/nf_conntrack_max"))}


class KernelRoutePath(KernelPath):
    name = "kernel-route"
    addresses_sink = True


def make_path(name: str, topo: Topology, workdir: str, flow_capacity: int,
              forwarder_io: dict[str, int] | None = None) -> Path:
    io = dict(forwarder_io or {})
    makers = {
        "vpclab": lambda: VpclabPath(topo, workdir, flow_capacity, io),
        "vpclab-busypoll": lambda: VpclabPath(topo, workdir, flow_capacity, {**io, "busy_poll_us": BUSY_POLL_US}),
        "vpclab-vpc-nat": lambda: VpclabPath(topo, workdir, flow_capacity, io, kind="vpc_nat"),
        "kernel-nat": lambda: KernelNatPath(topo, workdir),
        "kernel-snat": lambda: KernelNatPath(topo, workdir, kind="vpc_nat"),
        "kernel-route": lambda: KernelRoutePath(topo, workdir),
    }
    if name not in makers:
        raise ValueError(f"unknown path {name!r}: one of {', '.join(PATHS)}")
    path = makers[name]()
    path.name = name
    return path


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def conntrack_objsize() -> int | None:
    """The slab object size of one conntrack entry (read only, from /proc/slabinfo)."""
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                if line.startswith("nf_conntrack "):
                    return int(line.split()[3])
    except OSError:
        pass
    return None
