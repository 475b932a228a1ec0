"""API Gateway's front end as a whole: the proxy engine with API Gateway's personality,
its listeners (TLS 1.2 only, as private APIs and AWS-FACTS-HTTP Part 3), its control
socket, and a clean stop.

The engine's limits (dataplane/services/proxy/personality.py `Limits`) as API Gateway uses them:
request line + headers at most 10,240 bytes (AWS's quota; REST counts header values,
HTTP APIs the request line and headers — vpclab counts both as sent, for both types;
the 8,000-byte private-API figure and the 8,192-character private URL are not modelled),
bodies at most 10 MB (AWS's payload quota, requests and integration responses alike).
Where AWS publishes nothing, vpclab chooses: 10 s for a request's head to arrive (and for
a TLS handshake), 30 s for its body, 60 s for an idle keep-alive client connection, 10 s
to connect to a backend, at most 256 connections per backend group of which 64 are kept
idle. The `--header-timeout` and `--idle-timeout` options change the first and third.

`FrontEnd(config).run()` listens on every listener, serves until SIGTERM, SIGINT or the
control socket's `stop`, then closes the listeners and every connection, closes the log
files and removes the socket file: well within the second the contract allows.
"""
from __future__ import annotations

import asyncio
import os
import signal
import ssl
from typing import Any

from dataplane.services.proxy.backend import BackendPool
from dataplane.services.proxy.engine import ProxyServer
from dataplane.services.proxy.personality import Limits

from .config import ApigwConfig, ConfigError, TlsFiles
from .control import serve_control
from .personality import ApiGateway


def tls_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context for TLS 1.2 only (minimum = maximum = TLSv1_2)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("tls", f"can't load {files.cert} and {files.key}: {exc}") from None
    return context


class FrontEnd:
    def __init__(self, config: ApigwConfig, limits: Limits = Limits()) -> None:
        self.config = config
        self.pool = BackendPool(limits)
        self.personality = ApiGateway(config, self.pool, limits)
        self.server = ProxyServer(self.personality, self.pool)
        self.tls = tls_context(config.tls) if config.tls and \
            any(listener.tls for listener in config.listeners) else None
        self._stop: asyncio.Event | None = None

    def handle(self, request: dict) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "ping":
            return {"pid": os.getpid()}
        if cmd == "stats":
            return {**self.server.stats(), **self.personality.stats()}
        raise ValueError(f"unknown command {cmd!r}; commands: ping, stats, stop")

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def run(self, ready: Any = None) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        control = None
        try:
            for i, listener in enumerate(self.config.listeners):
                try:
                    await self.server.listen(listener.address, listener.port,
                                             self.tls if listener.tls else None)
                except OSError as exc:
                    raise ConfigError(f"listeners[{i}]", f"can't listen on {listener.address}:"
                                      f"{listener.port}: {exc.strerror or exc}") from None
            control = await serve_control(self.config.socket, self.handle, self.stop)
            if ready is not None:
                ready()
            await self._stop.wait()
        finally:
            if control is not None:
                control.close()
            await self.server.close()
            self.personality.close()
            if control is not None and os.path.exists(self.config.socket):
                os.unlink(self.config.socket)
