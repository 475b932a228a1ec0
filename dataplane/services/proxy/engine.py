"""The proxy engine: client connections in, backend connections out, the personality
deciding in between (personality.py says what it decides; backend.py holds the pools).

How a request goes through:

1. Bytes from the client feed an httptools request parser (one per connection). Its
   callbacks collect the URL, the headers — a list of (name, value) pairs — and the body,
   counting the head's bytes as they come. Over `max_head_bytes` the request is refused
   (`head_too_large`) before the head is complete; a Content-Length over
   `max_body_bytes`, or a chunked body that grows past it, is refused (`body_too_large`)
   as soon as it is known, without reading the rest. A client that sends
   `Expect: 100-continue` gets `100 Continue` once its head passed those checks.
2. A complete request goes to `personality.route()`. Bytes back: they are the response.
   A `Forward`: the exchange gets its deadline, the group gives a connection (an idle
   one, a new one, or a place in its queue), and the head plus the body, framed with a
   Content-Length, is written to it. A timeout of `SWEPT_TIMEOUT_S` or more (an ALB's
   idle timeout, API Gateway's 29 or 30 s) is one float on the connection that the sweep
   below checks, so it fires up to `SWEEP_S` late (under 5 %) and costs no timer per
   request — a timer made and cancelled per request cost ~3 % of an ALB node's CPU; a
   shorter one gets its own timer (`loop.call_later`), exact.
3. The backend's response is parsed (de-chunked; its body held, bounded like the
   request's) and handed to `personality.response()` — its header lines as bytes, as
   the backend sent them, for the personality to copy through with what it changes
   rather than rebuild — whose bytes go to the client.
   Every failure on the way — refused, reset, timed out, junk, too large — goes to
   `personality.error()` instead; its bytes (or nothing: close) go to the client.
4. Keep-alive: the connection waits for the next request (`idle_timeout_s`). Requests
   pipelined behind one in progress are parsed and queued, and the connection stops
   reading while any wait, so a client can't queue unboundedly; they are answered in order.

Bad clients cost a counted error and a log line, never the process: malformed HTTP
(`bad_request`), a head or body too big, a client that trickles its head or body
(`read_timeout`: a sweep every `SWEEP_S` closes connections past their read deadline —
one float per connection, no timer per request), a client that closes mid-request
(`client_closed`: the backend connection of its exchange is aborted, not reused, and
the personality is told with `closed()`), a Transfer-Encoding other than chunked or
identity (`unsupported_transfer_coding`). Bad
backends likewise (`connect_failed`, `connect_timeout`, `backend_closed`, `backend_bad_response`,
`response_too_large`, `timeout`). A personality that raises is a bug: counted
(`errors.internal`), logged with its traceback, and the client's connection is closed.

Every message the engine forwards is re-framed: bodies go on with a Content-Length, never
chunked, because the whole body is held (API Gateway does the same: it has a payload
limit, not a stream). Upgrades (WebSocket) are not proxied: the request is answered
and the connection closed.

A listener with `proxy_protocol` (dataplane/services/proxy/proxy_protocol.py) accepts
its connections itself and reads a PROXY v2 header from each before anything else: exactly
the header's bytes (its length is in its first 16), so the TLS ClientHello behind it stays
in the socket, which then goes to the TLS layer and a `ClientConnection` as on any
listener (`loop.connect_accepted_socket`). Every request of the connection carries the
header as `Request.proxy`. A LOCAL header (a balancer's health check) is served like a
PROXY one, with no client in it (`proxy.command == "LOCAL"`, addresses None: the
personality decides). A connection whose first bytes are not a valid header, or whose
header does not arrive within `header_timeout_s`, is closed without a word and counted
(`bad_proxy_header`); one closed before its first byte (a TCP health check's connect) is
closed quietly. The cost is paid on that listener only — a coroutine per connection until
its header is read, two or three recv calls — the others keep asyncio's own accept path.

Counters (`stats()`): connections (open and total), requests, responses by status class,
errors by kind, and on a server with a PROXY-protocol listener the headers read by command.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import socket
import ssl
import time
from typing import Any

import httptools

from .backend import BackendConnection, BackendPool
from .personality import CLOSING, ERRORS, Forward, Personality, Request
from .proxy_protocol import FIXED, LOCAL, PROXY, SIGNATURE, ProxyHeader, ProxyHeaderError, \
    header_length, parse

log = logging.getLogger("vpclab.proxy")

SWEEP_S = 0.25                  # how often read and exchange deadlines are checked
SWEPT_TIMEOUT_S = 5.0           # exchanges with a timeout this long are timed by the sweep
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing: the request breaks a limit."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class ProxyServer:
    """Listeners, their client connections and the counters, for one personality."""

    def __init__(self, personality: Personality, pool: BackendPool) -> None:
        self.personality = personality
        self.limits = personality.limits
        self.pool = pool
        self.connections: set[ClientConnection] = set()
        self.servers: list[asyncio.base_events.Server] = []
        self.accepted = 0
        self.requests = 0
        self.status_classes = [0] * 6          # index: status // 100
        self.errors: dict[str, int] = dict.fromkeys([*ERRORS, "internal"], 0)
        self._sweeper: asyncio.Task | None = None
        self._proxied: list[tuple[socket.socket, asyncio.Task]] = []
        self._headers_pending: set[asyncio.Task] = set()
        self.proxy_headers = {LOCAL: 0, PROXY: 0}

    async def listen(self, host: str, port: int, tls: ssl.SSLContext | None = None,
                     proxy_protocol: bool = False) -> None:
        """Listens on host:port (TLS with `tls`); with `proxy_protocol` every connection
        must start with a PROXY v2 header, read before TLS (see the module docstring)."""
        loop = asyncio.get_running_loop()
        if proxy_protocol:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.create_server((host, port), family=family, backlog=1024)
            sock.setblocking(False)
            self._proxied.append((sock, loop.create_task(self._accept_proxied(sock, tls))))
        else:
            server = await loop.create_server(lambda: ClientConnection(self, tls is not None),
                                              host, port, ssl=tls, reuse_address=True,
                                              ssl_handshake_timeout=self.limits.header_timeout_s
                                              if tls else None)
            self.servers.append(server)
        self.start_sweeping()

    def start_sweeping(self) -> None:
        """Starts the sweep of read and exchange deadlines (once; `listen` calls it)."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _accept_proxied(self, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(sock)
            except OSError as exc:       # out of descriptors, say: try again in a moment
                log.warning("accept on %s: %s", sock.getsockname(), exc)
                await asyncio.sleep(0.1)
                continue
            task = loop.create_task(self._proxied_connection(conn, (peer[0], peer[1]), tls))
            self._headers_pending.add(task)
            task.add_done_callback(self._headers_pending.discard)

    async def _proxied_connection(self, conn: socket.socket, peer: tuple[str, int],
                                  tls: ssl.SSLContext | None) -> None:
        """Reads the PROXY header (exactly its bytes, nothing after), then hands the
        socket to a ClientConnection (after the TLS handshake, with `tls`)."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.limits.header_timeout_s):
                header = await read_proxy_header(loop, conn)
        except ProxyHeaderError as exc:
            self.error("bad_proxy_header", str(exc), peer)
            conn.close()
            return
        except TimeoutError:
            self.error("bad_proxy_header", "no whole header within "
                       f"{self.limits.header_timeout_s:g} s", peer)
            conn.close()
            return
        except OSError:                      # reset before the header was whole
            conn.close()
            return
        except BaseException:                # cancelled: the server is closing
            conn.close()
            raise
        if header is None:                   # closed before a byte: a TCP health check
            conn.close()
            return
        self.proxy_headers[header.command] += 1
        try:
            await loop.connect_accepted_socket(
                lambda: ClientConnection(self, tls is not None, header), conn, ssl=tls,
                ssl_handshake_timeout=self.limits.header_timeout_s if tls else None)
        except (OSError, ssl.SSLError, TimeoutError) as exc:   # a failed TLS handshake
            log.debug("%s:%s TLS handshake after the PROXY header: %r", *peer, exc)
            conn.close()
        except BaseException:                # cancelled mid-handshake: the server is closing
            conn.close()
            raise

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_S)
            now = loop.time()
            for conn in [c for c in self.connections if 0.0 < c.deadline < now]:
                conn.read_timed_out()
            for conn in [c for c in self.connections if 0.0 < c.exchange_deadline < now]:
                conn.exchange_timed_out()

    async def close(self) -> None:
        """Stops listening, closes every client connection and every pooled one."""
        for server in self.servers:
            server.close()
        for sock, task in self._proxied:
            task.cancel()
            sock.close()
        for task in list(self._headers_pending):
            task.cancel()
        self._proxied.clear()
        for conn in list(self.connections):
            conn.close()
        self.pool.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in self.servers:
            await server.wait_closed()
        self.servers.clear()

    # -- counting ---------------------------------------------------------------------------
    def error(self, kind: str, detail: str, client: tuple[str, int]) -> None:
        self.errors[kind] += 1
        log.info("%s:%s %s: %s (%s)", client[0], client[1], kind, ERRORS[kind], detail)

    def stats(self) -> dict[str, Any]:
        return {"connections": len(self.connections), "connections_total": self.accepted,
                "requests": self.requests,
                "responses": {f"{i}xx": n for i, n in enumerate(self.status_classes) if i},
                "errors": dict(self.errors),
                **({"proxy_protocol": dict(self.proxy_headers)} if self._proxied else {})}


class ClientConnection(asyncio.Protocol):
    """One client connection (see the module docstring for the life of a request)."""

    def __init__(self, server: ProxyServer, tls: bool | tuple,
                 proxy: ProxyHeader | None = None) -> None:
        self.server = server
        self.proxy = proxy
        self.personality = server.personality
        self.limits = server.limits
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.loop = asyncio.get_running_loop()
        self.client = ("?", 0)
        self.local = ("?", 0)
        self.deadline = 0.0             # read deadline (loop time), 0: none (a request is served)
        self.exchange_deadline = 0.0    # a swept exchange's deadline (loop time), 0: none
        self._reading = False           # a request's bytes have started and not all arrived
        self._url: list[bytes] = []
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0
        self._raw_bytes = 0             # bytes received since the head began (guard)
        self._content_length = -1
        self._expect_continue = False
        self._request: Request | None = None
        self._body: list[bytes] = []
        self._body_len = 0
        self._queue: collections.deque[Any] = collections.deque()
        self._active: Request | None = None
        self._forward: Forward | None = None
        self._backend: BackendConnection | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._retried = False
        self._broken = False            # no more parsing: answer what is queued, then close
        self._paused = False
        self._in_next = False

    # -- asyncio ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        if peer:
            self.client = (peer[0], peer[1])
        if sock:
            self.local = (sock[0], sock[1])
        if self.tls:
            ssl_object = transport.get_extra_info("ssl_object")
            cipher = ssl_object.cipher() if ssl_object is not None else None
            if cipher:                  # e.g. ECDHE-ECDSA-AES128-GCM-SHA256, TLSv1.2, the SNI name
                self.tls = (cipher[0], cipher[1], getattr(ssl_object, "sni_name", None))
        self.server.connections.add(self)
        self.server.accepted += 1
        self.deadline = self.loop.time() + self.limits.idle_timeout_s

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None
        self.deadline = 0.0
        if self._active is not None or self._reading:
            why = "during its request" if self._reading else "while its request was served"
            self.server.error("client_closed", why + (f": {exc}" if exc else ""), self.client)
        if self._active is not None:
            request, forward = self._active, self._forward
            self._end_exchange(abandon=True)
            self._active = None
            try:
                self.personality.closed(request, forward, str(exc) if exc else "closed")
            except Exception as error:  # noqa: BLE001 - a personality bug must not end the process
                self.server.errors["internal"] += 1
                log.error("%s:%s internal error (a bug): %r", *self.client, error,
                          exc_info=error)
        self._queue.clear()

    def data_received(self, data: bytes) -> None:
        if self._broken:
            return
        if self._reading and self._request is None:
            self._raw_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if isinstance(refused, _Refused):
                self._refuse(refused.kind, str(refused))
            else:
                self._internal(refused or exc)
        except httptools.HttpParserUpgrade:
            self._broken = True          # the upgraded stream is not HTTP any more
            if self._queue and self._queue[-1].__class__ is Request:
                self._queue[-1].keep_alive = False
        except httptools.HttpParserError as exc:
            self._refuse("bad_request", str(exc) or exc.__class__.__name__)
        else:
            if self._reading and self._request is None and \
                    self._raw_bytes > self.limits.max_head_bytes + 1024:
                self._refuse("head_too_large", f"{self._raw_bytes} bytes and no end of head")
        if self._reading and self.deadline == 0.0 and not self._broken:
            # the request is not whole yet: its head (or its body) must come in time. Set
            # here, once per read that leaves a request unfinished, rather than by each
            # request's callbacks: a request that arrives in one read reads no clock for it
            self.deadline = self.loop.time() + (self.limits.header_timeout_s
                                                if self._request is None
                                                else self.limits.body_timeout_s)
        if self._queue:
            if self._active is None:
                self._next()
            elif not self._paused and self.transport is not None:
                self.transport.pause_reading()
                self._paused = True

    def eof_received(self) -> bool | None:
        """The client will send no more: answer what it sent (then close), or close now."""
        if self._active is None and not self._queue:
            return None
        self._broken = True
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def read_timed_out(self) -> None:
        """The sweep found this connection past its read deadline."""
        self.deadline = 0.0
        if self.transport is None:
            return
        if not self._reading:            # an idle keep-alive connection: close it quietly
            self.transport.close()
            return
        self._reading = False
        if self._active is not None:     # a pipelined request trickles behind one being served
            self.server.error("read_timeout", "behind a request in progress", self.client)
            self.transport.close()
            return
        self._broken = True
        self._fail("read_timeout", self._request, None, "the head or body did not arrive in time")

    # -- httptools callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._reading = True
        self._url = []
        self._headers = []
        self._head_bytes = 0
        self._raw_bytes = 0
        self._content_length = -1
        self._expect_continue = False
        self._request = None
        self._body = []
        self._body_len = 0
        self.deadline = 0.0             # data_received sets the head's if this read ends it not

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._head_bytes += len(url)
        bound = self.limits.max_request_line_bytes
        if bound and self._head_bytes > bound:
            raise _Refused("head_too_large", f"a request line over {bound} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.limits.max_head_bytes:
            raise _Refused("head_too_large", f"over {self.limits.max_head_bytes} bytes of head")
        bound = self.limits.max_header_line_bytes
        if bound and len(name) + len(value) > bound:
            raise _Refused("head_too_large", f"a header line over {bound} bytes")
        n = len(name)
        if n == 17 and name.lower() == b"transfer-encoding":
            for coding in value.lower().split(b","):
                if coding.strip() not in (b"chunked", b"identity"):
                    raise _Refused("unsupported_transfer_coding",
                                   f"Transfer-Encoding {value[:40]!r}")
        elif n == 14 and name.lower() == b"content-length":
            try:
                self._content_length = int(value)
            except ValueError:
                raise _Refused("bad_request", f"Content-Length {value[:40]!r}") from None
        elif n == 6 and name.lower() == b"expect":
            self._expect_continue = value.lower() == b"100-continue"
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        parser = self.parser
        method = parser.get_method().decode("latin-1")
        url = self._url[0] if len(self._url) == 1 else b"".join(self._url)
        # the request line as sent: METHOD SP target SP HTTP/1.1 CRLF
        self._head_bytes += len(method) + 12
        limits = self.limits
        request = Request(method, url.decode("latin-1"), parser.get_http_version(),
                          self._headers, parser.should_keep_alive(), self.client, self.local,
                          self.tls, time.time(), self.loop.time(), self.proxy)
        self._request = request
        if self._head_bytes > limits.max_head_bytes:
            raise _Refused("head_too_large", f"{self._head_bytes} bytes of head")
        if self._content_length > limits.max_body_bytes:
            raise _Refused("body_too_large", f"Content-Length {self._content_length}")
        if self._expect_continue and self.transport is not None:
            self.transport.write(CONTINUE)
        self.deadline = 0.0             # data_received sets the body's if this read ends it not

    def on_body(self, data: bytes) -> None:
        self._body_len += len(data)
        if self._body_len > self.limits.max_body_bytes:
            raise _Refused("body_too_large", f"over {self.limits.max_body_bytes} bytes of body")
        self._body.append(data)

    def on_message_complete(self) -> None:
        request = self._request
        if self._body:
            request.body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            self._body = []
        self._request = None
        self._reading = False
        self.deadline = 0.0
        self._queue.append(request)

    # -- serving ----------------------------------------------------------------------------
    def _refuse(self, kind: str, detail: str) -> None:
        """The client broke the protocol or a limit: answer in turn, then close."""
        self._broken = True
        self._reading = False
        self.deadline = 0.0
        self._queue.append((kind, self._request, detail))
        self._request = None

    def _next(self) -> None:
        if self._in_next:                # re-entered from _send: the outer loop continues
            return
        self._in_next = True
        try:
            while self._queue and self._active is None and self.transport is not None:
                item = self._queue.popleft()
                if item.__class__ is tuple:
                    kind, request, detail = item
                    self._fail(kind, request, None, detail)
                else:
                    self._start(item)
        finally:
            self._in_next = False
        if self._paused and not self._queue and self.transport is not None and not self._broken:
            self.transport.resume_reading()
            self._paused = False

    def _start(self, request: Request) -> None:
        self.server.requests += 1
        try:
            decision = self.personality.route(request)
        except Exception as exc:  # noqa: BLE001 - a personality bug must not end the process
            self._internal(exc)
            return
        if decision.__class__ is bytes:
            self._send(request, decision)
            return
        self._active = request
        self._forward = decision
        self._retried = False
        timeout = decision.timeout_s
        if timeout >= SWEPT_TIMEOUT_S:
            self.exchange_deadline = self.loop.time() + timeout
        else:
            self._timer = self.loop.call_later(timeout, self.exchange_timed_out)
        decision.group.acquire(self)

    def backend_ready(self, conn: BackendConnection) -> None:
        request = self._active
        if request is None or self._backend is not None or self.transport is None:
            conn.group.release(conn, True)      # this client gave up meanwhile
            return
        self._backend = conn
        body = request.body
        head = self._forward.head
        if body or request.method in _BODY_METHODS:
            head += b"Content-Length: %d\r\n\r\n" % len(body)
            data = head + body if len(body) < 65536 else None
            if data is None:
                conn.send(self, head, False)
                conn.transport.write(body)
                return
        else:
            data = head + b"\r\n"
        conn.send(self, data, request.method == "HEAD")

    def backend_response(self, status: int, head: bytes, body: bytes) -> None:
        request, forward = self._active, self._forward
        self._end_exchange(abandon=False)
        try:
            data = self.personality.response(request, forward, status, head, body)
        except Exception as exc:  # noqa: BLE001
            self._active = None
            self._internal(exc)
            return
        self._send(request, data)

    def backend_failed(self, kind: str, detail: str, retriable: bool) -> None:
        request, forward = self._active, self._forward
        if request is None:
            return
        if retriable and not self._retried:
            self._retried = True
            self._backend = None
            forward.group.acquire(self, fresh=True)
            return
        self._end_exchange(abandon=False)
        self._fail(kind, request, forward, detail)

    def exchange_timed_out(self) -> None:
        """The exchange's timer fired, or the sweep found it past its deadline."""
        self._timer = None
        self.exchange_deadline = 0.0
        request, forward = self._active, self._forward
        if request is None:
            return
        self._end_exchange(abandon=True)
        self._fail("timeout", request, forward, f"no response within {forward.timeout_s:g} s")

    def _end_exchange(self, abandon: bool) -> None:
        """Forgets the backend side of the exchange; `abandon` aborts its connection."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.exchange_deadline = 0.0
        conn = self._backend
        self._backend = None
        if abandon:
            if conn is not None:
                conn.abandon()
            elif self._forward is not None:
                self._forward.group.forget(self)
        self._active = None

    def _fail(self, kind: str, request: Request | None, forward: Forward | None,
              detail: str) -> None:
        self.server.error(kind, detail, self.client)
        if request is not None and kind in CLOSING:
            request.keep_alive = False
        try:
            data = self.personality.error(kind, request, forward, detail)
        except Exception as exc:  # noqa: BLE001
            self._internal(exc)
            return
        if data is None:
            if self.transport is not None:
                self.transport.close()
            return
        self._send(request, data)

    def _send(self, request: Request | None, data: bytes) -> None:
        transport = self.transport
        self._active = None
        if transport is None:
            return
        status = data[9:12]
        self.server.status_classes[(status[0] - 48) if status[:1].isdigit() else 0] += 1
        transport.write(data)
        if request is None or not request.keep_alive or self._broken and not self._queue:
            transport.close()
            return
        if self._queue:
            self._next()
        elif not self._reading:
            self.deadline = self.loop.time() + self.limits.idle_timeout_s

    def _internal(self, exc: BaseException) -> None:
        self.server.errors["internal"] += 1
        log.error("%s:%s internal error (a bug): %r", *self.client, exc, exc_info=exc)
        self._broken = True
        if self._active is not None:
            self._end_exchange(abandon=True)
        if self.transport is not None:
            self.transport.close()


async def read_proxy_header(loop: asyncio.AbstractEventLoop,
                            conn: socket.socket) -> ProxyHeader | None:
    """The PROXY v2 header at the start of `conn`, read to its last byte and not one byte
    further (what follows, a TLS ClientHello, stays in the socket for the TLS layer);
    None if the peer closed before sending anything. ProxyHeaderError if it is not one."""
    data = b""
    while len(data) < FIXED:
        chunk = await loop.sock_recv(conn, FIXED - len(data))
        if not chunk:
            if not data:
                return None
            raise ProxyHeaderError(f"closed after {len(data)} bytes of the header")
        data += chunk
        if data[:12] != SIGNATURE[:len(data)]:
            header_length(data)              # raises, saying what the bytes are
    total = header_length(data)
    while len(data) < total:
        chunk = await loop.sock_recv(conn, total - len(data))
        if not chunk:
            raise ProxyHeaderError(f"closed after {len(data)} of the header's {total} bytes")
        data += chunk
    return parse(data)
