"""Backend connections and their pool (dataplane/services/proxy/backend.py) without sockets: what a
backend may send back — interim responses, bodies delimited by close, junk, too much —
and when a connection goes back to its pool."""
from __future__ import annotations

import asyncio

from dataplane.services.proxy.backend import BackendConnection, BackendPool
from dataplane.services.proxy.personality import Limits


class Transport:
    def __init__(self) -> None:
        self.closed = False
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close


class Owner:
    def __init__(self) -> None:
        self.got: list = []

    def backend_response(self, status, headers, body) -> None:
        self.got.append(("response", status, headers, body))

    def backend_failed(self, kind, detail, retriable) -> None:
        self.got.append(("failed", kind, retriable))

    def backend_ready(self, conn) -> None:
        self.got.append(("ready", conn))


def connection(max_body: int = 100, max_head: int = 0) -> tuple[BackendConnection, Transport,
                                                                Owner]:
    limits = Limits(max_body_bytes=max_body, max_response_head_bytes=max_head)
    group = BackendPool(limits).group(None, ("10.0.0.1",), 80)
    group.open = 1
    conn = BackendConnection(group, "10.0.0.1")
    transport = Transport()
    conn.connection_made(transport)
    owner = Owner()
    conn.send(owner, b"GET / HTTP/1.1\r\n\r\n", head_only=False)
    return conn, transport, owner


def test_a_keep_alive_response_returns_the_connection_to_the_pool() -> None:
    conn, transport, owner = connection()
    conn.data_received(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\nok")
    assert owner.got == [("response", 200, b"Content-Length: 2\r\nX: y\r\n", b"ok")]
    assert conn.group.idle == [conn] and not transport.closed
    other = Owner()
    conn.group.acquire(other)
    assert other.got == [("ready", conn)] and conn.group.idle == []


def test_a_body_delimited_by_close_and_a_connection_close_response() -> None:
    conn, transport, owner = connection()
    conn.data_received(b"HTTP/1.1 200 OK\r\n\r\npart one, ")
    conn.data_received(b"part two")
    conn.connection_lost(None)
    assert owner.got == [("response", 200, b"", b"part one, part two")]
    conn, transport, owner = connection()
    conn.data_received(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert owner.got[0][1] == 200 and transport.closed and conn.group.idle == []


def test_junk_too_much_and_early_close() -> None:
    conn, transport, owner = connection()
    conn.data_received(b"SSH-2.0-OpenSSH_9.2\r\n")
    assert owner.got == [("failed", "backend_bad_response", False)] and transport.closed
    conn, transport, owner = connection(max_body=10)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a")
    assert owner.got == [("failed", "response_too_large", False)]
    conn, transport, owner = connection()
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01")
    conn.connection_lost(ConnectionResetError())
    assert owner.got == [("failed", "backend_closed", False)]
    conn, _, owner = connection()
    conn.data_received(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n")
    assert owner.got == [("failed", "backend_bad_response", False)]


def test_a_response_head_over_its_bound_is_a_bad_response() -> None:
    """An ALB's 32 K bound on response headers (0, the default, bounds nothing)."""
    conn, transport, owner = connection(max_head=100)
    conn.data_received(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 120 + b"\r\nContent-Length: 0\r\n\r\n")
    assert owner.got == [("failed", "backend_bad_response", False)] and transport.closed
    conn, transport, owner = connection(max_head=100)
    conn.data_received(b"HTTP/1.1 200 OK\r\nX-Big: ")     # a header that never ends
    conn.data_received(b"b" * 600)
    assert owner.got == []
    conn.data_received(b"b" * 600)
    assert owner.got == [("failed", "backend_bad_response", False)]
    conn, transport, owner = connection(max_head=100)  # a big body is no big head
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 90\r\n\r\n" + b"c" * 90)
    assert owner.got[0][:2] == ("response", 200)
    conn, transport, owner = connection()
    conn.data_received(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 5000 + b"\r\nContent-Length: 0\r\n\r\n")
    assert owner.got[0][:2] == ("response", 200)


def test_a_reused_connection_closed_before_any_byte_is_retriable() -> None:
    conn, transport, owner = connection()
    conn.data_received(b"HTTP/1.1 204 No Content\r\n\r\n")
    conn.send(owner, b"GET /again HTTP/1.1\r\n\r\n", head_only=False)
    conn.connection_lost(None)
    assert owner.got[-1] == ("failed", "backend_closed", True)


def test_bytes_after_a_complete_response_close_the_idle_connection() -> None:
    conn, transport, owner = connection()
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    conn.data_received(b"unasked")
    assert transport.closed and len(owner.got) == 1


def test_head_responses_complete_at_the_head() -> None:
    group = BackendPool(Limits()).group(None, ("10.0.0.1",), 80)
    conn = BackendConnection(group, "10.0.0.1")
    transport = Transport()
    conn.connection_made(transport)
    owner = Owner()
    conn.send(owner, b"HEAD / HTTP/1.1\r\n\r\n", head_only=True)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert owner.got == [("response", 200, b"Content-Length: 5\r\n", b"")] and transport.closed


def test_a_connect_that_times_out_is_its_own_kind_and_a_refused_one_another() -> None:
    """An ALB answers 504 to the first and 502 to the second (API Gateway: 500/503 to both)."""

    class Connector:
        def __init__(self, exc: BaseException | None) -> None:
            self.exc = exc

        async def connect(self, factory, netns, address, port):
            if self.exc is None:
                await asyncio.sleep(10)
            raise self.exc

        def close(self) -> None:
            pass

    async def attempt(exc: BaseException | None) -> list:
        pool = BackendPool(Limits(connect_timeout_s=0.05), Connector(exc))
        owner = Owner()
        group = pool.group(None, ("10.0.0.1",), 80)
        group.acquire(owner)
        for _ in range(50):
            await asyncio.sleep(0.01)
            if owner.got:
                break
        assert group.open == 0
        return owner.got

    assert asyncio.run(attempt(None)) == [("failed", "connect_timeout", False)]
    assert asyncio.run(attempt(ConnectionRefusedError(111, "Connection refused"))) == \
        [("failed", "connect_failed", False)]


def test_the_head_is_handed_on_as_sent_however_it_is_cut() -> None:
    """The header lines reach the owner byte for byte, whichever chunks they came in,
    after an interim response in a chunk of its own or sharing one with the head."""
    response = b"HTTP/1.1 200 OK\r\nX-A:  spaced  \r\nContent-Length: 2\r\n\r\nok"
    for cut in (5, 17, 20, 40, len(response) - 4, len(response) - 1):
        conn, _, owner = connection()
        conn.data_received(b"HTTP/1.1 100 Continue\r\n\r\n" + response[:cut])
        conn.data_received(response[cut:])
        assert owner.got == [("response", 200, b"X-A:  spaced  \r\nContent-Length: 2\r\n", b"ok")], cut
    conn, _, owner = connection()
    conn.data_received(b"HTTP/1.1 100 Continue\r\n\r\n")
    conn.data_received(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert owner.got == [("response", 204, b"", b"")]
    conn, _, owner = connection()                  # delimited by Content-Length: not by close
    conn.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab")
    conn.connection_lost(None)
    assert owner.got == [("failed", "backend_closed", False)]


def test_header_pairs_of_a_head() -> None:
    from dataplane.services.proxy.http import header_pairs
    assert header_pairs(b"Content-Type: text/plain\r\nX-E:\r\nX-S: \t a b \r\n") == \
        [("Content-Type", "text/plain"), ("X-E", ""), ("X-S", "a b")]
    assert header_pairs(b"") == []
