"""What it costs a program to pick a VPC link per connection.

The kernel vpclab runs on has no VRFs (CONFIG_NET_VRF is not set on this machine), so
each HTTP-API VPC link is a routing domain of its own as a small namespace
`<lab>.apigw.<link>`, and a program in API Gateway's VPC opens each backend socket in the
link's namespace with `nsenter.NetnsSockets` (setns there, socket(), setns back). This
measures that against a plain socket() and against a whole loopback TCP connection
(socket, connect, accept, close), so the overhead can be read as a share of a connection.
Needs root; the namespace `t3bls.link` is made and removed here. Nothing asserts on time.
"""
from __future__ import annotations

import socket
import time

import pytest

from conftest import record
from netns_setup import kernel, nsenter

NS = "t3bls.link"
N = 5_000
ROUNDS = 5


@pytest.fixture(scope="module")
def link_ns():
    try:
        kernel.ensure_netns(NS, "vpclab.t3bls.lo")
        yield NS
    finally:
        kernel.remove_netns(NS)


def per_call_ns(make) -> list[float]:
    runs = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter_ns()
        for _ in range(N):
            make().close()
        runs.append((time.perf_counter_ns() - t0) / N)
    return runs


def test_socket_in_link_namespace(benchmark, link_ns) -> None:
    plain = per_call_ns(socket.socket)
    with nsenter.NetnsSockets(link_ns) as there:
        runs = benchmark.pedantic(lambda: per_call_ns(there.socket), rounds=1, iterations=1)
    record("socket(), this namespace", "ns/socket", plain, "-")
    record("socket() in a link namespace (2 × setns more)", "ns/socket", runs, "-")


def test_loopback_connection_for_scale(benchmark) -> None:
    """A whole TCP connection on loopback: what the setns pair is a share of."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1024)
        addr = server.getsockname()

        def one() -> socket.socket:
            c = socket.create_connection(addr)
            s, _ = server.accept()
            s.close()
            return c

        runs = benchmark.pedantic(lambda: per_call_ns(one), rounds=1, iterations=1)
    record("TCP connection on loopback (connect, accept, close)", "ns/connection", runs, "-")
