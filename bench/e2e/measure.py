"""One measurement each: given a Topology and a Path (paths.py), run the traffic inside
the namespaces and return raw numbers. Every generator is bounded in packets and time.

* pps: trafgen (netsniff-ng) in the generator namespace, pinned to CPU 0, 60-byte frames
  (64 on a wire with the FCS): Ethernet + IPv4 + UDP + 18 bytes. Flows differ by source
  address and port, two trafgen counters of coprime periods a and b, so a·b distinct
  5-tuples come round robin. A path without DNAT (Path.udp_dports > 1) gets a third
  counter on the destination port, of a period d dividing b, so each source port keeps
  one destination port and the count stays a·b. Counted at the sink as its veth's rx_packets (pyroute2),
  over a window that starts after the generator has run for a while; the sink drops
  the packets at its ingress hook (nftables netdev) so no ICMP comes back. trafgen sends
  at full speed (its TX_RING): the figure is the *delivered rate at full offer*.
* new flows: the same with tuples never seen before, on a fresh topology each run.
* TCP: iperf3, client in the generator ns, `-s -1` server in the sink ns.
* connections per second, latency: small Python clients and servers (below), run
  under nsenter, pinned to CPU 0.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time

from bench.e2e.paths import GEN_CPU, TARGET_PORT0, Path
from bench.e2e.topo import Topology, in_ns_argv, popen, run_in, stop_group

TRAFGEN = ["trafgen", "--no-sock-mem", "--notouch-irq", "--no-cpu-stats", "-P", "1"]
IP_10_0_1_0 = (10 << 24) | (1 << 8)


def sink_drop_udp(topo: Topology) -> None:
    """The sink drops the benchmark's UDP at its ingress hook (its rx counter has already
    counted it): no socket, no ICMP port-unreachable back through the path."""
    run_in(topo.sink, ["nft", "-f", "-"], input=f"""
table netdev vbsink {{
    chain in {{
        type filter hook ingress device "{topo.sink_if}" priority 0; policy accept;
        udp dport {TARGET_PORT0}-{TARGET_PORT0 + 63} drop
    }}
}}
""")


def coprime_ports(a: int, flows: int, d: int = 1) -> int:
    """b ≥ flows / a source ports, a multiple of d and coprime with a."""
    b = math.ceil(math.ceil(flows / a) / d) * d
    while math.gcd(a, b) != 1:
        b += d
    return b


def split_flows(flows: int, dports: int = 1) -> tuple[int, int, int]:
    """(a, b, d): a source addresses × b source ports, gcd(a, b) = 1 (so two counters of
    periods a and b make a·b distinct pairs), a·b the first such product ≥ flows; d the
    destination ports the flows are spread over (`dports` once flows reach it, else 1),
    d dividing b, so a third counter of period d keeps a·b pairs."""
    d = dports if flows >= dports else 1
    if flows <= 32768:
        return 1, coprime_ports(1, flows, d), d
    a = math.ceil(flows / 32768)
    while math.gcd(a, d) != 1:
        a += 1
    return a, coprime_ports(a, flows, d), d


def trafgen_config(topo: Topology, path: Path, a: int, b: int, ip_first: int, port_first: int,
                   d: int = 1) -> str:
    dst_ip, dst_port = path.udp_dst()
    ip0 = IP_10_0_1_0 + ip_first
    sa = f"dinc({ip0}, {ip0 + a - 1})" if a > 1 else f"10.0.1.{ip_first}"
    sp = f"dinc({port_first}, {port_first + b - 1})" if b > 1 else str(port_first)
    dp = f"dinc({dst_port}, {dst_port + d - 1})" if d > 1 else str(dst_port)
    return (f"{{ eth(da={topo.macs[topo.e0]}, sa={topo.macs[topo.gen_if]}),\n"
            f"  ipv4(sa={sa}, da={dst_ip}, ttl=64),\n"
            f"  udp(sp={sp}, dp={dp}),\n"
            f"  fill(0x00, 18) }}\n")


def _trafgen(topo: Topology, cfg_file: str, count: int) -> subprocess.Popen:
    # A session of its own: trafgen forks its sender, so a stop goes to the whole group.
    return popen(in_ns_argv(topo.gen, [*TRAFGEN, "-i", cfg_file, "-o", topo.gen_if, "-n", str(count)],
                            cpu=GEN_CPU), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                 start_new_session=True)


def cpu_times() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per CPU from /proc/stat; steal counts as busy (the CPU was
    not ours to use)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *vals = line.split()
            if name.startswith("cpu") and name != "cpu":
                v = [int(x) for x in vals]
                out[name[3:]] = (sum(v[:8]) - v[3] - v[4], sum(v[:8]))
    return out


def cpu_busy(before: dict, after: dict) -> dict[str, float]:
    """Each CPU's busy share between two cpu_times() readings."""
    return {cpu: (after[cpu][0] - before[cpu][0]) / max(1, after[cpu][1] - before[cpu][1])
            for cpu in before if cpu in after}


def measure_pps(topo: Topology, path: Path, workdir: str, flows: int, duration: float,
                max_pps: float = 5e6) -> dict:
    a, b, d = split_flows(flows, path.udp_dports)
    cfg = os.path.join(workdir, f"pps-{flows}.cfg")
    with open(cfg, "w") as f:
        f.write(trafgen_config(topo, path, a, b, ip_first=10, port_first=1024, d=d))
    # Warm-up: every flow once, so that the measured packets are of established flows.
    warm = _trafgen(topo, cfg, a * b)
    try:
        warm.wait(timeout=max(30, a * b / 50_000))
    finally:
        stop_group(warm)
    time.sleep(0.3)
    proc = _trafgen(topo, cfg, int(max_pps * (duration + 5)))
    try:
        time.sleep(0.7)
        if proc.poll() is not None:
            raise RuntimeError(f"trafgen ended early: {proc.stderr.read()[-500:]}")
        s0, g0, t0 = topo.counters(topo.sink, topo.sink_if), topo.counters(topo.gen, topo.gen_if), time.monotonic()
        c0 = cpu_times()
        time.sleep(duration)
        c1 = cpu_times()
        s1, g1, t1 = topo.counters(topo.sink, topo.sink_if), topo.counters(topo.gen, topo.gen_if), time.monotonic()
    finally:
        stop_group(proc)
    dt = t1 - t0
    delivered = (s1["rx_packets"] - s0["rx_packets"]) / dt
    offered = (g1["tx_packets"] - g0["tx_packets"]) / dt
    return {"flows": a * b, "delivered_pps": delivered, "offered_pps": offered,
            "loss": max(0.0, 1 - delivered / offered) if offered else None, "window_s": dt,
            "flows_in_table": path.flow_count(), "cpu_busy": cpu_busy(c0, c1)}


def measure_new_flows(topo: Topology, path: Path, workdir: str, count: int) -> dict:
    """`count` packets, each a new 5-tuple (31 source addresses × count/31 ports)."""
    a = 31
    d = path.udp_dports
    b = coprime_ports(a, count, d)
    cfg = os.path.join(workdir, "newflows.cfg")
    with open(cfg, "w") as f:
        f.write(trafgen_config(topo, path, a, b, ip_first=64, port_first=1024, d=d))
    s0, g0 = topo.counters(topo.sink, topo.sink_if), topo.counters(topo.gen, topo.gen_if)
    proc = _trafgen(topo, cfg, count)
    try:
        deadline = time.monotonic() + 60
        t_first = None
        while proc.poll() is None and time.monotonic() < deadline:
            if t_first is None and topo.counters(topo.gen, topo.gen_if)["tx_packets"] > g0["tx_packets"]:
                t_first = time.monotonic()
            time.sleep(0.01)
        t_end = time.monotonic()
    finally:
        stop_group(proc)
    time.sleep(0.3)                                  # let the last packets drain
    s1, g1 = topo.counters(topo.sink, topo.sink_if), topo.counters(topo.gen, topo.gen_if)
    delivered = s1["rx_packets"] - s0["rx_packets"]
    sent = g1["tx_packets"] - g0["tx_packets"]
    dt = t_end - (t_first or t_end - 1e-3)
    return {"packets": sent, "delivered": delivered, "new_flows_per_s": delivered / dt,
            "offered_per_s": sent / dt, "seconds": dt, "flows_in_table": path.flow_count()}


IPERF_SERVER_WAIT = 0.4


def measure_tcp(topo: Topology, path: Path, streams: int, seconds: int) -> dict:
    host, port = path.iperf_dst()
    srv = popen(in_ns_argv(topo.sink, ["iperf3", "-s", "-1", "-p", "5201"], cpu=GEN_CPU),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(IPERF_SERVER_WAIT)
        out = run_in(topo.gen, ["iperf3", "-c", host, "-p", str(port), "-t", str(seconds), "-P", str(streams),
                                "-J", "--connect-timeout", "3000"], timeout=seconds + 30, check=False,
                     cpu=GEN_CPU)
        report = json.loads(out.stdout)
        if "error" in report:
            raise RuntimeError(f"iperf3: {report['error']}")
        end = report["end"]
        return {"bits_per_second": end["sum_received"]["bits_per_second"],
                "retransmits": end["sum_sent"].get("retransmits"), "streams": streams,
                "seconds": seconds, "offload": path.offload}
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait(timeout=10)


ECHO_SERVER = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(sys.argv[1])))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)
""")

PING_CLIENT = textwrap.dedent("""
    import json, socket, sys, time
    host, port, count, interval = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port)); s.settimeout(1.0)
    for _ in range(20):                      # warm-up: ARP, flow set-up, caches
        s.send(b"w" * 16)
        try: s.recv(2048)
        except socket.timeout: pass
    rtts, lost = [], 0
    nxt = time.perf_counter()
    for i in range(count):
        payload = i.to_bytes(8, "big") * 2
        t0 = time.perf_counter_ns()
        s.send(payload)
        try:
            while s.recv(2048) != payload:
                pass
            rtts.append((time.perf_counter_ns() - t0) / 1000)
        except socket.timeout:
            lost += 1
        nxt += interval
        delay = nxt - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    print(json.dumps({"rtt_us": rtts, "lost": lost}))
""")

CPS_SERVER = textwrap.dedent("""
    import socket, sys
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(4096)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        try:
            if conn.recv(64):
                conn.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\n")
        except OSError:
            pass
        conn.close()
""")

CPS_CLIENT = textwrap.dedent("""
    import json, socket, sys, time
    host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    ok = failed = 0
    t0 = time.monotonic(); end = t0 + seconds
    while time.monotonic() < end:
        try:
            s = socket.create_connection((host, port), timeout=1.0)
            s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            reply = b""
            while chunk := s.recv(256):
                reply += chunk
            s.close()
            ok += reply.startswith(b"HTTP/1.0 200")
            failed += not reply.startswith(b"HTTP/1.0 200")
        except OSError:
            failed += 1
    print(json.dumps({"connections": ok, "failed": failed, "seconds": time.monotonic() - t0}))
""")


def _server(topo: Topology, script: str, port: int) -> subprocess.Popen:
    srv = popen(in_ns_argv(topo.sink, [sys.executable, "-c", script, str(port)], cpu=GEN_CPU),
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if srv.stdout.readline().strip() != "ready":
        srv.kill()
        raise RuntimeError("a sink server did not start")
    return srv


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def start_echo(topo: Topology) -> subprocess.Popen:
    from bench.e2e.paths import ECHO_PORT
    return _server(topo, ECHO_SERVER, ECHO_PORT)


def measure_latency(topo: Topology, path: Path, count: int, interval: float) -> dict:
    host, port = path.echo_dst()
    out = run_in(topo.gen, [sys.executable, "-c", PING_CLIENT, host, str(port), str(count), str(interval)],
                 timeout=count * interval + 60, cpu=GEN_CPU)
    return json.loads(out.stdout)


def start_cps_server(topo: Topology) -> subprocess.Popen:
    from bench.e2e.paths import CPS_TPORT
    return _server(topo, CPS_SERVER, CPS_TPORT)


def measure_cps(topo: Topology, path: Path, seconds: float) -> dict:
    host, port = path.cps_dst()
    out = run_in(topo.gen, [sys.executable, "-c", CPS_CLIENT, host, str(port), str(seconds)],
                 timeout=seconds + 60, cpu=GEN_CPU)
    r = json.loads(out.stdout)
    r["per_second"] = r["connections"] / r["seconds"]
    return r


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, math.ceil(q / 100 * len(v)) - 1))
    return v[k]


def end(proc: subprocess.Popen) -> None:
    _end(proc)


def _paced_trial(topo: Topology, cfg: str, rate: int, seconds: float) -> float:
    """Sends rate·seconds packets paced at `rate` (trafgen -b, its sendto mode) and
    returns the loss: 1 - received at the sink / sent by the generator, by counters."""
    count = max(1, int(rate * seconds))
    s0, g0 = topo.counters(topo.sink, topo.sink_if), topo.counters(topo.gen, topo.gen_if)
    argv = [*TRAFGEN, "-b", f"{rate}pps", "-i", cfg, "-o", topo.gen_if, "-n", str(count)]
    proc = popen(in_ns_argv(topo.gen, argv, cpu=GEN_CPU), stdout=subprocess.DEVNULL,
                 stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        proc.wait(timeout=seconds * 3 + 10)
    except subprocess.TimeoutExpired:
        pass
    finally:
        stop_group(proc)
    time.sleep(0.2)                                   # in flight
    s1, g1 = topo.counters(topo.sink, topo.sink_if), topo.counters(topo.gen, topo.gen_if)
    sent = g1["tx_packets"] - g0["tx_packets"]
    got = s1["rx_packets"] - s0["rx_packets"]
    return max(0.0, 1 - got / sent) if sent else 1.0


def search_no_drop_rate(topo: Topology, path: Path, workdir: str, flows: int, ceiling: float,
                        trial_s: float, trials: int) -> dict:
    """RFC 2544-style binary search of the offered rate, for the highest rate with zero
    loss and the highest with at most 0.5 % loss at once: each trial moves the bounds of
    both; the next trial halves the wider interval. Bounded to `trials` trials.
    `ceiling` is the first upper bound (the generator's paced maximum or the full-offer
    delivered rate, whichever is higher)."""
    a, b, d = split_flows(flows, path.udp_dports)
    cfg = os.path.join(workdir, f"ndr-{flows}.cfg")
    with open(cfg, "w") as f:
        f.write(trafgen_config(topo, path, a, b, ip_first=10, port_first=1024, d=d))
    bounds = {"zero": [0.0, ceiling], "0.5%": [0.0, ceiling]}
    history = []
    for _ in range(trials):
        name = max(bounds, key=lambda k: bounds[k][1] - bounds[k][0])
        lo, hi = bounds[name]
        rate = int((lo + hi) / 2)
        loss = _paced_trial(topo, cfg, rate, trial_s)
        history.append({"rate": rate, "loss": loss})
        for key, limit in (("zero", 0.0), ("0.5%", 0.005)):
            lo_k, hi_k = bounds[key]
            if loss <= limit:
                bounds[key][0] = max(lo_k, rate)
            else:
                bounds[key][1] = min(hi_k, rate)
    return {"flows": a * b, "zero_loss_pps": bounds["zero"][0], "half_percent_loss_pps": bounds["0.5%"][0],
            "upper_bounds": {k: v[1] for k, v in bounds.items()}, "trials": history, "trial_s": trial_s}
