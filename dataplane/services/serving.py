"""What every vpclab service process built on the proxy engine shares, whatever its
personality (API Gateway's front end, an ALB node): reading its JSON configuration at
start (a problem is one line on stderr naming the field, exit status 2), its TLS server
context, its access-log files, its control socket, and its life — listen, say it is
ready, serve until SIGTERM, SIGINT or the control socket's `stop`, then close the
listeners, every connection and the socket file, well within a second.

The control socket speaks the forwarder's protocol (dataplane/forwarder/control.py: one
JSON object per line each way over a Unix socket); `ping` (→ `pid`) and `stop` are
answered here, every other command by the service's `handle(request)`. Clients use
`dataplane.forwarder.control.call(path, cmd)`.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import ssl
import sys
from typing import Any, Callable, TextIO, TypeVar

from dataplane.compile.spec import SpecError
from dataplane.forwarder.control import answer

ConfigError = SpecError
T = TypeVar("T")


def read_config(prog: str, path: str) -> Any:
    """The JSON document at `path`, or None after printing why not (the caller exits 2)."""
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as exc:
        print(f"{prog}: {path}: {exc.strerror}", file=sys.stderr)
    except ValueError as exc:
        print(f"{prog}: {path}: not JSON: {exc}", file=sys.stderr)
    return None


def read_keyed(read: Callable[[dict], T], doc: dict, key: str, what: str,
               id_field: str = "name") -> T:
    """`read(doc)` for a configuration whose `key` is an object of records keyed by name
    (`"links": {"app-link": {...}}`): each record is read with its `id_field`, as a list, and
    an error inside one is named by its key (`links.app-link.state`, not `links[1].state`).
    `what` says what the object should hold, for the error when it is not an object."""
    keyed = doc.get(key)
    if not isinstance(keyed, dict):
        raise ConfigError(key, f"{keyed!r} is not an object ({what})")
    names = list(keyed)
    listed = [{id_field: name, **record} if isinstance(record, dict) else record
              for name, record in keyed.items()]
    try:
        return read({**doc, key: listed})
    except ConfigError as exc:
        match = re.match(rf"{re.escape(key)}\[(\d+)\]\.?(.*)", exc.path)
        if not match:
            raise
        rest = match.group(2)
        raise ConfigError(f"{key}.{names[int(match.group(1))]}" + (f".{rest}" if rest else ""),
                          exc.problem) from None


# The TLS 1.2 cipher suites of AWS's default policies, in AWS's order of preference (the
# ALB's ELBSecurityPolicy-2016-08; API Gateway's TLS_1_2 lists a subset in the same order):
# a client offering both gets ECDHE-*-AES128-GCM-SHA256, as from AWS. Python's default list
# would choose AES256-GCM first. (OpenSSL at its default security level leaves out the SHA-1
# ones; the order of the rest stands.)
AWS_TLS12_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-RSA-AES128-SHA256", "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-RSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA", "ECDHE-ECDSA-AES256-SHA",
    "AES128-GCM-SHA256", "AES128-SHA256", "AES128-SHA", "AES256-GCM-SHA384", "AES256-SHA256",
    "AES256-SHA"))


def tls_context(cert: str, key: str, field: str) -> ssl.SSLContext:
    """A server context for TLS 1.2 only (minimum = maximum = TLSv1_2), AWS's cipher
    suites in AWS's order (AWS_TLS12_CIPHERS; the server's order wins), with the chain in
    `cert` and the key in `key`; a ConfigError naming `field` if they can't be loaded. The
    SNI name each client sends is kept on its SSL object as `sni_name`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(AWS_TLS12_CIPHERS)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.sni_callback = _remember_server_name
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(field, f"can't load {cert} and {key}: {exc}") from None
    return context


LOG_BUFFER_BYTES = 64 * 1024       # a turn's lines fit: one write() per turn, not a line cut


class TurnLog:
    """An access log written once per turn of the event loop.

    `write(line)` adds the line to the file's buffer and, the first time in a turn, asks the
    loop to flush it when the turn's callbacks are done (`call_soon`): a busy service makes
    one write() per turn and file, not one per request (a line-buffered file cost an ALB
    node a third of its system calls and 7 % of its CPU under load), and `tail -f` or
    `vpclab logs -f` still see each line within the turn whose response it records —
    within microseconds of the response's bytes leaving.
    Without a running event loop (a personality under unit test) each line is flushed at
    once. `close()` flushes what is left and closes the file: a service calls it on its way
    out (SIGTERM, SIGINT, `stop`), so a clean stop loses no line; a SIGKILL loses at most
    the lines of the turn it interrupted.
    """
    __slots__ = ("path", "file", "_pending")

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.path = path
        self.file: TextIO = open(path, "a", encoding="utf-8", buffering=LOG_BUFFER_BYTES)
        self._pending = False

    def write(self, line: str) -> None:
        self.file.write(line)
        if not self._pending:
            self._pending = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:            # no event loop: at once
                self.flush()

    def flush(self) -> None:
        self._pending = False
        if not self.file.closed:
            self.file.flush()

    def close(self) -> None:
        self.flush()
        self.file.close()


def open_log(path: str) -> TurnLog:
    """An access log (see TurnLog), its directory made if missing, opened for appending."""
    return TurnLog(path)


def _remember_server_name(ssl_object: ssl.SSLObject, server_name: str | None,
                          context: ssl.SSLContext) -> None:
    """Keeps the SNI name a client sent on its connection's SSL object (`sni_name`), for
    logs that record it; a server-side SSL object has no other record of it."""
    ssl_object.sni_name = server_name  # type: ignore[attr-defined]


async def serve_control(path: str, handle: Callable[[dict], dict],
                        on_stop: Callable[[], None]) -> asyncio.AbstractServer:
    """Listens on `path` (a stale socket file of a killed process is replaced)."""
    if os.path.exists(path):
        os.unlink(path)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply, stop = answer(line, handle)
                writer.write(reply)
                await writer.drain()
                if stop:
                    on_stop()
                    break
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass                         # a client that left or sent a monstrous line
        finally:
            writer.close()

    return await asyncio.start_unix_server(client, path)


class Service:
    """A service's life (see the module docstring). Subclasses set `socket` (the control
    socket's path) and implement `listen()` (bind every listener; a ConfigError naming the
    listener if one can't be bound), `commands(request)` (every command but ping and
    stop: a dict, or ValueError), and may extend `start()` and `close()`."""
    socket: str
    COMMANDS = "ping, stop"

    def __init__(self) -> None:
        self._stop: asyncio.Event | None = None

    async def listen(self) -> None:
        raise NotImplementedError

    def commands(self, request: dict) -> dict[str, Any]:
        raise ValueError(f"unknown command {request.get('cmd')!r}; commands: {self.COMMANDS}")

    async def start(self) -> None:
        """Called after listening, before `ready` (health checks start here)."""

    async def close(self) -> None:
        """Called on the way out: close listeners, connections and files."""

    def handle(self, request: dict) -> dict[str, Any]:
        if request.get("cmd") == "ping":
            return {"pid": os.getpid()}
        return self.commands(request)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        control = None
        try:
            await self.listen()
            control = await serve_control(self.socket, self.handle, self.stop)
            await self.start()
            if ready is not None:
                ready()
            await self._stop.wait()
        finally:
            if control is not None:
                control.close()
            await self.close()
            if control is not None and os.path.exists(self.socket):
                os.unlink(self.socket)
