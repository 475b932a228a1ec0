"""Turns the suite's raw numbers into results.json (every raw figure and the machine),
report.md (tables of figures and ratios, notes on method) and PNG plots."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time

from bench.e2e.paths import PATHS, VPCLAB_PATHS

# figure key → (title, unit, how to get the value from one raw run, higher is better)
def _figure_defs(raw: dict) -> list[tuple[str, str, str, object, bool]]:
    keys = set()
    for p in raw["paths"].values():
        keys |= set(p["figures"])
    defs = []
    def pps_key(k: str) -> tuple[int, bool]:
        parts = k.split("_")
        return int(parts[1]), k.endswith("_cpu0")
    for k in sorted((k for k in keys if k.startswith("pps_")), key=pps_key):
        n, cpu0 = pps_key(k)
        defs.append((k, f"packets/s, 64-byte UDP, {n:,} flows (delivered at full offer)"
                        + (", CPU 0 only" if cpu0 else ""), "pps", lambda r: r["delivered_pps"], True))
    for k in sorted((k for k in keys if k.startswith("ndr_")), key=lambda k: int(k[4:])):
        n = int(k[4:])
        defs.append((k + "_zero", f"packets/s at zero loss, {n:,} flows (binary search, paced)", "pps",
                     lambda r: r["zero_loss_pps"], True))
        defs.append((k + "_half", f"packets/s at ≤ 0.5 % loss, {n:,} flows (binary search, paced)", "pps",
                     lambda r: r["half_percent_loss_pps"], True))
    for k in ("new_flows", "new_flows_cpu0"):
        if k in keys:
            defs.append((k, "new flows/s (every packet a new 5-tuple)" + (", CPU 0 only" if k.endswith("cpu0") else ""),
                         "flows/s", lambda r: r["new_flows_per_s"], True))
    for k in sorted(k for k in keys if k.startswith("tcp_")):
        parts = k.split("_")
        off = ("the kernel paths with segmentation offload off (vpclab: the row above)"
               if k.endswith("_nogso") else "segmentation offload on")
        defs.append((k, f"TCP throughput, iperf3, {parts[1]} stream(s), {off}", "Gbit/s",
                     lambda r: r["bits_per_second"] / 1e9, True))
    if "cps" in keys:
        defs.append(("cps", "TCP connections/s (open, one request, close)", "conn/s",
                     lambda r: r["per_second"], True))
    if "latency" in keys:
        for q in ("p50", "p99", "p99.9"):
            defs.append((f"latency_{q}", f"UDP ping-pong round trip {q}", "µs",
                         (lambda q: lambda r: r[f"{q}_us"])(q), False))
    return defs


def alias(key: str, path: str) -> str:
    """The figure a path's run stands for when it has no run of its own under `key`:
    vpclab runs TCP once, with segmentation offload carried through the forwarder (its
    figure stands beside the kernel's '_nogso' ones too), and the kernel paths' trafgen
    figures are all on CPU 0 already."""
    if key.endswith("_nogso") and path in VPCLAB_PATHS:
        return key[: -len("_nogso")]
    if key.endswith("_cpu0") and path not in VPCLAB_PATHS:
        return key[: -len("_cpu0")]
    return key


def _stats(values: list[float]) -> dict:
    v = sorted(values)
    return {"runs": values, "median": v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2,
            "min": v[0], "max": v[-1]}


METHOD = """\
* **Topology**: three namespaces, generator → forwarder → sink, two veth pairs, MTU 9001,
  built afresh for each path (and for each new-flow run) with pyroute2; names `vb-<pid>-…`.
  Everything runs inside them; the root namespace is not changed.
* **Paths**: *vpclab* = `python -m dataplane.forwarder.daemon` on the two forwarder-side veths
  (AF_PACKET TPACKET_V2 rings), PrivateLink DNAT+SNAT (endpoint 10.0.1.50 → NLB 10.0.2.100
  → target 10.0.2.20), services with rst_on_miss, hash_tcp_seq, MTU 8500, MSS clamp 8460;
  *kernel-nat* = ip_forward and an nftables ruleset doing the same DNAT (jhash over 32
  target ports for the pps service, as the engine's Maglev over 32 backends) and SNAT
  with conntrack; *kernel-route* = ip_forward, no rules, the generator addresses the sink.
  *vpclab-vpc-nat* = the same forwarder with one VPC link (VPC-to-VPC NAT) instead:
  attached on the generator's side, one link ENI 10.0.2.100 on the sink's, prefix
  10.0.2.0/24; the generator addresses the sink (destination kept), the forwarder puts
  the ENI's address and a port of its own in the source. *kernel-snat* = kernel-route
  plus the same SNAT only, `snat ip to 10.0.2.100` with conntrack. Both send the pps and
  new-flow traffic to 32 destination ports (10.0.2.20:10000-10031), as the PrivateLink
  paths reach 32 targets, so that 1,000,000 flows fit the SNAT port pools (ports are
  unique per destination); they measure packets per second and new flows only.
* **Segmentation offload**: on for every path. The vpclab forwarder carries GSO frames
  and partial checksums through (virtio-net headers on its AF_PACKET rings), with the
  generator's and sink's gso_max_size cut to a ring slot (65,460 bytes with the default
  64 KiB slots; netns_setup/offload.py). TCP throughput is measured on the kernel paths
  once more with offload off, as they compare with a forwarder that cuts every segment.
* **Forwarder ports**: an nftables netdev ingress rule drops the port frames once the
  forwarder's packet sockets have them, so the forwarder namespace's IPv4 stack does not
  process them too (as in a lab).
* **Packets per second**: trafgen, 60-byte frames (64 with an FCS), flows by source
  address × source port; every flow is sent once before the window (established flows),
  then trafgen sends at full speed from its TX_RING and the sink's rx counter is read over
  a window of the run: the **delivered rate at full offer**. Offered rate and loss per
  run are in results.json.
* **Zero-loss and 0.5 %-loss rates**: an RFC 2544-style binary search of the offered
  rate, both thresholds at once, 9 trials of 1.5 s each (a fixed packet count, paced with
  trafgen -b, loss = sink rx / generator tx by counters). trafgen paces only in its
  sendto mode, which tops out near 340 kpps on this VM, so a path that carries more shows
  the generator's ceiling; the search runs once per path and flow count (not repeated).
  A trial's single lost packet counts, so on a shared 2-vCPU machine the zero-loss rate
  is the noisiest figure here.
* **The kernel NAT's 1,000,000 flows** exceed nf_conntrack_max (262,144 here, a
  root-namespace setting the bench does not change). Conntrack then evicts unreplied
  entries to admit new ones (early drop), so packets still pass but many create an entry:
  that figure is closer to a flow-churn rate than to established flows.
* **Backpressure**: in the kernel paths the forwarding runs inside trafgen's own transmit
  call on CPU 0 (RPS off, see below), so an overloaded kernel path slows the generator
  down instead of dropping: its offered rate falls to what it forwards and its loss stays
  near zero, which also flatters its zero-loss rate. The vpclab forwarder is decoupled
  from the generator by its AF_PACKET rings (256 slots each way): what it cannot take in
  time is dropped, and the figure counts only what reached the sink.
* **New flows**: trafgen, every packet a new 5-tuple, into an empty table (fresh topology
  per run); the figure is delivered packets over the sending time. For kernel-route it is
  just its pps (no per-flow state).
* **TCP throughput**: iperf3, 1 and 4 streams, client in the generator ns, server in the sink ns.
* **Connections per second**: a Python client (connect, one request, read the reply to
  EOF, close) against a Python server, one connection at a time; both cost more CPU than
  any path, so the figure is bounded by them and the ratios sit near 1.
* **Latency**: a Python UDP ping-pong at 1,000 pings/s through the path to an echo server
  in the sink ns; the samples of every run make the distribution plot.
* **Noise**: two vCPUs shared with other tenants; figures move by tens of percent between
  runs. The paths run one after another, so ratios are read from one run of the suite.
"""


def tool_version(argv: list[str]) -> str:
    """The first line a tool prints of its version, or "?"."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def host() -> dict:
    """The machine a benchmark ran on: CPU, memory, kernel, Python, commit, load."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    commit = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_gb": round(mem_kb / 2**20, 1),
            "kernel": platform.release(), "machine": platform.machine(), "python": platform.python_version(),
            "commit": commit, "loadavg": open("/proc/loadavg").read().split()[:3]}


def machine() -> dict:
    from dataplane.forwarder.engine import build_info
    return {**host(), "trafgen": tool_version(["trafgen", "-v"]),
            "iperf3": tool_version(["iperf3", "--version"]), "nft": tool_version(["nft", "--version"]),
            "engine_build": build_info()}


def build(raw: dict, settings: dict, started: float, quick: bool) -> dict:
    figures = {}
    for key, title, unit, get, higher in _figure_defs(raw):
        src = "latency" if key.startswith("latency_") else key
        if key.startswith("ndr_"):
            src = key.rsplit("_", 1)[0]
        per_path = {}
        for name, p in raw["paths"].items():
            runs = p["figures"].get(src)
            if not runs:
                runs = p["figures"].get(alias(src, name))
            if runs:
                per_path[name] = _stats([get(r) for r in runs])
        figures[key] = {"title": title, "unit": unit, "higher_is_better": higher, "paths": per_path,
                        "ratios": _ratios(per_path)}
    mem = {}
    v = raw["paths"].get("vpclab", {}).get("memory")
    if v and v.get("flows"):
        mem["vpclab"] = {**v, "bytes_per_flow_rss": (v["rss_bytes"] - v["rss_before_traffic_bytes"]) / v["flows"],
                         "bytes_per_flow_table": v["engine_memory_bytes"] / v["capacity"],
                         "bytes_per_live_flow": v["engine_memory_bytes"] / v["flows"]}
    k = raw["paths"].get("kernel-nat", {}).get("memory")
    if k:
        mem["kernel-nat"] = {**k, "bytes_per_flow_slab": k.get("conntrack_object_bytes")}
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "duration_s": time.time() - started, "quick": quick, "settings": settings,
            "machine": machine(), "figures": figures, "memory": mem,
            "cpu_roles": {n: p["cpu_roles"] for n, p in raw["paths"].items()},
            "errors": {n: p["errors"] for n, p in raw["paths"].items() if p["errors"]},
            "raw": {n: {k: v for k, v in p.items() if k != "latency_samples_us"} for n, p in raw["paths"].items()},
            "latency_samples_us": {n: p["latency_samples_us"] for n, p in raw["paths"].items()}}


# vpclab over the kernel doing the same translation, and over the kernel only routing:
# PrivateLink's two forwarders against kernel-nat, the VPC link's against kernel-snat.
RATIOS = (tuple(f"{v}/{k}" for k in ("kernel-nat", "kernel-route") for v in ("vpclab", "vpclab-busypoll"))
          + ("vpclab-vpc-nat/kernel-snat", "vpclab-vpc-nat/kernel-route"))
# the like-for-like ratio of each kind, plotted per pps and new-flow figure
KIND_RATIOS = {"PrivateLink": "vpclab/kernel-nat", "VPC-to-VPC NAT": "vpclab-vpc-nat/kernel-snat"}


def _ratios(per_path: dict) -> dict:
    out = {}
    for key in RATIOS:
        mine, other = key.split("/")
        v, o = per_path.get(mine), per_path.get(other)
        if v and o and o["median"]:
            out[key] = v["median"] / o["median"]
    return out


def _fmt(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def markdown(res: dict) -> str:
    m = res["machine"]
    paths = [p for p in PATHS if p in res["cpu_roles"]]
    ratio_keys = [k for k in RATIOS if all(p in paths for p in k.split("/"))]
    lines = [f"# vpclab end-to-end benchmark{' (quick)' if res['quick'] else ''}", "",
             f"Run {res['started']}, {res['duration_s'] / 60:.1f} min; {m['cpus']} × {m['cpu']}, "
             f"{m['memory_gb']} GB, kernel {m['kernel']}, Python {m['python']}, commit {m['commit']}, "
             f"engine build {m['engine_build']}; load average at the end {' '.join(m['loadavg'])}. "
             f"{m['trafgen']}; {m['iperf3']}; {m['nft']}. Forwarder rings and polling: "
             f"{_io_text(res['settings'].get('forwarder_io') or {})}.", "",
             f"Each figure: median (min–max) of {res['settings']['runs']} run(s). Ratios are of medians, "
             "vpclab over the kernel path of the same run; for latency, lower is better, so a ratio "
             "above 1 means vpclab is slower.", "",
             "| figure | unit | " + " | ".join(paths) + " | " +
             " | ".join(k.replace("/", " / ") for k in ratio_keys) + " |",
             "|---|---|" + "---|" * (len(paths) + len(ratio_keys))]
    for key, f in res["figures"].items():
        cells = []
        for p in paths:
            s = f["paths"].get(p)
            cells.append(f"{_fmt(s['median'])} ({_fmt(s['min'])}–{_fmt(s['max'])})" if s else "—")
        r = f["ratios"]
        ratio = [f"{r[k]:.2f}" if k in r else "—" for k in ratio_keys]
        lines.append(f"| {f['title']} | {f['unit']} | " + " | ".join(cells) + " | " + " | ".join(ratio) + " |")
    lines += ["", "![packets per second per path](pps.png)", ""]
    if any(k in f["ratios"] for f in res["figures"].values() for k in KIND_RATIOS.values()):
        lines += ["![vpclab over the kernel doing the same NAT, per kind](ratios.png)", ""]
    if any(res["latency_samples_us"].values()):
        lines += ["![latency distribution](latency.png)", ""]
    mem = res["memory"]
    lines += ["## Memory", ""]
    if "vpclab" in mem:
        v = mem["vpclab"]
        lines.append(f"* **vpclab**: forwarder RSS {v['rss_bytes'] / 2**20:.0f} MiB with {v['flows']:,} flows "
                     f"in the table ({v['rss_before_traffic_bytes'] / 2**20:.0f} MiB before any traffic): "
                     f"{v['bytes_per_flow_rss']:.0f} bytes per flow of RSS growth. The engine reports "
                     f"{v['engine_memory_bytes'] / 2**20:.0f} MiB allocated for {v['capacity']:,} slots, "
                     f"{v['bytes_per_flow_table']:.0f} bytes per slot, allocated and touched at start (so the "
                     f"RSS does not grow with flows): {v['bytes_per_live_flow']:.0f} bytes per live flow at this "
                     f"table's fill ({v['flows'] / v['capacity']:.0%}).")
    if "kernel-nat" in mem:
        k = mem["kernel-nat"]
        lines.append(f"* **kernel NAT**: {k['conntrack_entries']:,} conntrack entries after the largest "
                     f"pps run (nf_conntrack_max {k['conntrack_max']:,}); a conntrack entry is a "
                     f"{k['bytes_per_flow_slab']}-byte slab object (/proc/slabinfo), plus its hash buckets.")
    lines.append("* **kernel routing** keeps no per-flow state.")
    lines += ["", "## Method", "", METHOD, "", "## Which CPU did what", ""]
    for p in paths:
        roles = res["cpu_roles"][p]
        lines.append(f"* **{p}**: " + "; ".join(f"{'CPU ' + c if c.isdigit() else c}: {what}"
                                                for c, what in sorted(roles.items())))
    if res["errors"]:
        lines += ["", "## Errors during the run", ""]
        for p, errs in res["errors"].items():
            for e in errs:
                lines.append(f"* {p}: {e.splitlines()[0]}")
    lines += ["", "## Flow counts, loss and CPU", "",
              "How busy each CPU was over a packets-per-second window tells which side set the "
              "rate: a CPU near 100 % is the bottleneck.", ""]
    for p in paths:
        raw = res["raw"][p]["figures"]
        bits = []
        for key in [k for k in raw if k.startswith("pps_")]:
            r = raw[key][-1]
            busy = ", ".join(f"CPU {c} {100 * b:.0f} %" for c, b in sorted(r.get("cpu_busy", {}).items()))
            bits.append(f"{key}: {r['flows']:,} flows: offered {_fmt(r['offered_pps'])} pps, loss "
                        f"{100 * (r['loss'] or 0):.1f} %, table {r['flows_in_table'] if r['flows_in_table'] is not None else '—'}"
                        + (f", busy {busy}" if busy else ""))
        for r in raw.get("new_flows", [])[-1:]:
            bits.append(f"new flows: {r['packets']:,} sent, {r['delivered']:,} delivered, "
                        f"table {r['flows_in_table'] if r['flows_in_table'] is not None else '—'}")
        lines.append(f"* **{p}** (last run of each): " + "; ".join(bits))
    return "\n".join(lines) + "\n"


def plots(res: dict, out: str) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    paths = [p for p in PATHS if p in res["cpu_roles"]]
    colors = {"vpclab": "#d62728", "vpclab-busypoll": "#ff9896", "kernel-nat": "#1f77b4",
              "kernel-route": "#7f7f7f", "vpclab-vpc-nat": "#9467bd", "kernel-snat": "#17becf"}
    keys = [k for k in res["figures"] if k.startswith("pps_") or k.startswith("new_flows")]
    if keys:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        width = 0.8 / len(paths)
        for i, p in enumerate(paths):
            xs, ys, lo, hi = [], [], [], []
            for j, k in enumerate(keys):
                s = res["figures"][k]["paths"].get(p)
                if s:
                    xs.append(j + i * width)
                    ys.append(s["median"] / 1e3)
                    lo.append((s["median"] - s["min"]) / 1e3)
                    hi.append((s["max"] - s["median"]) / 1e3)
            ax.bar(xs, ys, width, yerr=[lo, hi], label=p, color=colors.get(p), capsize=3)
        ax.set_xticks([j + width * (len(paths) - 1) / 2 for j in range(len(keys))])
        ax.set_xticklabels([_tick(k) for k in keys], fontsize=8)
        ax.set_ylabel("thousand packets/s delivered (median, min–max)")
        ax.set_title("64-byte UDP through each path, at full offer")
        ax.set_ylim(top=ax.get_ylim()[1] * 1.2)   # room for the legend above the bars
        ax.legend(ncol=min(len(paths), 4), fontsize=8, loc="upper center")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "pps.png"), dpi=110)
        plt.close(fig)
        made.append("pps.png")
        if _ratio_plot(res, keys, os.path.join(out, "ratios.png"), plt):
            made.append("ratios.png")
    samples = res["latency_samples_us"]
    if any(samples.values()):
        fig, (ax, tail) = plt.subplots(1, 2, figsize=(11, 4.5))
        for p in paths:
            v = sorted(samples.get(p) or [])
            if v:
                n = len(v)
                ax.plot(v, [(i + 1) / n for i in range(n)], label=p, color=colors.get(p))
                tail.plot(v, [1 - i / n for i in range(n)], label=p, color=colors.get(p))
        for a in (ax, tail):
            a.set_xscale("log")
            a.set_xlabel("round trip, µs (log)")
            a.grid(True, which="both", alpha=0.3)
        ax.set_ylabel("fraction of pings at most x")
        ax.set_title("UDP ping-pong round trip (CDF)")
        tail.set_yscale("log")
        tail.set_ylabel("fraction of pings above x (log)")
        tail.set_title("its tail: 10⁻² = p99, 10⁻³ = p99.9")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "latency.png"), dpi=110)
        plt.close(fig)
        made.append("latency.png")
    return made


def _tick(key: str) -> str:
    """A pps or new-flow figure's label under its bars."""
    return ((f"{int(key.split('_')[1]):,}\nflows" if key.startswith("pps_") else "new\nflows")
            + ("\nCPU 0 only" if key.endswith("_cpu0") else ""))


def _ratio_plot(res: dict, keys: list[str], file: str, plt) -> bool:
    """Each kind's forwarder over the kernel doing the same translation (KIND_RATIOS),
    per pps and new-flow figure, with the issue's goal of 2× drawn across."""
    kinds = {label: key for label, key in KIND_RATIOS.items()
             if any(key in res["figures"][k]["ratios"] for k in keys)}
    if not kinds:
        return False
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(kinds)
    colors = {"PrivateLink": "#d62728", "VPC-to-VPC NAT": "#9467bd"}
    for i, (label, key) in enumerate(kinds.items()):
        xs = [j + i * width for j, k in enumerate(keys) if key in res["figures"][k]["ratios"]]
        ys = [res["figures"][k]["ratios"][key] for k in keys if key in res["figures"][k]["ratios"]]
        ax.bar(xs, ys, width, label=f"{label}: {key.replace('/', ' / ')}", color=colors.get(label))
    ax.axhline(2.0, color="black", linestyle="--", linewidth=1, label="goal: 2×")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks([j + width * (len(kinds) - 1) / 2 for j in range(len(keys))])
    ax.set_xticklabels([_tick(k) for k in keys], fontsize=8)
    ax.set_ylabel("vpclab / kernel (ratio of medians)")
    ax.set_title("vpclab over the kernel doing the same NAT, 64-byte UDP")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(file, dpi=110)
    plt.close(fig)
    return True


def _io_text(io: dict) -> str:
    """The forwarder's "io" settings as run, defaults named."""
    return (f"{io.get('ring_slots') or 256} slots of {(io.get('slot_size') or 65536) // 1024} KiB "
            f"per ring, busy polling " + (f"{io['busy_poll_us']} µs" if io.get("busy_poll_us") else "off"))


def write(res: dict, out: str) -> None:
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    plots(res, out)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(markdown(res))
