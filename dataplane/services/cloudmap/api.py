"""DiscoverInstances over HTTP/JSON, in AWS's wire shape (the awsJson1_1 protocol):

    POST / HTTP/1.1
    Host: data-servicediscovery.us-east-1.amazonaws.com
    X-Amz-Target: Route53AutoNaming_v20170314.DiscoverInstances
    Content-Type: application/x-amz-json-1.1

    {"NamespaceName": "shop.local", "ServiceName": "inventory",
     "QueryParameters": {"color": "blue"}, "OptionalParameters": {},
     "HealthStatus": "HEALTHY_OR_ELSE_ALL", "MaxResults": 100}

answers 200 `{"Instances": [{"InstanceId", "NamespaceName", "ServiceName", "HealthStatus",
"Attributes"}], "InstancesRevision": N}` (registry.py's `discover`), and
`DiscoverInstancesRevision` answers `{"InstancesRevision": N}`. Errors are 400 with
`{"__type": "<AWS error>", "message": "…"}`: NamespaceNotFound, ServiceNotFound,
InvalidInput (a missing name, a filter that is not a string map, keys over 255 or values
over 1,024 characters, a bad HealthStatus or MaxResults), and UnknownOperationException
for another target. Requests are not signed-checked: the lab has no IAM (vpclab's
choice), so any SigV4 `Authorization` header is accepted and ignored.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from .registry import DEFAULT_HEALTH_STATUS, DEFAULT_MAX_RESULTS, DiscoveryError, discover

TARGET_PREFIX = "Route53AutoNaming_v20170314."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_KEY, MAX_VALUE = 255, 1024


def _string_map(body: Mapping[str, Any], key: str) -> dict[str, str]:
    value = body.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        raise DiscoveryError("InvalidInput", f"{key} is a map of strings to strings")
    for k, v in value.items():
        if not 1 <= len(k) <= MAX_KEY or len(v) > MAX_VALUE:
            raise DiscoveryError("InvalidInput", f"{key}: keys are 1-{MAX_KEY} characters, "
                                 f"values at most {MAX_VALUE}")
    return value


def _name(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise DiscoveryError("InvalidInput", f"{key} is required (a string)")
    return value


def _given(body: Mapping[str, Any], key: str, default: Any) -> Any:
    value = body.get(key)
    return default if value is None else value


def handle(registry: Mapping[str, Any], method: str, target: str | None,
           body: bytes) -> tuple[int, dict]:
    """(HTTP status, JSON body) of one request."""
    operation = (target or "").removeprefix(TARGET_PREFIX)
    if method != "POST" or not target or not target.startswith(TARGET_PREFIX) or \
            operation not in ("DiscoverInstances", "DiscoverInstancesRevision"):
        return 400, {"__type": "UnknownOperationException",
                     "message": f"POST with X-Amz-Target {TARGET_PREFIX}DiscoverInstances "
                                f"(or DiscoverInstancesRevision); got {method} {target!r}"}
    try:
        try:
            request = json.loads(body or b"{}")
        except ValueError as exc:
            raise DiscoveryError("InvalidInput", f"the body is not JSON: {exc}") from None
        if not isinstance(request, dict):
            raise DiscoveryError("InvalidInput", "the body is a JSON object")
        namespace, service = _name(request, "NamespaceName"), _name(request, "ServiceName")
        if operation == "DiscoverInstancesRevision":
            discover(registry, namespace, service, max_results=1)      # NotFound errors
            return 200, {"InstancesRevision": int(registry.get("revision", 0))}
        instances = discover(
            registry, namespace, service,
            query=_string_map(request, "QueryParameters"),
            optional=_string_map(request, "OptionalParameters"),
            health_status=_given(request, "HealthStatus", DEFAULT_HEALTH_STATUS),
            max_results=_given(request, "MaxResults", DEFAULT_MAX_RESULTS))
    except DiscoveryError as exc:
        return 400, {"__type": exc.code, "message": str(exc)}
    return 200, {"Instances": instances, "InstancesRevision": int(registry.get("revision", 0))}
