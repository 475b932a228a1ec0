"""Cloud Map compiled: the registry's first contents, the VPC resolvers' part, and the
Cloud Map process's configuration (the kind's compile floor; dataplane/kinds.py registers
it). Nothing goes to the forwarder: Cloud Map is names and an API.

What `up` makes for a lab with a `cloud_map` section (lab/realise_cloud_map.py makes it):

| what | where |
|---|---|
| the registry | `/run/vpclab/<lab>/cloudmap.json` (services/cloudmap/registry.py) |
| the Cloud Map process | `python -m dataplane.services.cloudmap --config /run/vpclab/<lab>/cloudmap-service.json`, log `cloudmap.log`; supervised (role `cloudmap`) |
| DiscoverInstances | HTTP on every VPC's resolver address (base+2) port 80; the resolver answers `data-servicediscovery.<region>.amazonaws.com` and `servicediscovery.<region>.amazonaws.com` with that address (`dns_records`) |
| private DNS namespaces | the resolver of the namespace's VPC forwards the namespace's names to base+2 port 5300 (`resolver_args`: `--server=/<namespace>/<base+2>#5300`), where the process answers A and SRV records from the registry |

Why there: base+2 is the one address of a VPC that every instance reaches without a
security group rule (AmazonProvidedDNS), in a namespace vpclab owns (the VPC router's), so
no ENI, address or route is added for Cloud Map; the process answers every VPC from one
event loop (server.py), so a lab with many VPCs costs one process.
"""
from __future__ import annotations

import os
from typing import Any

from dataplane.model import names
from dataplane.model.cloud_map import (initial_health, instance_address, namespace_id,
                                       registered_attributes, service_id)
from dataplane.model.topology import Lab

from dataplane.model.enis import account_id
from .hyperplane import SpecContext, SpecDraft

HTTP_PORT = 80
DNS_PORT = 5300
REGISTRY_FILE = "cloudmap.json"
CONFIG_FILE = "cloudmap-service.json"
LOG_FILE = "cloudmap.log"


def has_cloud_map(lab: Lab) -> bool:
    return bool(lab.cloud_map_namespaces)


def api_names(region: str) -> list[str]:
    """The names DiscoverInstances is called by (SDKs add `data-` to the second)."""
    return [f"data-servicediscovery.{region}.amazonaws.com",
            f"servicediscovery.{region}.amazonaws.com"]


def served_vpcs(lab: Lab) -> list[Any]:
    """The lab's own VPCs (not a service's, such as API Gateway's)."""
    return [v for v in lab.vpcs.values() if v.service is None]


def contribute(ctx: SpecContext, spec: SpecDraft) -> None:
    """Nothing for the forwarder."""


def dns_records(lab: Lab) -> dict[str, list[tuple[str, str]]]:
    """DiscoverInstances' names in every VPC: its resolver's own address."""
    if not has_cloud_map(lab):
        return {}
    return {v.name: [(n, str(v.dns_address)) for n in api_names(lab.region)]
            for v in served_vpcs(lab)}


def resolver_args(lab: Lab) -> dict[str, list[str]]:
    """{vpc: dnsmasq arguments}: each DNS_PRIVATE namespace forwarded to the process."""
    out: dict[str, list[str]] = {}
    for name, ns in lab.cloud_map_namespaces.items():
        if ns.type == "DNS_PRIVATE":
            vpc = lab.vpcs[ns.vpc]
            out.setdefault(vpc.name, []).append(f"--server=/{name}/{vpc.dns_address}#{DNS_PORT}")
    return out


def service_arn(lab: Lab, namespace: str, service: str) -> str:
    return (f"arn:aws:servicediscovery:{lab.region}:{account_id(lab.name)}:service/"
            f"{service_id(lab.name, namespace, service)}")


def registry(lab: Lab) -> dict[str, Any]:
    """The registry as the file says it (services/cloudmap/registry.py's format)."""
    addresses = lab.addresses()
    namespaces: dict[str, Any] = {
        name: {"id": namespace_id(lab.name, name), "type": ns.type, "vpc": ns.vpc,
               "services": {}} for name, ns in lab.cloud_map_namespaces.items()}
    for name, svc in lab.cloud_map_services.items():
        custom = svc.health_check == "custom"
        namespaces[svc.namespace]["services"][name] = {
            "id": service_id(lab.name, svc.namespace, name),
            "arn": service_arn(lab, svc.namespace, name),
            "dns": dict(svc.dns), "health_check": svc.health_check,
            "instances": {i.id: {"attributes": registered_attributes(
                                     instance_address(lab, i, addresses), i.port, i.attributes),
                                 "health": initial_health(custom, i.attributes),
                                 "instance": i.instance}
                          for i in svc.instances}}
    return {"version": 1, "lab": lab.name, "region": lab.region, "revision": 0,
            "namespaces": namespaces}


def service_config(lab: Lab, run_dir: str) -> dict[str, Any]:
    """The Cloud Map process's configuration (services/cloudmap/server.py)."""
    dns_vpcs = set(resolver_args(lab))
    return {"registry": os.path.join(run_dir, REGISTRY_FILE),
            "vpcs": [{"vpc": v.name, "netns": names.vpc_netns(lab.name, v.name),
                      "address": str(v.dns_address), "http_port": HTTP_PORT,
                      "dns_port": DNS_PORT if v.name in dns_vpcs else None}
                     for v in served_vpcs(lab)]}
