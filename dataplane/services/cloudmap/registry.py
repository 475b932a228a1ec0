"""The lab's Cloud Map registry: one JSON file, what reads it, what changes it, and
`discover`, DiscoverInstances' semantics (AWS-FACTS §9). Pure Python; no kernel.

The file is `/run/vpclab/<lab>/cloudmap.json`, written by `up` (compile/cloud_map.py makes
its first contents from the model) and changed by `vpclab cloudmap register|deregister|
set-health` under the lab's lock. Every change is written to a new file that replaces the
old one (os.replace), so a reader sees the old registry or the new one, never half of one;
`load_registry(path)` keeps the last one it read and reads the file again only when its
inode, mtime or size changed: what the DNS responder, the DiscoverInstances endpoint and
API Gateway's front end do per query or request (a stat() each).

    {"version": 1, "lab": "shop", "region": "us-east-1", "revision": 3,
     "namespaces": {"shop.local": {"id": "ns-…", "type": "DNS_PRIVATE", "vpc": "shop",
       "services": {"inventory": {"id": "srv-…", "arn": "arn:aws:servicediscovery:…",
         "dns": {"A": 60, "SRV": 60}, "health_check": "custom",
         "instances": {"i-blue": {"attributes": {"color": "blue",
                                                 "AWS_INSTANCE_IPV4": "10.0.1.4",
                                                 "AWS_INSTANCE_PORT": "8080"},
                                  "health": "HEALTHY", "instance": "shop/inv1"}}}}}}}

`health` is HEALTHY or UNHEALTHY under a custom health check and null without one.
`revision` counts changes (DiscoverInstances' `InstancesRevision`).

`discover` applies, in this order (the order is vpclab's reading of AWS's sentences):

1. **QueryParameters**: an instance is kept when every key is among its attributes with
   exactly that value;
2. **HealthStatus**, on what is left: HEALTHY, UNHEALTHY, ALL, or HEALTHY_OR_ELSE_ALL
   (the healthy ones, or all of them when none is: failing open). A service without a
   health check disregards it and keeps every instance (their HealthStatus is UNKNOWN:
   vpclab's choice, AWS reports health only "if you configured health checking");
3. **OptionalParameters**: when some instance left matches all of them, only those are
   kept; when none does, they are ignored;
4. the list is shuffled ("a randomized list of instances allowing customers to distribute
   traffic evenly") and cut at MaxResults (default 100, 1–1,000).

So optional filters never bring back an instance the health status left out, and a
healthy instance matching the query is never lost to an optional filter.
"""
from __future__ import annotations

import json
import os
import random
import threading
from typing import Any, Mapping

HEALTH_STATUSES = ("HEALTHY", "UNHEALTHY", "ALL", "HEALTHY_OR_ELSE_ALL")
DEFAULT_HEALTH_STATUS = "HEALTHY_OR_ELSE_ALL"
DEFAULT_MAX_RESULTS = 100
MAX_RESULTS = 1000
VERSION = 1
IPV4_ATTRIBUTE, PORT_ATTRIBUTE = "AWS_INSTANCE_IPV4", "AWS_INSTANCE_PORT"


class DiscoveryError(Exception):
    """An AWS Cloud Map error: `code` is AWS's error type (NamespaceNotFound,
    ServiceNotFound, InstanceNotFound, CustomHealthNotFound, InvalidInput)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# -- reading ---------------------------------------------------------------------------------

_cache: dict[str, tuple[tuple[int, int, int], dict]] = {}
_cache_lock = threading.Lock()


def load_registry(path: str) -> dict:
    """The registry at `path`, read again only when the file changed (see the module
    docstring). Raises OSError when it is missing, ValueError when it is not JSON."""
    st = os.stat(path)
    key = (st.st_ino, st.st_mtime_ns, st.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    with open(path) as f:
        doc = json.load(f)
    with _cache_lock:
        _cache[path] = (key, doc)
    return doc


def save_registry(path: str, doc: Mapping[str, Any]) -> None:
    """Writes `doc` to `path` at once for every reader (a new file, renamed over)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)


def service_record(registry: Mapping[str, Any], namespace: str, service: str) -> dict:
    """The registry's record of `namespace`/`service`, or DiscoveryError."""
    ns = registry.get("namespaces", {}).get(namespace)
    if ns is None:
        raise DiscoveryError("NamespaceNotFound", f"No namespace exists with name "
                             f"{namespace!r} (namespaces: "
                             f"{', '.join(registry.get('namespaces', {})) or 'none'})")
    svc = ns["services"].get(service)
    if svc is None:
        raise DiscoveryError("ServiceNotFound", f"No service exists with name {service!r} in "
                             f"namespace {namespace} (services: "
                             f"{', '.join(ns['services']) or 'none'})")
    return svc


def locate(registry: Mapping[str, Any], service: str,
           namespace: str | None = None) -> tuple[str, str]:
    """(namespace, service) for a service named alone (it must be in one namespace only)
    or with its namespace."""
    if namespace is not None:
        service_record(registry, namespace, service)
        return namespace, service
    found = [n for n, ns in registry.get("namespaces", {}).items() if service in ns["services"]]
    if not found:
        every = [f"{n}/{s}" for n, ns in registry.get("namespaces", {}).items()
                 for s in ns["services"]]
        raise DiscoveryError("ServiceNotFound", f"No service exists with name {service!r} "
                             f"(services: {', '.join(every) or 'none'})")
    if len(found) > 1:
        raise DiscoveryError("InvalidInput", f"service {service!r} is in namespaces "
                             f"{', '.join(found)}: name one with --namespace")
    return found[0], service


def _matches(attributes: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    for key, value in wanted.items():
        if attributes.get(key) != value:
            return False
    return True


def discover(registry: Mapping[str, Any], namespace: str, service: str, *,
             query: Mapping[str, str] = {}, optional: Mapping[str, str] = {},
             health_status: str = DEFAULT_HEALTH_STATUS, max_results: int = DEFAULT_MAX_RESULTS,
             rng: random.Random | None = None) -> list[dict]:
    """DiscoverInstances (see the module docstring): each result is
    {"InstanceId", "NamespaceName", "ServiceName", "HealthStatus", "Attributes"}."""
    if health_status not in HEALTH_STATUSES:
        raise DiscoveryError("InvalidInput", f"HealthStatus {health_status!r} is not one of "
                             f"{', '.join(HEALTH_STATUSES)}")
    if not isinstance(max_results, int) or isinstance(max_results, bool) or \
            not 1 <= max_results <= MAX_RESULTS:
        raise DiscoveryError("InvalidInput", f"MaxResults {max_results!r} is not 1-{MAX_RESULTS}")
    svc = service_record(registry, namespace, service)
    found = [(iid, r) for iid, r in svc["instances"].items() if _matches(r["attributes"], query)]
    if svc.get("health_check") and health_status != "ALL":
        healthy = [(iid, r) for iid, r in found if r.get("health") == "HEALTHY"]
        if health_status == "UNHEALTHY":
            found = [(iid, r) for iid, r in found if r.get("health") == "UNHEALTHY"]
        elif healthy or health_status == "HEALTHY":
            found = healthy
    if optional:
        narrowed = [(iid, r) for iid, r in found if _matches(r["attributes"], optional)]
        if narrowed:
            found = narrowed
    (rng or random).shuffle(found)
    return [{"InstanceId": iid, "NamespaceName": namespace, "ServiceName": service,
             "HealthStatus": health_status_of(svc, r), "Attributes": dict(r["attributes"])}
            for iid, r in found[:max_results]]


def health_status_of(svc: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    """An instance's HealthStatus as DiscoverInstances reports it (UNKNOWN without a
    health check)."""
    return (record.get("health") or "UNKNOWN") if svc.get("health_check") else "UNKNOWN"


# -- changing --------------------------------------------------------------------------------

def register(registry: dict, namespace: str, service: str, instance_id: str,
             attributes: Mapping[str, str], instance: str | None = None,
             initial_health: str | None = None) -> bool:
    """RegisterInstance: adds `instance_id`, or updates its attributes when it exists (as
    AWS does; its health is kept). Returns True when it is new."""
    svc = service_record(registry, namespace, service)
    record = svc["instances"].get(instance_id)
    new = record is None
    health = initial_health if new else record.get("health")
    if svc.get("health_check") and health is None:
        health = "HEALTHY"
    svc["instances"][instance_id] = {"attributes": dict(attributes),
                                     "health": health if svc.get("health_check") else None,
                                     "instance": instance}
    _bump(registry)
    return new


def deregister(registry: dict, namespace: str, service: str, instance_id: str) -> None:
    svc = service_record(registry, namespace, service)
    if svc["instances"].pop(instance_id, None) is None:
        raise DiscoveryError("InstanceNotFound", _no_instance(namespace, service, instance_id,
                                                              svc))
    _bump(registry)


def set_health(registry: dict, namespace: str, service: str, instance_id: str,
               status: str) -> None:
    """UpdateInstanceCustomHealthStatus: only under a custom health check."""
    if status not in ("HEALTHY", "UNHEALTHY"):
        raise DiscoveryError("InvalidInput", f"{status!r} is not HEALTHY or UNHEALTHY")
    svc = service_record(registry, namespace, service)
    record = svc["instances"].get(instance_id)
    if record is None:
        raise DiscoveryError("InstanceNotFound", _no_instance(namespace, service, instance_id,
                                                              svc))
    if not svc.get("health_check"):
        raise DiscoveryError("CustomHealthNotFound", f"service {namespace}/{service} has no "
                             f"custom health check (health_check: {{type: custom}}), so its "
                             f"instances have no health to set")
    record["health"] = status
    _bump(registry)


def _no_instance(namespace: str, service: str, instance_id: str, svc: Mapping) -> str:
    return (f"no instance {instance_id!r} in service {namespace}/{service} (instances: "
            f"{', '.join(svc['instances']) or 'none'})")


def _bump(registry: dict) -> None:
    registry["revision"] = int(registry.get("revision", 0)) + 1
