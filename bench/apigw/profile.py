"""Where the front end's time goes: py-spy (PyPI; the `bench` extra) samples the
running front end, with native frames, while wrk loads it, and the samples are summed
three ways.

    py-spy record -p PID -d S -r 200 -f raw --native     (a few seconds, under wrk)

py-spy stops the process for each sample (native stacks need it), 200 times a second:
the front end runs a little slower meanwhile, so a profiled run is never one of the
measured ones. Idle samples (the loop asleep in epoll) are left out, so the shares are
of the CPU the front end used.

* **by layer**: each sample goes to the layer of its innermost frame — OpenSSL (TLS),
  libc (system calls: send, recv, epoll, and memcpy), uvloop's C event loop, httptools'
  C parser, or, for Python code and the interpreter running it, the innermost Python
  frame's package: the proxy engine (dataplane/services/proxy), API Gateway's logic
  (dataplane/services/apigw), the ALB's (dataplane/services/alb), asyncio, or another part of the standard library.
* **by our function**: the innermost dataplane/ frame of each sample, with everything
  below it (the C it called): which of our functions the time is spent for.
* **by leaf**: the innermost frames themselves (self time).
"""
from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Callable

from bench.e2e.topo import popen

from .tools import LOAD_CPU, BenchError, Contender, in_ns_argv, stop, wrk_env

RATE_HZ = 200
TOP = 12
PY_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")
NATIVE_FRAME = re.compile(r"^(?P<func>.*) \((?P<lib>[^()]*)\)$")

UVLOOP_SOURCES = ("loop.c", "core.c", "timer.c", "stream.c", "tcp.c", "epoll.c", "linux.c",
                  "heap-inl.h", "uv-common.c", "async.c", "poll.c", "signal.c")
HTTPTOOLS_SOURCES = ("parser.c", "llhttp.c", "api.c", "http.c", "url_parser.c")
LAYERS = (  # (layer, test on the innermost native frame's library or C source file)
    ("TLS (OpenSSL: libssl, libcrypto)", lambda where: "libssl" in where or "libcrypto" in where),
    ("libc (system calls, memcpy)", lambda where: where.startswith("libc.") or "vdso" in where
     or "libpthread" in where),
    ("uvloop's event loop and libuv (C)", lambda where: "uvloop" in where or where in UVLOOP_SOURCES),
    ("httptools' parser, llhttp (C)", lambda where: "httptools" in where or where in HTTPTOOLS_SOURCES),
)
PY_LAYERS = (
    ("proxy engine (services/proxy, Python)", "services/proxy/"),
    ("API Gateway's logic (services/apigw, Python)", "services/apigw/"),
    ("the ALB's logic (services/alb, Python)", "services/alb/"),
    ("asyncio / uvloop (Python)", "asyncio/"),
    ("other dataplane Python", "dataplane/"),
)
RUNTIME = "CPython's runtime and C modules (objects, ints, random, base64…)"
LOOP = "(the event loop itself, below main(): no callback of ours on the stack)"


def py_spy() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "py-spy")
    found = here if os.access(here, os.X_OK) else shutil.which("py-spy")
    if not found:
        raise BenchError("py-spy is not installed: `make setup` installs it (the bench extra), "
                         "or pass --no-profile")
    return found


def record(c: Contender, seconds: int, script: str, raw_path: str) -> dict:
    """Samples `c`'s process for `seconds` while wrk loads it; the summary (`summarise`)."""
    load = popen(in_ns_argv(c.client_ns, ["wrk", "-t1", "-c50", f"-d{seconds + 2}s", "-s", script,
                                          "-H", f"Host: {c.host}", c.url], cpu=LOAD_CPU),
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                 env=wrk_env(script))
    try:
        time.sleep(1)
        argv = ["taskset", "-c", str(LOAD_CPU), py_spy(), "record", "-p", str(c.pid),
                "-d", str(seconds), "-r", str(RATE_HZ), "-f", "raw", "-o", raw_path, "--native"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
        if out.returncode != 0 or not os.path.exists(raw_path):
            raise BenchError(f"py-spy failed ({out.returncode}): {out.stderr.strip()[-300:]}")
        load.wait(timeout=seconds + 10)
    finally:
        stop(load)
    with open(raw_path) as f:
        summary = summarise(f.read().splitlines())
    summary.update(seconds=seconds, rate_hz=RATE_HZ, raw=os.path.basename(raw_path))
    return summary


def record_cases(cases: list, seconds: int, script: str, out: str, stem: str,
                 say: Callable[[str], None]) -> dict:
    """`record` of each case's second contender (the service beside haproxy), raw samples
    to `out/<stem>-<protocol>.txt`; keyed "<contender>, <protocol>"."""
    profiles = {}
    for case in cases:
        c = case.contenders[1]
        say(f"  profiling {c.name}: {case.path}, {case.protocol}, {seconds} s")
        profiles[f"{c.name}, {case.protocol}"] = record(
            c, seconds, script, os.path.join(out, f"{stem}-{case.protocol}.txt"))
    return profiles


def parse(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    return stack.split(";"), int(count)


def python_frame(frame: str) -> re.Match | None:
    """A Python frame `func (path.py:line)`; native frames name a library or a C file."""
    p = PY_FRAME.match(frame)
    return p if p and p["file"].endswith(".py") else None


def layer(frames: list[str]) -> str:
    if not python_frame(frames[-1]):
        m = PY_FRAME.match(frames[-1]) or NATIVE_FRAME.match(frames[-1])
        where = os.path.basename(m["file"] if m and "file" in m.groupdict() else m["lib"]) if m else ""
        for name, test in LAYERS:
            if test(where):
                return name
        if where.endswith((".c", ".h")) or "libpython" in where:
            return RUNTIME
    for frame in reversed(frames):            # the interpreter: the Python it runs
        p = python_frame(frame)
        if p:
            for name, prefix in PY_LAYERS:
                if prefix in p["file"]:
                    return name
            return f"standard library / other Python ({p['file'].split('/')[0]})"
    return "other native code"


def ours(frames: list[str]) -> str:
    for frame in reversed(frames):
        p = python_frame(frame)
        if p and "dataplane/" in p["file"]:
            return LOOP if p["func"] == "main" else f"{p['func']} ({p['file']})"
    return "(outside dataplane/)"


def leaf(frames: list[str]) -> str:
    p = python_frame(frames[-1])
    return f"{p['func']} ({p['file']})" if p else frames[-1]


def summarise(lines: list[str]) -> dict:
    """Shares of samples by layer, by our innermost function, by leaf."""
    by_layer: collections.Counter = collections.Counter()
    by_ours: collections.Counter = collections.Counter()
    by_leaf: collections.Counter = collections.Counter()
    total = 0
    for line in filter(None, lines):
        frames, n = parse(line)
        total += n
        by_layer[layer(frames)] += n
        by_ours[ours(frames)] += n
        by_leaf[leaf(frames)] += n
    if not total:
        raise BenchError("py-spy recorded no samples of the front end (was it busy?)")

    def shares(counter: collections.Counter, top: int | None = None) -> list[list]:
        return [[name, n / total] for name, n in counter.most_common(top)]
    return {"samples": total, "by_layer": shares(by_layer), "by_function": shares(by_ours, TOP),
            "by_leaf": shares(by_leaf, TOP)}
