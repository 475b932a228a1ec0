"""The ALB node's Python per request, without sockets: the engine's client connection and
the ALB's personality driven by a fake client transport and a real `BackendConnection`
on a fake transport, so that every step but the system calls runs as it does under load
— the request parsed, routed by bench/apigw/alb_rules.py's rule set, its head written to
the target, the target's response parsed, rewritten and written to the client, the
access-log line written (to a file, once per loop turn) — on uvloop, in one process.

    python -m bench.apigw.inprocess [--requests N] [--repeats R] [--path /api/hello|/hello]
                                    [--profile]

It prints the best of R batches of N requests, in µs of process CPU per request (the
sockets' system time is not in it), and with `--profile` the top of cProfile's table
for one batch. A tool for comparing commits of the engine and the personality, not a
test: no assertion on time.

On a machine shared with other work even the best of R moves by ±10 %; the figure that
does not move is the count of instructions, from valgrind (deterministic), as the
difference of two runs so that start-up cancels out:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.apigw.inprocess \
        --repeats 1 --requests 300          # and again with 1500: (b - a) / 1200 per request
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import tempfile
import time

import uvloop

from dataplane.services.alb.config import AlbConfig
from dataplane.services.alb.personality import Alb
from dataplane.services.proxy.backend import BackendConnection
from dataplane.services.proxy.engine import ClientConnection, ProxyServer
from dataplane.services.serving import open_log

from .alb_rules import DNS_NAME, node_config

# what haproxy's `http-request return status 200 content-type text/plain` answers (tools.py)
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-length: 19\r\ncontent-type: text/plain\r\n\r\n"
            b"hello from backend\n")


def request_bytes(path: str) -> bytes:
    """What wrk sends: its request line, Host, and nothing else."""
    return f"GET {path} HTTP/1.1\r\nHost: {DNS_NAME}\r\n\r\n".encode()


class Transport:
    """Records nothing but the bytes' count: the cheapest a transport can be."""

    def __init__(self, peer: tuple[str, int], local: tuple[str, int]) -> None:
        self.extra = {"peername": peer, "sockname": local}
        self.written = 0
        self.writes = 0

    def get_extra_info(self, name: str, default=None):
        return self.extra.get(name, default)

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        raise AssertionError("the connection was closed: a request failed")

    abort = close

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def build(workdir: str) -> tuple[ClientConnection, list[BackendConnection], Transport, Alb]:
    config = AlbConfig.from_json(node_config(workdir, "10.0.1.5", {"plain": 80, "tls": 443},
                                             "/nonexistent.pem", "/nonexistent.key"))
    alb = Alb(config, log=open_log(config.access_log))
    conns = []
    for group in alb.groups.values():
        for target in group.targets:
            target.state = "healthy"
            conn = BackendConnection(target.backend, target.ip)
            conn.connection_made(Transport((target.ip, target.port), ("10.0.2.1", 40000)))
            target.backend.open += 1
            target.backend.idle.append(conn)
            conns.append(conn)
        group.refresh()
    server = ProxyServer(alb, alb.pool)
    client = ClientConnection(server, False)
    transport = Transport(("10.0.1.10", 50000), ("10.0.1.5", 80))
    client.connection_made(transport)
    return client, conns, transport, alb


async def batch(client: ClientConnection, conns: list[BackendConnection], data: bytes,
                n: int) -> None:
    """n requests, each answered by whichever target connection it was sent on."""
    for i in range(n):
        client.data_received(data)
        for conn in conns:
            if conn.owner is not None:
                conn.data_received(RESPONSE)
                break
        else:
            raise AssertionError("the request went to no target")
        if i % 50 == 49:
            await asyncio.sleep(0)         # a loop turn: the access log flushes


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bal-inprocess-") as workdir:
        client, conns, transport, alb = build(workdir)
        data = request_bytes(args.path)
        await batch(client, conns, data, 500)                     # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            started = time.process_time()
            await batch(client, conns, data, args.requests)
            best = min(best, time.process_time() - started)
        writes = transport.writes
        print(f"{args.path}: {best * 1e6 / args.requests:.1f} µs per request (best of "
              f"{args.repeats} × {args.requests}); client writes per request "
              f"{writes / (500 + args.repeats * args.requests):.2f}")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await batch(client, conns, data, args.requests)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        alb.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.apigw.inprocess",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--path", default="/api/hello")
    parser.add_argument("--profile", action="store_true")
    uvloop.run(main(parser.parse_args()))
