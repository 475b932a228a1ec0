"""API Gateway's front end as a whole: the proxy engine with API Gateway's personality,
its listeners (TLS 1.2 only, as private APIs and AWS-FACTS-HTTP Part 3), its control
socket, and a clean stop (dataplane/services/serving.py's `Service`).

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

from typing import Any

from dataplane.services.proxy.backend import BackendPool
from dataplane.services.proxy.engine import ProxyServer
from dataplane.services.proxy.personality import Limits
from dataplane.services.serving import ConfigError, Service, tls_context

from .config import ApigwConfig
from .personality import ApiGateway


class FrontEnd(Service):
    COMMANDS = "ping, stats, stop"

    def __init__(self, config: ApigwConfig, limits: Limits = Limits()) -> None:
        super().__init__()
        self.config = config
        self.socket = config.socket
        self.pool = BackendPool(limits)
        self.personality = ApiGateway(config, self.pool, limits)
        self.server = ProxyServer(self.personality, self.pool)
        self.tls = tls_context(config.tls.cert, config.tls.key, "tls") if config.tls and \
            any(listener.tls for listener in config.listeners) else None

    def commands(self, request: dict) -> dict[str, Any]:
        if request.get("cmd") == "stats":
            return {**self.server.stats(), **self.personality.stats()}
        return super().commands(request)

    async def listen(self) -> None:
        for i, listener in enumerate(self.config.listeners):
            try:
                await self.server.listen(listener.address, listener.port,
                                         self.tls if listener.tls else None)
            except OSError as exc:
                raise ConfigError(f"listeners[{i}]", f"can't listen on {listener.address}:"
                                  f"{listener.port}: {exc.strerror or exc}") from None

    async def close(self) -> None:
        await self.server.close()
        self.personality.close()
