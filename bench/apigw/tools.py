"""What both scenarios run: wrk and its numbers, haproxy's configurations, API Gateway's
front end as a process, and a process's CPU time.

* **wrk** (Debian's 4.1.0) is started with `taskset -c LOAD_CPU`, one thread and 50
  keep-alive connections, and a Lua `done()` hook (WRK_LUA) that prints its summary as
  one JSON line: requests, duration, errors by kind, and the latency percentiles in
  microseconds straight from wrk's histogram (the same numbers `--latency` prints,
  without parsing units). Every request carries the API's `Host` header. A run is
  bounded by `-d` (at most MAX_RUN_S) and by a subprocess timeout a few seconds longer.
  wrk's TLS is capped at TLS 1.2 by an OpenSSL configuration (OPENSSL_CONF, WRK_OPENSSL):
  wrk has no option for it, and a server that also offers TLS 1.3 (an ALB node: "TLS 1.2
  and later") is then measured at TLS 1.2 like haproxy and the front end, which offer only 1.2.
* **haproxy** 2.6 (Debian), `nbthread 1`, with AWS-FACTS-HTTP Part 3's settings: the
  backend answers every request itself (`http-request return`, a 19-byte body), a proxy
  forwards to its servers over a keep-alive pool (`http-reuse always`) adding
  X-Forwarded-For/-Proto/-Port and the integration's Host, as the front end does. A
  server may sit in another network namespace (`namespace NAME`: haproxy opens its
  socket there, as the front end does for an HTTP API's VPC link).
* **The front end**: `python -m dataplane.services.apigw --config FILE` (notes/apigw-config.md),
  up when its control socket answers `ping`, ended with SIGTERM by its PID.
* **CPU**: utime + stime of /proc/PID/stat (every thread of the process, in clock
  ticks), for the process and its children.
* **Priority**: every process under measurement — the proxies, wrk, the backends, and in
  the lab every process of the lab — runs at nice -20 (`in_ns_argv`, `pin`), the same
  for all, so that on a machine shared with other work the scheduler gives them their
  CPU first and the comparison is of the proxies, not of who else ran meanwhile. The
  other work still runs whenever they wait; each run records how much did (measure.py).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import psutil

from bench.e2e import topo
from bench.e2e.topo import popen, stop_group
from dataplane.forwarder import control
from dataplane.services.serving import AWS_TLS12_CIPHERS

PROXY_CPU, LOAD_CPU = (0, 1) if (os.cpu_count() or 1) >= 2 else (0, 0)
NICE = -20      # the bench's processes before other work on a shared machine (see below)
CONNECTIONS = 50
MAX_RUN_S = 12                      # every wrk run, warm-up or measured
FRONT_END_READY_S = 15.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
BODY = "hello from backend\\n"      # haproxy's escape: 19 bytes on the wire

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "non_2xx": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
"""


WRK_OPENSSL = """openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MaxProtocol = TLSv1.2
"""
WRK_OPENSSL_FILE = "openssl-tls12.cnf"     # beside the Lua script


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


# -- wrk -------------------------------------------------------------------------------

def write_wrk_script(workdir: str) -> str:
    """wrk's Lua script, and beside it the OpenSSL configuration that caps its TLS at 1.2."""
    with open(os.path.join(workdir, WRK_OPENSSL_FILE), "w") as f:
        f.write(WRK_OPENSSL)
    path = os.path.join(workdir, "summary.lua")
    with open(path, "w") as f:
        f.write(WRK_LUA)
    return path


def wrk_env(script: str) -> dict[str, str]:
    """wrk's environment: OPENSSL_CONF names the TLS 1.2 cap written beside `script`."""
    return {**os.environ, "OPENSSL_CONF": os.path.join(os.path.dirname(script), WRK_OPENSSL_FILE)}


def in_ns_argv(ns: str, argv: list[str], cpu: int) -> list[str]:
    """`argv` in namespace `ns`, pinned to `cpu`, at nice NICE."""
    return topo.in_ns_argv(ns, ["nice", "-n", str(NICE), *argv], cpu=cpu)


def wrk(ns: str, url: str, host: str, seconds: int, script: str) -> dict:
    """One wrk run from namespace `ns`; its summary (WRK_LUA) plus requests/s."""
    if not 1 <= seconds <= MAX_RUN_S:
        raise BenchError(f"a wrk run lasts 1 to {MAX_RUN_S} s, not {seconds}")
    argv = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "2s", "--latency",
            "-s", script, "-H", f"Host: {host}", url]
    out = subprocess.run(in_ns_argv(ns, argv, cpu=LOAD_CPU), capture_output=True, text=True,
                         timeout=seconds + 10, env=wrk_env(script))
    line = next((l for l in out.stdout.splitlines() if l.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        raise BenchError(f"wrk {url} in {ns} failed ({out.returncode}): "
                         f"{(out.stderr or out.stdout).strip()[-300:]}")
    summary = json.loads(line[len("WRKJSON "):])
    summary["rps"] = summary["requests"] / max(summary["duration_us"], 1) * 1e6
    return summary


# -- CPU -------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of `pid` and its children still running, in seconds: the time in
    the process's own code, and in the kernel on its behalf (system calls, TCP)."""
    user = system = 0
    try:
        pids = [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        raise BenchError(f"process {pid} is gone") from None
    for p in pids:
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                data = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = data[data.rindex(")") + 2:].split()
        user += int(fields[11])                 # utime, stime: fields 14 and 15
        system += int(fields[12])
    return user / CLK_TCK, system / CLK_TCK


def cpu_jiffies() -> dict[str, list[int]]:
    """/proc/stat's counters per CPU: user nice system idle iowait irq softirq steal."""
    with open("/proc/stat") as f:
        return {name[3:]: [int(x) for x in vals[:8]] for name, *vals in map(str.split, f)
                if name.startswith("cpu") and name != "cpu"}


def cpu_use(before: dict[str, list[int]], after: dict[str, list[int]], cpu: int) -> dict[str, float]:
    """Shares of `cpu`'s time between two cpu_jiffies(): processes (user + system),
    interrupts (irq + softirq: the kernel's receive side of the sockets), steal (the
    hypervisor's), idle."""
    d = [a - b for a, b in zip(after[str(cpu)], before[str(cpu)])]
    total = max(sum(d), 1)
    return {"processes": (d[0] + d[1] + d[2]) / total, "interrupts": (d[5] + d[6]) / total,
            "steal": d[7] / total, "idle": (d[3] + d[4]) / total}


def pin(pid: int, cpu: int) -> None:
    """Every thread of `pid` (and of its children) onto `cpu` (taskset -a) at nice NICE;
    a process that has ended meanwhile is skipped."""
    try:
        pids = [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in pids:
        out = subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(p)],
                             capture_output=True, text=True, timeout=10)
        if out.returncode != 0 and psutil.pid_exists(p):
            raise BenchError(f"taskset could not pin process {p} to CPU {cpu}: {out.stderr.strip()}")
        for task in os.listdir(f"/proc/{p}/task") if os.path.isdir(f"/proc/{p}/task") else []:
            try:
                os.setpriority(os.PRIO_PROCESS, int(task), NICE)     # per thread on Linux
            except ProcessLookupError:
                pass


# -- haproxy ---------------------------------------------------------------------------

def haproxy_head(connect_s: int = 5, idle_s: int = 30, keep_alive_s: int = 60) -> str:
    """`global` and `defaults`: one thread, HTTP mode, the timeouts (AWS-FACTS-HTTP Part 3's
    by default; the ALB scenario passes its 10 s connect and its idle timeout)."""
    return f"""global
    maxconn 4000
    nbthread 1
defaults
    mode http
    timeout connect {connect_s}s
    timeout client {idle_s}s
    timeout server {idle_s}s
    timeout http-keep-alive {keep_alive_s}s
"""


HAPROXY_HEAD = haproxy_head()


def haproxy_tls_bind(pem: str) -> str:
    """A haproxy `bind` line's TLS options: TLS 1.2 only and the cipher suites the
    services offer, in the same order (serving.AWS_TLS12_CIPHERS), so both sides
    negotiate the same suite with wrk."""
    return f" ssl crt {pem} ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2 ciphers {AWS_TLS12_CIPHERS}"


def backend_config(address: str, port: int) -> str:
    """haproxy answering every request itself: 200, a 19-byte body."""
    return HAPROXY_HEAD + f"""frontend backend
    bind {address}:{port}
    http-request return status 200 content-type text/plain string "{BODY}"
"""


@dataclass
class Server:
    address: str
    port: int
    namespace: str | None = None      # haproxy opens the socket in this namespace


@dataclass
class ProxyFrontend:
    """One haproxy frontend (plain and TLS binds) and its backend of `servers`."""
    name: str
    binds: list[tuple[str, int, bool]]          # (address, port, tls)
    servers: list[Server]
    host: str                                   # the integration's Host header
    pem: str | None = None                      # certificate + key, for TLS binds


def proxy_config(frontends: list[ProxyFrontend]) -> str:
    out = [HAPROXY_HEAD]
    for fe in frontends:
        out.append(f"frontend {fe.name}\n")
        for address, port, tls in fe.binds:
            ssl = haproxy_tls_bind(fe.pem) if tls else ""
            out.append(f"    bind {address}:{port}{ssl}\n")
        out.append(f"    option forwardfor\n"
                   f"    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}\n"
                   f"    http-request set-header X-Forwarded-Proto http if !{{ ssl_fc }}\n"
                   f"    http-request set-header X-Forwarded-Port %[dst_port]\n"
                   f"    http-request set-header Host {fe.host}\n"
                   f"    default_backend {fe.name}_servers\n"
                   f"backend {fe.name}_servers\n"
                   f"    balance roundrobin\n"
                   f"    http-reuse always\n")
        for i, s in enumerate(fe.servers):
            ns = f" namespace {s.namespace}" if s.namespace else ""
            out.append(f"    server s{i} {s.address}:{s.port} maxconn 200{ns}\n")
    return "".join(out)


def start_haproxy(ns: str, config: str, path: str, cpu: int, log: str) -> subprocess.Popen:
    """haproxy with `config` (written to `path`) in `ns`, pinned to `cpu`, in the
    foreground (-db) so that the PID we hold is haproxy's own; checked first (-c)."""
    with open(path, "w") as f:
        f.write(config)
    check = subprocess.run(["haproxy", "-c", "-q", "-f", path], capture_output=True, text=True,
                           timeout=30)
    if check.returncode != 0:
        raise BenchError(f"haproxy refused {path}: {(check.stderr or check.stdout).strip()}")
    with open(log, "ab") as out:
        proc = popen(in_ns_argv(ns, ["haproxy", "-db", "-f", path], cpu=cpu), stdout=out,
                     stderr=subprocess.STDOUT, start_new_session=True)
    time.sleep(0.3)
    if proc.poll() is not None:
        raise BenchError(f"haproxy in {ns} exited at once ({proc.returncode}): {tail(log)}")
    return proc


def write_pem(cert: str, key: str, path: str) -> str:
    """haproxy's `crt`: the certificate chain and its key in one file."""
    with open(path, "w") as out:
        for part in (cert, key):
            with open(part) as f:
                out.write(f.read())
    os.chmod(path, 0o600)
    return path


# -- the front end ---------------------------------------------------------------------

def start_front_end(ns: str, config_path: str, socket: str, cpu: int, log: str) -> subprocess.Popen:
    """`python -m dataplane.services.apigw --config FILE` in `ns`, pinned to `cpu`; returns once
    its control socket answers."""
    return start_service(ns, "dataplane.services.apigw", config_path, socket, cpu, log,
                         "API Gateway's front end")


def start_service(ns: str, module: str, config_path: str, socket: str, cpu: int, log: str,
                  what: str, source: str | None = None) -> subprocess.Popen:
    """`python -m MODULE --config FILE` (a vpclab service: the front end, an ALB node) in
    `ns`, pinned to `cpu`; returns once its control socket answers `ping`. With `source`,
    the module's code is that directory's (another checkout of vpclab, e.g. `git archive`
    of an older commit): a before/after pair in one run."""
    argv = [sys.executable, "-m", module, "--config", config_path]
    extra = {} if source is None else {
        "cwd": source, "env": {**os.environ, "PYTHONPATH": os.path.abspath(source)}}
    with open(log, "ab") as out:
        proc = popen(in_ns_argv(ns, argv, cpu=cpu), stdout=out, stderr=subprocess.STDOUT,
                     start_new_session=True, **extra)
    try:
        wait_service(socket, proc.pid, log, what)
    except BenchError:
        stop(proc)
        raise
    return proc


def wait_service(socket: str, pid: int, log: str, what: str) -> None:
    deadline = time.monotonic() + FRONT_END_READY_S
    while True:
        try:
            control.call(socket, "ping", timeout=1)
            return
        except (control.ControlError, OSError):
            if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE \
                    or time.monotonic() > deadline:
                raise BenchError(f"{what} did not answer on {socket}: {tail(log)}")
            time.sleep(0.05)


def front_end_stats(socket: str, command: str = "stats") -> dict:
    """A control-socket reply (`stats`, or an ALB node's `health`) without its `ok`."""
    reply = control.call(socket, command, timeout=5)
    reply.pop("ok", None)
    return reply


@dataclass
class Answer:
    """One HTTP answer as curl saw it."""
    status: int | None          # None: no answer (curl's message in `error`)
    headers: dict[str, str]     # names in lower case
    body: str
    error: str = ""


def curl(ns: str, url: str, host: str, method: str = "GET",
         headers: tuple[str, ...] = ()) -> Answer:
    """One request with curl from namespace `ns` (TLS 1.2, certificate not checked,
    redirects not followed), bounded to 5 s."""
    argv = ["curl", "-sS", "-k", "--tls-max", "1.2", "-m", "5", "-D", "-", "-X", method,
            "-H", f"Host: {host}", *[a for h in headers for a in ("-H", h)], url]
    out = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", *argv], capture_output=True,
                         text=True, timeout=15)
    head, _, body = out.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    if out.returncode != 0 or not lines or len(lines[0].split()) < 2:
        return Answer(None, {}, body, out.stderr.strip()[:200] or f"curl exited {out.returncode}")
    fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    return Answer(int(lines[0].split()[1]), {k.strip().lower(): v.strip() for k, v in fields.items()},
                  body)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group this bench started (by its PID), then SIGKILL."""
    stop_group(proc, sig=signal.SIGTERM)


def tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().splitlines()[-lines:]) or "(empty log)"
    except OSError:
        return "(no log)"


@dataclass
class Contender:
    """One proxy under load: where wrk runs, what it asks, which process does the work."""
    name: str                      # "haproxy", "apigw", "apigw-rest", …
    client_ns: str
    url: str
    host: str
    pid: int
    extra: dict = field(default_factory=dict)
