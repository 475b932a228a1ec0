"""AF_XDP against AF_PACKET on the forwarder's receive side (issue 5): the driver.

    vx-P-gen                       vx-P-fwd                        vx-P-sink
    vx-P-gen 10.0.1.10 ──── vx-P-e0  [xfwd, CPU 1]  vx-P-e1 ──── vx-P-sink 10.0.2.20
    trafgen, CPU 0              in                      out          rx counter, nft drop

Builds xfwd.c (gcc -O2 -Wall -Wextra -Werror, libxdp + libbpf), then for each mode and
run: a fresh three-namespace topology (veths of MTU 9001, made inside their namespaces,
names `vx-<pid>-…`), xfwd in the forwarder namespace under `taskset -c 1`, trafgen in the
generator namespace under `taskset -c 0` sending one UDP flow of 60-byte frames (64 with
an FCS) at full speed from its TX_RING, stopped by `timeout` and by trafgen's own -n.
After a warm-up second, the counters are read over a window (--seconds): delivered = the
sink veth's rx_packets, offered = the generator veth's tx_packets, the forwarder's CPU
from /proc/<pid>/stat, both CPUs' busy share from /proc/stat. The sink drops the frames
at its nft netdev ingress hook (already counted by then).

Everything made is removed in a `finally`, an atexit hook and on SIGINT/SIGTERM/SIGHUP;
children get PR_SET_PDEATHSIG; processes are ended by the PIDs this script started, never
by name. The root namespace is never changed. At the end the script checks that no
`vx-` namespace or link is left.

    sudo .venv/bin/python bench/afxdp/run.py                 # 3 runs × 5 modes, 5 s windows
    sudo .venv/bin/python bench/afxdp/run.py --rate 200000   # paced: CPU per frame at one rate
    sudo .venv/bin/python bench/afxdp/run.py --modes afpacket,xdp-drv --runs 1
    sudo .venv/bin/python bench/afxdp/run.py --jumbo         # the MTU-9001 / multi-buffer checks
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
# the same generator → forwarder → sink shape as bench/e2e, under this script's prefix
from bench.e2e import topo as e2e_topo  # noqa: E402
from bench.e2e.topo import GEN_IP, SINK_IP, die_with_parent, run_in, stop_group  # noqa: E402
from bench.e2e.topo import in_ns_argv as ns_argv  # noqa: E402
from netns_setup.nsenter import in_netns_thread  # noqa: E402

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build"
UDP_PORT = 9
GEN_CPU, FWD_CPU = 0, 1
CLK_TCK = os.sysconf("SC_CLK_TCK")

# mode name -> xfwd arguments. Driver-mode XDP on a veth whose peer has MTU 9001 needs a
# program that declares frags support (veth: "Peer MTU is too large to set XDP"
# otherwise), hence --frags (and XDP_USE_SG on the socket) for the xdp-drv modes.
MODES = {
    "afpacket": ["--rx", "afpacket", "--tx", "afpacket"],
    "xdp-drv": ["--rx", "xdp-drv", "--tx", "afpacket", "--frags"],
    "xdp-skb": ["--rx", "xdp-skb", "--tx", "afpacket"],
    "xdp-drv+xsk-tx": ["--rx", "xdp-drv", "--tx", "xsk", "--frags"],
    "xdp-drv-ring256": ["--rx", "xdp-drv", "--tx", "afpacket", "--frags", "--ring", "256"],
    # AF_PACKET as hp_io, plus an nft netdev ingress drop on e0: the packet tap has
    # copied the frame by then, so the kernel's IP layer no longer sees (and drops) it.
    "afpacket+ingress-drop": ["--rx", "afpacket", "--tx", "afpacket"],
}

def build() -> Path:
    BUILD.mkdir(exist_ok=True)
    out = BUILD / "xfwd"
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(HERE / "xfwd.c"),
                    "-lxdp", "-lbpf"], check=True)
    return out


class Topology(e2e_topo.Topology):
    """bench/e2e's topology named `vx-<pid>-…`, whose sink drops the test traffic at its
    nft netdev ingress hook (counted by the veth by then)."""

    def __init__(self) -> None:
        super().__init__(prefix_root=e2e_topo.AFXDP_PREFIX_ROOT)

    def create(self) -> "Topology":
        super().create()
        try:
            run_in(self.sink, ["nft", "-f", "-"], input=f"""
table netdev vxsink {{
    chain in {{
        type filter hook ingress device "{self.sink_if}" priority 0; policy accept;
        udp dport {UDP_PORT} drop
    }}
}}
""")
        except BaseException:
            self.remove()
            raise
        return self


# ---- processes ----------------------------------------------------------------------------

STARTED: list[subprocess.Popen] = []


def popen(argv: list[str], **kw) -> subprocess.Popen:
    p = subprocess.Popen(argv, preexec_fn=die_with_parent, start_new_session=True, **kw)
    STARTED.append(p)
    return p


end = stop_group  # ends a process this script started, and its group


def wait_ready(p: subprocess.Popen, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stderr], [], [], 0.2)
        if r:
            chunk = os.read(p.stderr.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                if line.startswith("READY"):
                    return line
        if p.poll() is not None:
            break
    rest = p.stderr.read() if p.poll() is not None else b""
    raise RuntimeError(f"xfwd did not start: {(buf + rest).decode(errors='replace').strip()}")


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def cpu_busy() -> dict[int, tuple[int, int, int]]:
    """(busy, steal, total) jiffies per CPU from /proc/stat; busy is user + nice + system
    + irq + softirq, steal (time the hypervisor gave other guests) apart."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *vals = line.split()
                v = [int(x) for x in vals[:8]]  # user nice system idle iowait irq softirq steal
                out[int(name[3:])] = (v[0] + v[1] + v[2] + v[5] + v[6], v[7], sum(v))
    return out


def ksoftirqd_pids() -> dict[int, int]:
    """CPU -> PID of its ksoftirqd thread (softirq work deferred there is not charged to
    the process that raised it)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                comm = open(f"/proc/{entry}/comm").read().strip()
            except OSError:
                continue
            if comm.startswith("ksoftirqd/"):
                out[int(comm.split("/")[1])] = int(entry)
    return out


def trafgen_cfg(topo: Topology, frame_len: int) -> str:
    fill = frame_len - 14 - 20 - 8
    return (f"{{ eth(da={topo.macs[topo.e0]}, sa={topo.macs[topo.gen_if]}),\n"
            f"  ipv4(sa={GEN_IP}, da={SINK_IP}, ttl=64),\n"
            f"  udp(sp=1024, dp={UDP_PORT}),\n"
            f"  fill(0x00, {fill}) }}\n")


def start_trafgen(topo: Topology, cfg: Path, seconds: float, count: int, rate: str | None = None):
    argv = ["timeout", "-s", "INT", "-k", "2", str(seconds), "trafgen", "--no-sock-mem", "--notouch-irq",
            "--no-cpu-stats", "-P", "1", "-i", str(cfg), "-o", topo.gen_if, "-n", str(count)]
    if rate:
        argv += ["-b", rate]
    return popen(ns_argv(topo.gen, argv, GEN_CPU), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# ---- one measurement -----------------------------------------------------------------------

def measure(xfwd: Path, mode: str, window: float, workdir: Path, frame_len: int = 60,
            extra: list[str] | None = None, rate: str | None = None, warm: float = 1.0) -> dict:
    topo = Topology().create()
    fwd = tg = None
    try:
        if mode == "afpacket+ingress-drop":
            run_in(topo.fwd, ["nft", "-f", "-"], input=f"""
table netdev vxfwd {{
    chain in {{
        type filter hook ingress device "{topo.e0}" priority 0; policy drop;
    }}
}}
""")
        cfg = workdir / f"trafgen-{frame_len}.cfg"
        cfg.write_text(trafgen_cfg(topo, frame_len))
        total = warm + window + 3
        fwd = popen(ns_argv(topo.fwd, [str(xfwd), "--in", topo.e0, "--out", topo.e1,
                                       "--dst-mac", topo.macs[topo.sink_if], "--seconds", str(total + 2),
                                       *MODES[mode], *(extra or [])], FWD_CPU),
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ready = wait_ready(fwd)
        tg = start_trafgen(topo, cfg, warm + window + 1, count=int(3e6 * total), rate=rate)
        time.sleep(warm)
        if tg.poll() is not None:
            raise RuntimeError(f"trafgen ended early: {tg.stderr.read().decode(errors='replace')[-400:]}")
        g0, e0_0, s0 = (topo.counters(topo.gen, topo.gen_if), topo.counters(topo.fwd, topo.e0),
                        topo.counters(topo.sink, topo.sink_if))
        ks = ksoftirqd_pids()
        k0 = {cpu: proc_cpu_s(pid) for cpu, pid in ks.items()}
        c0, b0, t0 = proc_cpu_s(fwd.pid), cpu_busy(), time.monotonic()
        time.sleep(window)
        g1, e0_1, s1 = (topo.counters(topo.gen, topo.gen_if), topo.counters(topo.fwd, topo.e0),
                        topo.counters(topo.sink, topo.sink_if))
        c1, b1, t1 = proc_cpu_s(fwd.pid), cpu_busy(), time.monotonic()
        k1 = {cpu: proc_cpu_s(pid) for cpu, pid in ks.items()}
        end(tg)
        end(fwd, signal.SIGINT, timeout=10)
        out, err = fwd.communicate(timeout=5)
        lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
        stats = json.loads(lines[-1]) if lines else {"error": err.decode(errors="replace")[-400:]}
        dt = t1 - t0
        sent, got = g1["tx_packets"] - g0["tx_packets"], s1["rx_packets"] - s0["rx_packets"]
        busy = {cpu: 100.0 * (b1[cpu][0] - b0[cpu][0]) / max(1, b1[cpu][2] - b0[cpu][2]) for cpu in b1}
        steal = {cpu: 100.0 * (b1[cpu][1] - b0[cpu][1]) / max(1, b1[cpu][2] - b0[cpu][2]) for cpu in b1}
        return {"mode": mode, "ready": ready, "frame_len": frame_len, "window_s": round(dt, 3),
                "offered_pps": sent / dt, "delivered_pps": got / dt,
                "loss": (1 - got / sent) if sent else None,
                "gen_tx_dropped": g1["tx_dropped"] - g0["tx_dropped"],
                "e0_rx": e0_1["rx_packets"] - e0_0["rx_packets"],
                "e0_rx_dropped": e0_1["rx_dropped"] - e0_0["rx_dropped"],
                "fwd_cpu_pct": 100.0 * (c1 - c0) / dt,
                "cpu_busy_pct": {str(k): round(v, 1) for k, v in busy.items()},
                "cpu_steal_pct": {str(k): round(v, 1) for k, v in steal.items()},
                "ksoftirqd_pct": {str(k): round(100.0 * (k1[k] - k0[k]) / dt, 1) for k in k0},
                "xfwd": stats}
    finally:
        for p in (tg, fwd):
            if p is not None:
                end(p, signal.SIGKILL)
        topo.remove()


def features(ns: str, ifname: str, names: list[str]) -> dict[str, bool]:
    """The named offload features of `ifname` (pyroute2's ethtool, from inside `ns`)."""
    from pyroute2.ethtool import Ethtool

    def read() -> dict[str, bool]:
        e = Ethtool()
        try:
            fs = e.get_features(ifname).features
            return {n: fs[n].enable for n in names if n in fs}
        finally:
            e.close()
    return in_netns_thread(ns, read)


def attach_features(xfwd: Path, mode: str) -> dict:
    """Which offloads the generator's veth (e0's peer) keeps while xfwd runs in `mode`:
    attaching driver-mode XDP to a veth changes its peer's features."""
    topo = Topology().create()
    p = None
    try:
        p = popen(ns_argv(topo.fwd, [str(xfwd), "--in", topo.e0, "--out", topo.e1, "--dst-mac",
                                     topo.macs[topo.sink_if], "--seconds", "2", *MODES[mode]]),
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_ready(p)
        return {"generator veth": features(topo.gen, topo.gen_if, ["tx-checksum-ip-generic", "tx-tcp-segmentation",
                                                                    "tx-generic-segmentation"]),
                "e0": features(topo.fwd, topo.e0, ["rx-checksum", "rx-gro"])}
    finally:
        if p is not None:
            end(p, signal.SIGKILL)
        topo.remove()


def attach_only(xfwd: Path, mode: str, extra: list[str]) -> str:
    """Starts xfwd in `mode` on a fresh MTU-9001 topology and returns its READY line or
    its error (what the kernel says about XDP on a jumbo veth)."""
    topo = Topology().create()
    p = None
    try:
        p = popen(ns_argv(topo.fwd, [str(xfwd), "--in", topo.e0, "--out", topo.e1, "--dst-mac",
                                     topo.macs[topo.sink_if], "--seconds", "1", *MODES[mode], *extra]),
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            return wait_ready(p)
        except RuntimeError as e:
            return str(e)
    finally:
        if p is not None:
            end(p, signal.SIGKILL)
        topo.remove()


# ---- reporting ------------------------------------------------------------------------------

def us(r: dict, cpu: str) -> float:
    """Microseconds of CPU `cpu` (whatever ran there: trafgen and the receive softirq on
    CPU 0, the forwarder and the sink's receive on CPU 1) per frame delivered."""
    return 1e4 * r["cpu_busy_pct"][cpu] / max(1.0, r["delivered_pps"])


def summarize(results: list[dict]) -> str:
    rows = ["| mode | XDP attach | delivered pps, median (min–max) | offered pps, median | loss, median (min–max) "
            "| forwarder CPU %, median | CPU 0 / CPU 1 busy %, median | CPU 0 / CPU 1 µs per delivered frame |",
            "|---|---|---|---|---|---|---|---|"]
    for mode in dict.fromkeys(r["mode"] for r in results):
        rs = [r for r in results if r["mode"] == mode and "delivered_pps" in r]
        if not rs:
            continue
        d = [r["delivered_pps"] for r in rs]
        loss = [100 * r["loss"] for r in rs if r["loss"] is not None]
        c0 = statistics.median(r["cpu_busy_pct"]["0"] for r in rs)
        c1 = statistics.median(r["cpu_busy_pct"]["1"] for r in rs)
        rows.append(f"| {mode} | {rs[0]['xfwd'].get('attach', '?')} | {statistics.median(d):,.0f} "
                    f"({min(d):,.0f}–{max(d):,.0f}) | {statistics.median(r['offered_pps'] for r in rs):,.0f} "
                    f"| {statistics.median(loss):.1f} % ({min(loss):.1f}–{max(loss):.1f}) "
                    f"| {statistics.median(r['fwd_cpu_pct'] for r in rs):.0f} | {c0:.0f} / {c1:.0f} "
                    f"| {statistics.median(us(r, '0') for r in rs):.2f} / {statistics.median(us(r, '1') for r in rs):.2f} |")
    return "\n".join(rows)


def leftovers() -> list[str]:
    left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
            if n.startswith("vx-")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    left += [ln.split(":")[1].strip() for ln in links.splitlines() if " vx-" in ln]
    return left


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", default="afpacket,xdp-drv,xdp-skb,xdp-drv+xsk-tx,xdp-drv-ring256")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0, help="measurement window per run (≤ 8)")
    ap.add_argument("--rate", type=int, default=0,
                    help="pace trafgen at this many pps (its sendto mode) instead of full speed, "
                         "to compare CPU per frame at one offered rate")
    ap.add_argument("--jumbo", action="store_true", help="the MTU-9001 / multi-buffer checks instead")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (namespaces, XDP)")
    if not 0 < args.seconds <= 8:
        sys.exit("--seconds must be in (0, 8]")
    modes = args.modes.split(",")
    for m in modes:
        if m not in MODES:
            sys.exit(f"unknown mode {m}; known: {', '.join(MODES)}")

    def on_signal(sig, _frame):
        raise SystemExit(128 + sig)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    def cleanup() -> None:
        for p in STARTED:
            end(p, signal.SIGKILL, timeout=2)
        Topology().remove()
    atexit.register(cleanup)

    xfwd = build()
    workdir = BUILD
    record: dict = {"kernel": os.uname().release, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "window_s": args.seconds, "runs": args.runs, "paced_pps": args.rate or None}
    try:
        if args.jumbo:
            record["attach"] = {
                "xdp-drv, no frags": attach_only(xfwd, "xdp-drv", ["--no-frags"]),
                "xdp-drv, frags (BPF_F_XDP_HAS_FRAGS + XDP_USE_SG)": attach_only(xfwd, "xdp-drv", []),
                "xdp-skb, no frags": attach_only(xfwd, "xdp-skb", []),
                "xdp-skb, frags": attach_only(xfwd, "xdp-skb", ["--frags"]),
            }
            for k, v in record["attach"].items():
                print(f"{k}: {v}", flush=True)
            record["features"] = {m: attach_features(xfwd, m) for m in ("afpacket", "xdp-drv", "xdp-skb")}
            print(json.dumps(record["features"]), flush=True)
            runs = []
            for mode, extra in (("afpacket", []), ("xdp-drv", []), ("xdp-skb", []), ("xdp-skb", ["--frags"])):
                try:
                    r = measure(xfwd, mode, 2.0, workdir, frame_len=8000, extra=extra, rate="20000pps", warm=0.5)
                    r["mode"] = mode + (" --frags" if extra or mode.startswith("xdp-drv") else "")
                except RuntimeError as e:
                    r = {"mode": mode + (" --frags" if extra else ""), "error": str(e)}
                runs.append(r)
                print(json.dumps(r), flush=True)
            record["jumbo_8000_byte_frames"] = runs
            out = Path(args.out).with_name("results-jumbo.json")
        else:
            results = []
            for i in range(args.runs):
                for mode in modes:
                    r = measure(xfwd, mode, args.seconds, workdir,
                                rate=f"{args.rate}pps" if args.rate else None)
                    r["run"] = i + 1
                    r["paced_pps"] = args.rate or None
                    results.append(r)
                    x = r["xfwd"]
                    print(f"run {i + 1} {mode:16s} delivered {r['delivered_pps']:>10,.0f} pps  offered "
                          f"{r['offered_pps']:>10,.0f}  loss {100 * (r['loss'] or 0):5.1f} %  fwd cpu "
                          f"{r['fwd_cpu_pct']:5.1f} %  cpu {r['cpu_busy_pct']} steal {r['cpu_steal_pct']} "
                          f"ksoftirqd {r['ksoftirqd_pct']}  rx_drops "
                          f"{x.get('rx_ring_drops')} xsk {x.get('xsk_rx')} tx_full {x.get('tx_ring_full')}",
                          flush=True)
            record["results"] = results
            record["table"] = summarize(results)
            print(record["table"])
            out = Path(args.out)
            if args.rate and args.out == str(HERE / "results.json"):
                out = HERE / f"results-paced-{args.rate}.json"
        record["load_average"] = open("/proc/loadavg").read().split()[:3]
        out.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {out}")
    finally:
        cleanup()
        left = leftovers()
        print("leftovers:", left or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
