"""An HTTP API route to a Cloud Map service: which instance a request goes to.

Per request the front end asks the lab's registry (services/cloudmap/registry.py,
re-read only when the file changed, so `vpclab cloudmap register|deregister|set-health`
is seen by the next request) DiscoverInstances' question: the route's QueryParameters,
HealthStatus HEALTHY_OR_ELSE_ALL. It takes the **first** instance of the shuffled answer
that carries both AWS_INSTANCE_IPV4 and AWS_INSTANCE_PORT (API Gateway reaches instances
by them; AWS does not document how it picks one, and DiscoverInstances' list is random
"to distribute traffic evenly", so its first entry is vpclab's choice), and connects to it
over the route's VPC link. Connections are kept alive in the backend pool's group of that
(link, address, port), bounded like every group (dataplane/services/proxy/backend.py).
No instance: the route answers 503 `{"message":"Service Unavailable"}` (HTTP APIs'
integration failure), with the reason in the access log's error field.
"""
from __future__ import annotations

import random
from typing import Any

from dataplane.services.cloudmap.registry import (IPV4_ATTRIBUTE, MAX_RESULTS, PORT_ATTRIBUTE,
                                                  DiscoveryError, discover, load_registry)

from .config import CloudMapService


class CloudMapBackends:
    """A route's Cloud Map service, prepared once; `choose()` per request.

    The candidates (DiscoverInstances' answer, those with an address and a port, each as
    its backend group) are worked out again only when the registry changed: per request
    there is a stat() of the registry and a random pick among the candidates, the same
    draw as the first entry of a freshly shuffled list."""
    __slots__ = ("service", "netns", "pool", "query", "name", "seen", "candidates", "why")

    def __init__(self, service: CloudMapService, netns: str | None, pool: Any) -> None:
        self.service, self.netns, self.pool = service, netns, pool
        self.query = dict(service.query)
        self.name = f"{service.namespace}/{service.service}"
        self.seen: Any = None                     # the registry the candidates are from
        self.candidates: list[Any] = []
        self.why = ""

    def choose(self) -> tuple[Any, str]:
        """(the backend group of the chosen instance, "") or (None, why there is none)."""
        try:
            registry = load_registry(self.service.registry)
        except (OSError, ValueError) as exc:
            return None, f"Cloud Map {self.name}: {exc}"
        if registry is not self.seen:
            self._prepare(registry)
        if not self.candidates:
            return None, self.why
        return random.choice(self.candidates), ""

    def _prepare(self, registry: dict) -> None:
        service = self.service
        self.seen, self.candidates, self.why = registry, [], ""
        try:
            found = discover(registry, service.namespace, service.service, query=self.query,
                             health_status="HEALTHY_OR_ELSE_ALL", max_results=MAX_RESULTS)
        except DiscoveryError as exc:
            self.why = f"Cloud Map {self.name}: {exc}"
            return
        for instance in found:
            attributes = instance["Attributes"]
            ip, port = attributes.get(IPV4_ATTRIBUTE), attributes.get(PORT_ATTRIBUTE)
            if ip and port and port.isdigit():
                self.candidates.append(self.pool.group(self.netns, (ip,), int(port)))
        if not self.candidates:
            self.why = f"Cloud Map {self.name}: no instance matches"
