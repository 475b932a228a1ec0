"""API Gateway compiled: what the forwarder adds for HTTP-API routes to an NLB, and the
front end's configuration (the kind's compile floor; dataplane/kinds.py registers it).

What `up` makes for a lab with APIs or REST links (lab/realise_api_gateway.py makes it):

| what | where |
|---|---|
| API Gateway's VPC (model/api_gateway.py): router, resolver, REST links' endpoint ENIs | namespace `<lab>.apigw`, 10.0.0.0/16, one /20 per AZ |
| the internet, where clients call the APIs from | namespace `<lab>.internet`, `eth0` 203.0.113.10/24, default route via 203.0.113.1; its resolver answers every `*.execute-api.<region>.amazonaws.com` name with the front end's address |
| the front end's public side | `internet0` 203.0.113.1/24 in `<lab>.apigw` ⇄ `eth0` of `<lab>.internet` |
| the front end | `python -m dataplane.services.apigw --config /run/vpclab/<lab>/apigw.json` in `<lab>.apigw`, on 203.0.113.1:80 and :443 |
| the lab's CA and the front end's certificate | `/run/vpclab/<lab>/ca.crt`, `apigw.crt` (`*.execute-api.<region>.amazonaws.com`) |

How a request leaves API Gateway (the front end picks an address per new connection,
round robin, and keeps connections alive in a pool):

* **REST route** over a REST link: to the link's interface endpoint ENIs in API
  Gateway's VPC, on the port of the route's `uri` (its listener on the NLB): endpoint ⇒
  NLB node ⇒ target through the forwarder (compile/privatelink.py). The target sees the
  NLB node's address. `Host` is the uri's host.
* **HTTP route** over an HTTP (V2) link: from the link's routing domain
  (`<lab>.apigw.<link>`, compile/vpc_link.py) to the target NLB's node addresses on the
  listener port: link ⇒ link ENI ⇒ VPC router ⇒ NLB node ⇒ target. For that the NLB
  answers in its own VPC: `contribute` adds one forwarder service per (node, listener)
  of every NLB an HTTP route targets, on the node's own ENI. Client IP preservation is
  off there (vpclab's choice: the engine keys flows per port, and a preserved source
  would send the target's replies to the link ENI instead of back through the node), so
  the target sees the NLB node's address, and the node sees the link ENI's. `Host` is the
  NLB's DNS name (`<name>-<16 hex>.elb.<region>.amazonaws.com`; AWS does not say what an
  HTTP API sends to a private integration: vpclab's choice).
* **HTTP route to an ALB listener**: the same way to the ALB's node addresses (they are
  ENIs of their VPC, compile/alb.py: nothing to add to the forwarder); `Host` is the
  ALB's DNS name, so its host-header rules see what AWS would send.
* **HTTP route to a Cloud Map service**: per request, the front end asks the lab's live
  registry (`/run/vpclab/<lab>/cloudmap.json`) DiscoverInstances' question with the
  target's filters and health `HEALTHY_OR_ELSE_ALL`, and connects over the link to the
  first instance of the shuffled answer (its `AWS_INSTANCE_IPV4`:`AWS_INSTANCE_PORT`);
  no instance: 503. `Host` is `<service>.<namespace>`.
"""
from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from dataplane.model import names
from dataplane.model.api_gateway import (CloudMapTarget, api_id, parse_target, targeted_nlbs,
                                         uri_port)
from dataplane.model.enis import account_id, stable_hex
from dataplane.model.topology import Lab
from dataplane.model.vpc_link import vpc_link_id

from . import alb as alb_compiled
from .hyperplane import SpecContext, SpecDraft
from .privatelink import listener_service

INTERNET_CIDR = "203.0.113.0/24"          # TEST-NET-3: the lab's internet
FRONT_END_IP = "203.0.113.1"              # API Gateway's public address in a lab
INTERNET_CLIENT_IP = "203.0.113.10"       # the internet namespace's own
FRONT_END_IFNAME = "internet0"            # in <lab>.apigw
PREFIXLEN = 24
ACCOUNT_THROTTLE = {"rate": 10000, "burst": 5000}   # per Region, shared (limits.md)
CONFIG_VERSION = 1
CLOUD_MAP_REGISTRY = "cloudmap.json"        # the Cloud Map kind's live registry, in the run dir


def nlb_dns_name(lab: Lab, vpc: str, lb: str) -> str:
    return f"{lb}-{stable_hex(lab.name, vpc, 'elb', lb, n=16)}.elb.{lab.region}.amazonaws.com"


def contribute(ctx: SpecContext, spec: SpecDraft) -> None:
    """Each NLB that an HTTP route targets answers on its nodes' own addresses: one
    service per (node, listener), arriving and leaving on the node's port."""
    lab = ctx.lab
    for vname, lbname in targeted_nlbs(lab):
        vpc = lab.vpcs[vname]
        instance_ips = {i: ctx.addresses[(vname, i)] for i in vpc.instances}
        for node in ctx.by_owner.get((vname, "nlb", lbname), []):
            for listener in vpc.load_balancers[lbname].listeners:
                spec.services.append(listener_service(vpc, node, listener, instance_ips,
                                                      node.id, node.eni))


def dns_records(lab: Lab) -> dict[str, list[tuple[str, str]]]:
    """The targeted NLBs' DNS names, in their VPCs (each node's address)."""
    out: dict[str, list[tuple[str, str]]] = {}
    enis = lab.hyperplane_enis()
    for vname, lbname in targeted_nlbs(lab):
        out.setdefault(vname, []).extend(
            (nlb_dns_name(lab, vname, lbname), e.ip) for e in enis
            if (e.vpc, e.kind, e.owner) == (vname, "nlb", lbname))
    return out


def rest_link_id(lab: str, name: str) -> str:
    """REST (V1) links' IDs look like AWS's: 6 lowercase characters."""
    return api_id(lab, f"vpclink/{name}")[:6]


def links(lab: Lab) -> dict[str, dict[str, Any]]:
    """{link: its record in the front end's config}: REST links are reached from the
    front end's own namespace, HTTP links from their routing domain."""
    out: dict[str, dict[str, Any]] = {}
    for name, link in lab.vpc_links.items():
        out[name] = {"id": vpc_link_id(lab.name, name), "type": "HTTP", "state": "AVAILABLE",
                     "message": None, "netns": names.vpc_link_netns(lab.name, name)}
    for name, rlink in lab.rest_vpc_links.items():
        out[name] = {"id": rest_link_id(lab.name, name), "type": "REST", "state": rlink.state,
                     "message": rlink.message, "netns": None}
    return out


def _route(lab: Lab, api: Any, route: Any, enis: list, run_dir: str) -> dict[str, Any]:
    rec: dict[str, Any] = {"key": route.key, "link": route.vpc_link, "uri": route.uri,
                           "timeout_ms": api.timeout_ms(route)}
    if route.uri is not None:
        link = lab.rest_vpc_links[route.vpc_link]
        rec.update(host=urlsplit(route.uri).hostname, port=uri_port(route.uri),
                   addresses=[e.ip for e in enis if (e.vpc, e.kind, e.owner)
                              == (names.APIGW, "vpce", link.name)])
        return rec
    t = parse_target(route.target)
    if isinstance(t, CloudMapTarget):
        # The instance is chosen per request from the live registry (issue 11's choice:
        # the first of DiscoverInstances' shuffled, filtered, healthy list).
        rec.update(host=f"{t.service}.{t.namespace}", port=None, addresses=[],
                   cloudmap={"registry": os.path.join(run_dir, CLOUD_MAP_REGISTRY),
                             "namespace": t.namespace, "service": t.service,
                             "query": dict(t.query)})
    elif t.kind_of(lab) == "alb":
        alb = lab.vpcs[t.vpc].albs[t.load_balancer]
        rec.update(host=alb_compiled.dns_name(lab, t.vpc, t.load_balancer), port=t.port,
                   addresses=alb_compiled.node_addresses(lab, t.vpc, alb))
    else:
        rec.update(host=nlb_dns_name(lab, t.vpc, t.load_balancer), port=t.port,
                   addresses=[e.ip for e in enis if (e.vpc, e.kind, e.owner)
                              == (t.vpc, "nlb", t.load_balancer)])
    return rec


def frontend_config(lab: Lab, run_dir: str) -> dict[str, Any]:
    """The front end's configuration (dataplane/services/apigw/config.py reads it)."""
    enis = lab.hyperplane_enis()
    return {
        "version": CONFIG_VERSION, "lab": lab.name, "region": lab.region,
        "account_id": account_id(lab.name),
        "listeners": [{"address": FRONT_END_IP, "port": 80, "tls": False},
                      {"address": FRONT_END_IP, "port": 443, "tls": True}],
        "tls": {"cert": os.path.join(run_dir, "apigw.crt"),
                "key": os.path.join(run_dir, "apigw.key")},
        "socket": os.path.join(run_dir, "apigw.sock"),
        "log_dir": os.path.join(run_dir, "apigw"),
        "account_throttle": dict(ACCOUNT_THROTTLE) if lab.account_throttle is None else
        {"rate": lab.account_throttle.rate, "burst": lab.account_throttle.burst},
        "links": links(lab),
        "apis": [{"id": api_id(lab.name, api.name), "name": api.name, "type": api.type,
                  "stages": list(api.stages),
                  "throttle": None if api.throttle is None else
                  {"rate": api.throttle.rate, "burst": api.throttle.burst},
                  "routes": [_route(lab, api, r, enis, run_dir) for r in api.routes.values()]}
                 for api in lab.apis.values()]}
