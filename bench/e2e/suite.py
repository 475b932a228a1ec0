"""Runs every figure on every path and gathers the raw numbers (report.py turns them into
results.json, report.md and plots).

Order, per path: a fresh topology (topo.py) and the path's set-up (paths.py); then
latency (quiet first), connections per second, TCP throughput (for the kernel paths
once more with segmentation offload off), packets per second from the fewest flows to
the most, the memory at the most flows (vpclab: once more with the forwarder moved to CPU 0,
the CPU budget the kernel paths get for these figures, see paths.py); then, for new flows, a fresh topology per run, so
every run starts from an empty flow table. Paths run one after another, never at once.
A path measures the figure groups of its `figures` (paths.FIGURES): the VPC-link paths
packets per second and new flows only.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
import traceback

from bench.e2e import measure
from bench.e2e.paths import FIGURES, GEN_CPU, PATHS, KernelPath, VpclabPath, make_path
from bench.e2e.topo import live_topology, write_sysctl


@dataclasses.dataclass
class Settings:
    runs: int = 3
    pps_flows: tuple[int, ...] = (1, 1000, 100_000, 1_000_000)
    pps_seconds: float = 3.0
    new_flows: int = 250_000
    tcp_seconds: int = 5
    tcp_streams: tuple[int, ...] = (1, 4)
    tcp_without_offload: bool = True
    vpclab_one_cpu: bool = True
    ndr_trials: int = 9
    ndr_trial_s: float = 1.5
    cps_seconds: float = 3.0
    latency_count: int = 2000
    latency_interval_s: float = 0.001
    flow_capacity: int = 1 << 21
    paths: tuple[str, ...] = PATHS
    figures: tuple[str, ...] = FIGURES    # the figure groups to measure, where a path has them
    # the vpclab forwarder's rings and polling (forwarderd's spec "io"; {} = its defaults)
    forwarder_io: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def quick(cls) -> "Settings":
        return cls(runs=1, pps_flows=(1, 1000), pps_seconds=1.0, new_flows=20_000, tcp_seconds=1,
                   tcp_without_offload=False, vpclab_one_cpu=False, ndr_trials=3, ndr_trial_s=0.3, cps_seconds=1.0, latency_count=300,
                   latency_interval_s=0.001, flow_capacity=1 << 16)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _gen_sysctls(topo) -> None:
    """The connection-rate client needs many ephemeral ports (generator ns only)."""
    write_sysctl(topo.gen, "net/ipv4/ip_local_port_range", "1024 65000")
    write_sysctl(topo.gen, "net/ipv4/tcp_tw_reuse", "1")


def run_path(name: str, s: Settings, workdir: str) -> dict:
    out: dict = {"figures": {}, "errors": [], "cpu_roles": {}, "latency_samples_us": []}
    figs = out["figures"]

    def keep(key: str, value) -> None:
        figs.setdefault(key, []).append(value)

    def attempt(what: str, fn) -> None:
        try:
            fn()
        except Exception as exc:  # recorded in the report, the run goes on
            log(f"{name}: {what} failed: {exc}")
            out["errors"].append(f"{what}: {exc}\n{traceback.format_exc(limit=3)}")

    with live_topology() as topo:
        measure.sink_drop_udp(topo)
        path = make_path(name, topo, workdir, s.flow_capacity, s.forwarder_io)
        path.setup()
        out["cpu_roles"] = path.cpu_roles()
        groups = [g for g in path.figures if g in s.figures]
        _gen_sysctls(topo)
        try:
            def latency() -> None:
                echo = measure.start_echo(topo)
                try:
                    for _ in range(s.runs):
                        r = measure.measure_latency(topo, path, s.latency_count, s.latency_interval_s)
                        out["latency_samples_us"] += r["rtt_us"]
                        keep("latency", {"p50_us": measure.percentile(r["rtt_us"], 50),
                                         "p99_us": measure.percentile(r["rtt_us"], 99),
                                         "p99.9_us": measure.percentile(r["rtt_us"], 99.9),
                                         "samples": len(r["rtt_us"]), "lost": r["lost"]})
                finally:
                    measure.end(echo)
            if "latency" in groups:
                log(f"{name}: latency")
                attempt("latency", latency)

            def cps() -> None:
                srv = measure.start_cps_server(topo)
                try:
                    for _ in range(s.runs):
                        keep("cps", measure.measure_cps(topo, path, s.cps_seconds))
                finally:
                    measure.end(srv)
            if "cps" in groups:
                log(f"{name}: connections per second")
                attempt("cps", cps)

            def tcp(suffix: str) -> None:
                for streams in s.tcp_streams:
                    for _ in range(s.runs):
                        keep(f"tcp_{streams}{suffix}", measure.measure_tcp(topo, path, streams, s.tcp_seconds))
            if "tcp" in groups:
                log(f"{name}: TCP throughput (segmentation offload {path.offload})")
                attempt("tcp", lambda: tcp(""))
            if "tcp" in groups and s.tcp_without_offload and isinstance(path, KernelPath):
                path.disable_offload()
                log(f"{name}: TCP throughput (segmentation offload off)")
                attempt("tcp without offload", lambda: tcp("_nogso"))

            path.rps(False)      # trafgen cannot take the backpressure of RPS (paths.py)

            def pps_all(suffix: str) -> None:
                for flows in s.pps_flows:
                    log(f"{name}: pps, {flows} flows{suffix}")

                    def pps() -> None:
                        for _ in range(s.runs):
                            keep(f"pps_{flows}{suffix}",
                                 measure.measure_pps(topo, path, workdir, flows, s.pps_seconds))
                    attempt(f"pps {flows} flows{suffix}", pps)
            if "pps" in groups:
                pps_all("")
            if s.ndr_trials and "ndr" in groups:
                for flows in s.pps_flows:
                    log(f"{name}: no-drop-rate search, {flows} flows")

                    def ndr() -> None:
                        full = figs.get(f"pps_{flows}", [])
                        ceiling = max([r["offered_pps"] for r in full] + [1000.0]) * 1.05
                        keep(f"ndr_{flows}", measure.search_no_drop_rate(
                            topo, path, workdir, flows, ceiling, s.ndr_trial_s, s.ndr_trials))
                    attempt(f"no-drop-rate {flows} flows", ndr)
            attempt("memory", lambda: out.__setitem__("memory", path.memory()))
            if isinstance(path, VpclabPath):
                attempt("forwarder stats", lambda: out.__setitem__("forwarder_stats", path.stats()))
                if s.vpclab_one_cpu and name == "vpclab" and "pps" in groups:
                    path.pin(GEN_CPU)
                    pps_all("_cpu0")
                    attempt("forwarder stats (CPU 0)",
                            lambda: out.__setitem__("forwarder_stats_cpu0", path.stats()))
        finally:
            path.stop()

    # the CPU-0-only figures are for the default forwarder: a busy loop sharing the
    # generator's CPU would only take turns with it
    variants = (["", *(["_cpu0"] if name == "vpclab" and s.vpclab_one_cpu else [])]
                if "new_flows" in groups else [])
    for suffix in variants:
        log(f"{name}: new flows per second{suffix}")
        for _ in range(s.runs):
            def new_flows() -> None:
                with live_topology() as topo:
                    measure.sink_drop_udp(topo)
                    path = make_path(name, topo, workdir, s.flow_capacity, s.forwarder_io)
                    path.setup()
                    try:
                        path.rps(False)
                        if suffix:
                            path.pin(GEN_CPU)
                        keep(f"new_flows{suffix}", measure.measure_new_flows(topo, path, workdir, s.new_flows))
                    finally:
                        path.stop()
            attempt(f"new flows{suffix}", new_flows)
    return out


def run(s: Settings) -> dict:
    # The flow table holds the most flows of a pps run, the new-flow runs' and the
    # connections' (a power of two, at least twice the need being the engine's liking).
    need = max(max(s.pps_flows), s.new_flows) + 100_000
    s.flow_capacity = max(s.flow_capacity, 1 << need.bit_length())
    results: dict = {"paths": {}}
    with tempfile.TemporaryDirectory(prefix="vb-bench-") as workdir:
        for name in s.paths:
            t0 = time.monotonic()
            results["paths"][name] = run_path(name, s, workdir)
            results["paths"][name]["seconds"] = time.monotonic() - t0
    return results
