"""Backend connections: bounded keep-alive pools, one per backend group, and the connector
that opens a connection in another network namespace when the group lives there.

A `BackendGroup` is a set of addresses on one port in one namespace (None: the proxy's
own): an NLB's addresses behind a REST VPC link, a V2 link's target. A personality makes
its groups once, from its configuration, through `BackendPool.group(...)`, and names one
in each `Forward`, so the request path does no lookup. A group keeps:

* idle connections, newest last, reused first (LIFO keeps few connections warm);
* at most `Limits.max_connections_per_group` open connections; a request beyond that
  waits in the group's queue until one is released or its own deadline passes (so one
  slow backend fills its own pool, never another's);
* at most `Limits.max_idle_per_group` idle ones: the rest are closed on release.

New connections go to the group's addresses in turn (round robin), so an NLB's nodes
share the connections. A connection is reused only if its response said keep-alive and
was delimited (Content-Length or chunked); a response to HEAD closes the connection,
because httptools cannot be told that such a response has no body.

`Connector.connect` opens the socket: in the proxy's namespace with
`loop.create_connection`, or, for a group with a namespace, with
`netns_setup.nsenter.NetnsSockets(netns).socket()` (the socket belongs to that namespace
for life), a non-blocking connect, and `loop.create_connection(sock=...)`. That costs two
setns() calls per new connection, nothing per request.

A request sent over a reused connection that the backend closed meanwhile (the backend's
keep-alive expired as we sent) fails with no byte of response: the engine retries such a
request once on a new connection (`retriable`), as HTTP clients do.
"""
from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Callable

import httptools

from .personality import Limits

log = logging.getLogger("vpclab.proxy")


class _TooLarge(Exception):
    pass


class _HeadTooLarge(Exception):
    pass


class BackendConnection(asyncio.Protocol):
    """One connection to one backend address; serves one exchange at a time."""

    def __init__(self, group: "BackendGroup", address: str) -> None:
        self.group = group
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.owner: Any = None          # the client connection waiting for a response
        self.uses = 0
        self._pieces: list[bytes] = []  # what arrived while the head was incomplete
        self._head = b""                # the response's header lines as received
        self._body: list[bytes] = []
        self._body_len = 0
        self._raw_head = 0              # bytes received while its head was incomplete
        self._got_bytes = False
        self._head_only = False
        self._head_done = False

    # -- asyncio --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.group.lost(self)
        if self.owner is not None:
            if self._head_done and self._delimited_by_close():
                self._complete(False)
            else:
                why = f"{self.address}:{self.group.port}: " + (str(exc) if exc else "closed")
                self._fail("backend_closed", why)

    def data_received(self, data: bytes) -> None:
        if self.owner is None:           # bytes nobody asked for: the connection is unusable
            if self.transport is not None:
                self.transport.abort()
            return
        self._got_bytes = True
        if not self._head_done:
            self._pieces.append(data)
            self._raw_head += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _TooLarge):
                self._fail("response_too_large", f"{self.address}:{self.group.port}: more than "
                           f"{self.group.pool.limits.max_body_bytes} bytes")
            elif isinstance(exc.__context__, _HeadTooLarge):
                self._fail("backend_bad_response", f"{self.address}:{self.group.port}: a "
                           f"response head over "
                           f"{self.group.pool.limits.max_response_head_bytes} bytes")
            else:
                raise
        except httptools.HttpParserError as exc:
            self._fail("backend_bad_response", f"{self.address}:{self.group.port}: {exc}")
        except httptools.HttpParserUpgrade:   # after a 101, failed above: just close
            self._fail("backend_bad_response", f"{self.address}:{self.group.port}: an upgrade")
        else:
            bound = self.group.pool.limits.max_response_head_bytes
            if bound and self.owner is not None and not self._head_done:
                if self._raw_head > bound + 1024:    # a header that never ends is bounded too
                    self._fail("backend_bad_response", f"{self.address}:{self.group.port}: "
                               f"a response head over {bound} bytes")

    # -- httptools --------------------------------------------------------------------------
    def on_headers_complete(self) -> None:
        pieces = self._pieces
        raw = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        # llhttp accepts only CRLF line ends and no folded lines, so the first blank line
        # ends this head, and the header lines are "Name: value\r\n" as the target sent them
        end = raw.find(b"\r\n\r\n") + 2
        start = raw.find(b"\r\n") + 2
        status = self.parser.get_status_code()
        if status < 200 and status != 101:       # an interim response (100 Continue): wait on
            rest = raw[end + 2:]
            self._pieces = [rest] if rest else []
            self._raw_head = len(rest)
            return
        self._pieces = []
        bound = self.group.pool.limits.max_response_head_bytes
        if bound and end - start > bound:
            raise _HeadTooLarge()
        self._head = raw[start:end]
        self._head_done = True
        if self._head_only:
            self._complete(False)

    def on_body(self, data: bytes) -> None:
        if self.owner is None:
            return
        self._body_len += len(data)
        if self._body_len > self.group.pool.limits.max_body_bytes:
            raise _TooLarge()
        self._body.append(data)

    def on_message_complete(self) -> None:
        if self.owner is not None and self._head_done:
            if self.parser.get_status_code() == 101:     # nobody asked to switch protocols
                self._fail("backend_bad_response", f"{self.address}:{self.group.port}: an "
                           "unasked-for 101 Switching Protocols")
            else:
                self._complete(self.parser.should_keep_alive())

    # -- the exchange -----------------------------------------------------------------------
    def send(self, owner: Any, data: bytes, head_only: bool) -> None:
        self.owner = owner
        self.uses += 1
        self._pieces = []
        self._head = b""
        self._body = []
        self._body_len = 0
        self._raw_head = 0
        self._got_bytes = False
        self._head_only = head_only
        self._head_done = False
        self.transport.write(data)  # type: ignore[union-attr]

    def abandon(self) -> None:
        """The client gave up (timeout, closed): this connection's state is unknown, close it."""
        self.owner = None
        if self.transport is not None:
            self.transport.abort()

    def _delimited_by_close(self) -> bool:
        head = b"\r\n" + self._head.lower()
        return b"\r\ncontent-length:" not in head and b"\r\ntransfer-encoding:" not in head

    def _complete(self, reusable: bool) -> None:
        owner = self.owner
        self.owner = None
        body = self._body
        body = (body[0] if len(body) == 1 else b"".join(body)) if body else b""
        head = self._head
        status = self.parser.get_status_code()
        self._body = []
        self.group.release(self, reusable)
        owner.backend_response(status, head, body)

    def _fail(self, kind: str, detail: str) -> None:
        owner = self.owner
        self.owner = None
        retriable = kind == "backend_closed" and not self._got_bytes and self.uses > 1
        self.group.release(self, False)
        if owner is not None:        # else the response was complete and this is what followed
            owner.backend_failed(kind, detail, retriable)


class BackendGroup:
    """Addresses on one port in one namespace, and their pool (see the module docstring)."""

    def __init__(self, pool: "BackendPool", netns: str | None, addresses: tuple[str, ...],
                 port: int) -> None:
        if not addresses:
            raise ValueError("a backend group needs at least one address")
        self.pool = pool
        self.netns = netns
        self.addresses = addresses
        self.port = port
        self.idle: list[BackendConnection] = []
        self.open = 0
        self.waiters: collections.deque[Any] = collections.deque()
        self._turn = 0

    def __repr__(self) -> str:
        where = f" in {self.netns}" if self.netns else ""
        return f"<BackendGroup {','.join(self.addresses)}:{self.port}{where}>"

    def acquire(self, owner: Any, fresh: bool = False) -> None:
        """Calls `owner.backend_ready(conn)` now or later, or `owner.backend_failed(...)`."""
        idle = self.idle
        while idle and not fresh:
            conn = idle.pop()
            if conn.transport is not None and not conn.transport.is_closing():
                owner.backend_ready(conn)
                return
        if self.open < self.pool.limits.max_connections_per_group:
            self._open_for(owner)
        else:
            self.waiters.append(owner)

    def forget(self, owner: Any) -> None:
        """`owner` no longer waits (its deadline passed or its client left)."""
        try:
            self.waiters.remove(owner)
        except ValueError:
            pass

    def release(self, conn: BackendConnection, reusable: bool) -> None:
        transport = conn.transport
        if reusable and transport is not None and not transport.is_closing():
            if self.waiters:
                self.waiters.popleft().backend_ready(conn)
                return
            if len(self.idle) < self.pool.limits.max_idle_per_group:
                self.idle.append(conn)
                return
        if transport is not None:
            transport.close()

    def lost(self, conn: BackendConnection) -> None:
        """A connection of this group closed (connection_lost)."""
        self.open -= 1
        if conn in self.idle:
            self.idle.remove(conn)
        if self.waiters and self.open < self.pool.limits.max_connections_per_group:
            self._open_for(self.waiters.popleft())

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()
        self.idle.clear()

    def _open_for(self, owner: Any) -> None:
        self.open += 1
        address = self.addresses[self._turn % len(self.addresses)]
        self._turn += 1
        asyncio.get_running_loop().create_task(self._connect(owner, address))

    async def _connect(self, owner: Any, address: str) -> None:
        pool = self.pool
        try:
            # asyncio.timeout, not wait_for: see services/alb/health.py check_once
            async with asyncio.timeout(pool.limits.connect_timeout_s):
                _, conn = await pool.connector.connect(
                    lambda: BackendConnection(self, address), self.netns, address, self.port)
        except (OSError, asyncio.TimeoutError) as exc:
            self.open -= 1
            if isinstance(exc, asyncio.TimeoutError):
                owner.backend_failed("connect_timeout", f"{address}:{self.port}: no answer "
                                     f"within {pool.limits.connect_timeout_s:g} s", False)
            else:
                owner.backend_failed("connect_failed", f"{address}:{self.port}: {exc}", False)
            if self.waiters and self.open < pool.limits.max_connections_per_group:
                self._open_for(self.waiters.popleft())
            return
        owner.backend_ready(conn)


class Connector:
    """Opens backend sockets, in another network namespace when asked."""

    def __init__(self) -> None:
        self._namespaces: dict[str, Any] = {}

    async def connect(self, factory: Callable[[], asyncio.Protocol], netns: str | None,
                      address: str, port: int) -> tuple[asyncio.BaseTransport, Any]:
        loop = asyncio.get_running_loop()
        if netns is None:
            return await loop.create_connection(factory, address, port)
        sockets = self._namespaces.get(netns)
        if sockets is None:
            from netns_setup.nsenter import NetnsSockets   # only proxies that use namespaces
            sockets = self._namespaces[netns] = NetnsSockets(netns)
        sock = sockets.socket()
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, (address, port))
            return await loop.create_connection(factory, sock=sock)
        except BaseException:
            sock.close()
            raise

    def close(self) -> None:
        for sockets in self._namespaces.values():
            sockets.close()
        self._namespaces.clear()


class BackendPool:
    """Every backend group of one proxy, with the limits they share."""

    def __init__(self, limits: Limits, connector: Connector | None = None) -> None:
        self.limits = limits
        self.connector = connector or Connector()
        self.groups: dict[tuple[str | None, tuple[str, ...], int], BackendGroup] = {}

    def group(self, netns: str | None, addresses: tuple[str, ...], port: int) -> BackendGroup:
        """The group of these addresses (made once; routes to the same backends share it)."""
        key = (netns, tuple(addresses), port)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = BackendGroup(self, netns, tuple(addresses), port)
        return group

    def close(self) -> None:
        for group in self.groups.values():
            group.close()
        self.connector.close()
