"""An ALB node as a whole: the proxy engine with the ALB's personality, a listener per
configured listener on the node's address (HTTPS: TLS 1.2 only, with the listener's
certificate chain and key — AWS's default policy ELBSecurityPolicy-2016-08 also allows
TLS 1.0 and 1.1; vpclab pins 1.2 as API Gateway's front end does), the health checks,
the access log, the control socket, and a clean stop (dataplane/services/serving.py's
`Service`).

Control commands besides `ping` and `stop`:

* `stats` → the engine's counters (`connections`, `connections_total`, `requests`,
  `responses` by class, `errors` by engine kind) and the node's: `listeners` (per port,
  `rules`: hits per priority, `default` for the default action), `generated` (the
  load balancer's own answers by status code), `outstanding` (requests in flight per
  group and target), `health_checks` (checks done);
* `health` → `{"target_groups": {"web-tg": [{"id", "ip", "port", "state", "reason",
  "description"}, …]}}` (states and reasons: targets.py).
"""
from __future__ import annotations

import ssl
from typing import Any

from dataplane.services.proxy.engine import ProxyServer
from dataplane.services.serving import ConfigError, Service, open_log, tls_context

from .config import AlbConfig
from .health import HealthChecker
from .personality import Alb


class AlbNode(Service):
    COMMANDS = "ping, stats, health, stop"

    def __init__(self, config: AlbConfig, personality: Alb | None = None) -> None:
        super().__init__()
        self.config = config
        self.socket = config.socket
        self.tls: dict[int, ssl.SSLContext] = {}
        for i, listener in enumerate(config.listeners):
            if listener.tls is not None and listener.protocol == "HTTPS":
                self.tls[listener.port] = tls_context(listener.tls.cert, listener.tls.key,
                                                      f"listeners[{i}].tls")
        try:
            log = open_log(config.access_log)
        except OSError as exc:
            raise ConfigError("access_log", f"can't open {config.access_log}: "
                              f"{exc.strerror or exc}") from None
        self.personality = personality or Alb(config, log=log)
        self.server = ProxyServer(self.personality, self.personality.pool)
        self.checker = HealthChecker(list(self.personality.groups.values()))

    def commands(self, request: dict) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "stats":
            return {**self.server.stats(), **self.personality.stats(),
                    "health_checks": self.checker.checks}
        if cmd == "health":
            return self.personality.health()
        return super().commands(request)

    async def listen(self) -> None:
        address = self.config.node.address
        for i, listener in enumerate(self.config.listeners):
            try:
                await self.server.listen(address, listener.port, self.tls.get(listener.port))
            except OSError as exc:
                raise ConfigError(f"listeners[{i}]", f"can't listen on {address}:"
                                  f"{listener.port}: {exc.strerror or exc}") from None

    async def start(self) -> None:
        self.checker.start()

    async def close(self) -> None:
        await self.checker.stop()
        await self.server.close()
        self.personality.close()
