"""The proxy engine (dataplane/services/proxy/engine.py) without sockets: a client connection fed
bytes through a fake transport, a recording personality, a fake backend group. What is
checked: framing, limits, pipelining, errors counted and answered, never an exception."""
from __future__ import annotations

import asyncio

import pytest

from dataplane.services.proxy import engine
from dataplane.services.proxy.backend import BackendPool
from dataplane.services.proxy.engine import ClientConnection, ProxyServer
from dataplane.services.proxy.personality import Forward, Limits, Personality, Request


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.paused = False
        self.protocol = None

    def get_extra_info(self, name: str):
        return {"peername": ("10.0.0.9", 5555), "sockname": ("10.0.0.1", 80)}.get(name)

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    abort = close

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    @property
    def data(self) -> bytes:
        return b"".join(self.written)


class Group:
    """A backend group that hands out one fake connection, or never answers."""

    def __init__(self, answers: bool = True) -> None:
        self.answers = answers
        self.sent: list[bytes] = []
        self.waiting: list = []

    def acquire(self, owner, fresh: bool = False) -> None:
        if self.answers:
            owner.backend_ready(self)
        else:
            self.waiting.append(owner)

    def forget(self, owner) -> None:
        self.waiting.remove(owner)

    # the connection's side
    group = property(lambda self: self)
    transport = property(lambda self: self)

    def send(self, owner, data: bytes, head_only: bool) -> None:
        self.sent.append(data)

    def write(self, data: bytes) -> None:
        self.sent[-1] += data

    def release(self, conn, reusable: bool) -> None:
        pass


class Recorder(Personality):
    def __init__(self, group=None, raises: bool = False, limits: Limits = Limits()) -> None:
        self.group, self.raises, self.limits = group, raises, limits
        self.errors: list[tuple[str, Request | None]] = []

    def route(self, request: Request) -> Forward | bytes:
        if self.raises:
            raise RuntimeError("a bug")
        if self.group is not None:
            return Forward(self.group, f"{request.method} {request.target} HTTP/1.1\r\n".encode(),
                           0.05)
        body = f"{request.method} {request.target} {len(request.body)}".encode()
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def response(self, request, forward, status, head, body) -> bytes:
        return b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)

    def error(self, kind, request, forward, detail) -> bytes | None:
        self.errors.append((kind, request))
        return b"HTTP/1.1 599 %s\r\nContent-Length: 0\r\n\r\n" % kind.encode()


def connected(personality: Recorder) -> tuple[ClientConnection, Transport, ProxyServer]:
    """A client connection of a new server, made inside a running loop."""
    server = ProxyServer(personality, BackendPool(personality.limits))
    conn = ClientConnection(server, tls=False)
    transport = Transport()
    transport.protocol = conn
    conn.connection_made(transport)
    return conn, transport, server


def run(personality: Recorder, *chunks: bytes, wait: float = 0.0) -> tuple[Transport, ProxyServer]:
    async def go():
        conn, transport, server = connected(personality)
        for chunk in chunks:
            conn.data_received(chunk)
            await asyncio.sleep(0)
        await asyncio.sleep(wait)
        await asyncio.sleep(0)
        return transport, server
    return asyncio.run(go())


def test_pipelined_requests_are_answered_in_order() -> None:
    reqs = b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(2000))
    transport, server = run(Recorder(), reqs)
    answers = transport.data.split(b"HTTP/1.1 200 OK")[1:]
    assert len(answers) == 2000 and b"GET /1999 0" in answers[-1] and b"GET /0 0" in answers[0]
    assert server.requests == 2000 and server.status_classes[2] == 2000
    assert not transport.closed


def test_chunked_request_body_is_dechunked() -> None:
    transport, _ = run(Recorder(), b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
                       b"5\r\nhello\r\n", b"6\r\n world\r\n0\r\n\r\n")
    assert transport.data.endswith(b"POST /c 11")


def test_head_limit() -> None:
    personality = Recorder(limits=Limits(max_head_bytes=200))
    transport, server = run(personality, b"GET / HTTP/1.1\r\nX: " + b"a" * 300 + b"\r\n\r\n")
    assert personality.errors[0][0] == "head_too_large"
    assert transport.data.startswith(b"HTTP/1.1 599 head_too_large") and transport.closed
    assert server.errors["head_too_large"] == 1
    # a header that never ends is refused too, not held
    personality = Recorder(limits=Limits(max_head_bytes=200))
    transport, _ = run(personality, b"GET / HTTP/1.1\r\nX: ", *[b"a" * 1000] * 5)
    assert personality.errors[0][0] == "head_too_large"


def test_body_limit_by_content_length_and_by_chunks() -> None:
    personality = Recorder(limits=Limits(max_body_bytes=10))
    transport, _ = run(personality, b"POST / HTTP/1.1\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
    kind, request = personality.errors[0]
    assert kind == "body_too_large" and request.method == "POST" and not request.keep_alive
    assert b"100 Continue" not in transport.data and transport.closed
    personality = Recorder(limits=Limits(max_body_bytes=10))
    run(personality, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n",
        b"8\r\n12345678\r\n")
    assert personality.errors[0][0] == "body_too_large"


def test_expect_continue_is_answered() -> None:
    transport, _ = run(Recorder(), b"PUT /e HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
                       b"ok")
    assert transport.data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")


def test_malformed_requests() -> None:
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"GET / HTTP/9.9\r\n\r\n",
                 b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"):
        personality = Recorder()
        transport, server = run(personality, junk)
        assert [k for k, _ in personality.errors] == ["bad_request"], junk
        assert transport.closed and server.errors["bad_request"] == 1


def test_a_personality_that_raises_closes_the_connection_only() -> None:
    transport, server = run(Recorder(raises=True), b"GET / HTTP/1.1\r\n\r\n")
    assert transport.closed and transport.data == b"" and server.errors["internal"] == 1


def test_forward_frames_the_body_and_answers() -> None:
    group = Group()
    personality = Recorder(group)

    async def go():
        conn, transport, server = connected(personality)
        conn.data_received(b"POST /f HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        assert group.sent == [b"POST /f HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"]
        conn.backend_response(201, b"A: b\r\n", b"done")
        conn.data_received(b"GET /g HTTP/1.1\r\n\r\n")
        assert group.sent[-1] == b"GET /g HTTP/1.1\r\n\r\n"
        conn.backend_failed("backend_closed", "reset", False)
        return transport
    transport = asyncio.run(go())
    assert transport.data.startswith(b"HTTP/1.1 201 X\r\nContent-Length: 4\r\n\r\ndone")
    assert transport.data.endswith(b"HTTP/1.1 599 backend_closed\r\nContent-Length: 0\r\n\r\n")
    assert not transport.closed


def test_timeout_while_waiting_for_a_connection() -> None:
    group = Group(answers=False)
    personality = Recorder(group)
    transport, server = run(personality, b"GET /t HTTP/1.1\r\n\r\n", wait=0.2)
    assert personality.errors[0][0] == "timeout" and group.waiting == []
    assert transport.data.startswith(b"HTTP/1.1 599 timeout") and server.errors["timeout"] == 1


def test_a_long_timeout_is_timed_by_the_sweep_not_a_timer(monkeypatch) -> None:
    """A timeout of SWEPT_TIMEOUT_S or more is a deadline the sweep checks: no timer is
    made for the exchange, and it still ends in `timeout`, not before its time."""
    monkeypatch.setattr(engine, "SWEPT_TIMEOUT_S", 0.05)     # the Recorder's timeout
    monkeypatch.setattr(engine, "SWEEP_S", 0.01)
    group = Group(answers=False)
    personality = Recorder(group)

    async def go():
        conn, transport, server = connected(personality)
        server.start_sweeping()
        started = asyncio.get_running_loop().time()
        conn.data_received(b"GET /t HTTP/1.1\r\n\r\n")
        timer, deadline = conn._timer, conn.exchange_deadline
        while not personality.errors and asyncio.get_running_loop().time() - started < 2:
            await asyncio.sleep(0.005)
        elapsed = asyncio.get_running_loop().time() - started
        await server.close()
        return timer, deadline - started, elapsed, transport, server
    timer, deadline, elapsed, transport, server = asyncio.run(go())
    assert timer is None and deadline == pytest.approx(0.05, abs=0.01)
    assert personality.errors[0][0] == "timeout" and group.waiting == []
    assert 0.05 <= elapsed < 1.0
    assert transport.data.startswith(b"HTTP/1.1 599 timeout") and server.errors["timeout"] == 1


def test_a_short_timeout_has_its_own_timer() -> None:
    personality = Recorder(Group(answers=False))

    async def go():
        conn, transport, server = connected(personality)
        conn.data_received(b"GET /t HTTP/1.1\r\n\r\n")
        return conn._timer is not None, conn.exchange_deadline
    assert asyncio.run(go()) == (True, 0.0)


def test_client_closing_mid_body_is_counted() -> None:
    async def go():
        conn, transport, server = connected(Recorder())
        conn.data_received(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\npart")
        conn.connection_lost(ConnectionResetError())
        return server
    server = asyncio.run(go())
    assert server.errors["client_closed"] == 1 and not server.connections


def test_request_line_and_header_line_bounds() -> None:
    """An ALB's bounds: the request line and one header each at most N bytes, apart from
    the whole head's (0, the default, leaves only the head's: API Gateway's)."""
    limits = Limits(max_head_bytes=4000, max_request_line_bytes=100, max_header_line_bytes=100)
    personality = Recorder(limits=limits)
    run(personality, b"GET /" + b"a" * 120 + b" HTTP/1.1\r\n\r\n")
    assert [k for k, _ in personality.errors] == ["head_too_large"]
    personality = Recorder(limits=limits)
    run(personality, b"GET / HTTP/1.1\r\nX: " + b"b" * 120 + b"\r\n\r\n")
    assert [k for k, _ in personality.errors] == ["head_too_large"]
    personality = Recorder(limits=limits)
    headers = b"".join(b"X-%d: %s\r\n" % (i, b"c" * 80) for i in range(10))
    transport, _ = run(personality, b"GET /" + b"a" * 80 + b" HTTP/1.1\r\n" + headers + b"\r\n")
    assert personality.errors == [] and transport.data.startswith(b"HTTP/1.1 200 OK")
    personality = Recorder()                      # no separate bounds by default
    transport, _ = run(personality, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n")
    assert personality.errors == [] and transport.data.startswith(b"HTTP/1.1 200 OK")


def test_transfer_codings_other_than_chunked_or_identity_are_refused() -> None:
    for coding in (b"gzip", b"gzip, chunked", b"x-custom"):
        personality = Recorder()
        transport, server = run(personality, b"POST / HTTP/1.1\r\nTransfer-Encoding: " + coding
                                + b"\r\n\r\n0\r\n\r\n")
        assert [k for k, _ in personality.errors] == ["unsupported_transfer_coding"], coding
        assert transport.closed and server.errors["unsupported_transfer_coding"] == 1
    personality = Recorder()
    transport, _ = run(personality, b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n")
    assert personality.errors == [] and transport.data.startswith(b"HTTP/1.1 200 OK")


def test_a_client_leaving_during_its_exchange_is_told_to_the_personality() -> None:
    group = Group(answers=False)

    class Told(Recorder):
        def closed(self, request, forward, detail) -> None:
            self.errors.append(("closed", request))

    personality = Told(group)

    async def go():
        conn, transport, server = connected(personality)
        conn.data_received(b"GET /slow HTTP/1.1\r\n\r\n")
        conn.connection_lost(ConnectionResetError("reset"))
        return server
    server = asyncio.run(go())
    assert [(k, r.target) for k, r in personality.errors] == [("closed", "/slow")]
    assert server.errors["client_closed"] == 1 and group.waiting == []
