"""The ALB kind compiled: each node's configuration, and the ALB's DNS name.

An ALB is not in the Hyperplane: its nodes are instance-like ENIs of the VPC
(model/alb.py), each running `python -m dataplane.services.alb --config FILE` with the
configuration `node_config()` writes (the contract: notes/alb-config.md). So
`contribute` adds nothing to the forwarder; the VPC's router, its security groups and
nftables carry every packet to and from a node, as for an instance.

| what | where |
|---|---|
| node of ALB `web-alb` in subnet `a` of VPC `shop` | namespace `<lab>.shop.web-alb.a`, `eth0` at the lowest free address after the instances |
| its configuration, control socket, access log, output | `/run/vpclab/<lab>/alb/shop.web-alb.a.{json,sock,log,out}` |
| its DNS name | `internal-web-alb-<10 digits>.<region>.elb.amazonaws.com`, every node's address, answered by the VPC's resolver |
| its certificate (HTTPS listeners) | `/run/vpclab/<lab>/alb-shop-web-alb.crt` for its DNS name, signed by the lab's CA |
"""
from __future__ import annotations

import os
from typing import Any

from dataplane.model import names
from dataplane.model.alb import ApplicationLoadBalancer, alb_arn, node_name, target_group_arn
from dataplane.model.enis import account_id, stable_hex
from dataplane.model.topology import Lab

from .hyperplane import SpecContext, SpecDraft

CONFIG_VERSION = 1
RUN_SUBDIR = "alb"


def dns_name(lab: Lab, vpc: str, alb: str) -> str:
    """AWS's form for an internal ALB: `internal-<name>-<10 digits>.<region>.elb…`."""
    digits = str(int(stable_hex(lab.name, vpc, "alb-dns", alb, n=12), 16) % 10**10).zfill(10)
    return f"internal-{alb}-{digits}.{lab.region}.elb.amazonaws.com"


def cert_stem(vpc: str, alb: str) -> str:
    return f"alb-{vpc}-{alb}"


def node_files(run_dir: str, vpc: str, alb: str, subnet: str) -> dict[str, str]:
    """The files of one node under the lab's run directory."""
    base = os.path.join(run_dir, RUN_SUBDIR, f"{vpc}.{alb}.{subnet}")
    return {"config": base + ".json", "socket": base + ".sock", "access_log": base + ".log",
            "output": base + ".out"}


def albs(lab: Lab) -> list[tuple[str, ApplicationLoadBalancer]]:
    """(VPC, ALB) of every ALB of the lab, in file order."""
    return [(v.name, alb) for v in lab.vpcs.values() for alb in v.albs.values()]


def contribute(ctx: SpecContext, spec: SpecDraft) -> None:
    """Nothing: an ALB's nodes are not in the Hyperplane (the module docstring)."""


def dns_records(lab: Lab) -> dict[str, list[tuple[str, str]]]:
    """Each ALB's DNS name in its VPC, one record per node."""
    out: dict[str, list[tuple[str, str]]] = {}
    addresses = lab.addresses()
    for vname, alb in albs(lab):
        out.setdefault(vname, []).extend((dns_name(lab, vname, alb.name), addresses[(vname, n)])
                                         for n in alb.nodes())
    return out


def node_addresses(lab: Lab, vpc: str, alb: ApplicationLoadBalancer) -> list[str]:
    addresses = lab.addresses()
    return [addresses[(vpc, n)] for n in alb.nodes()]


def node_config(lab: Lab, vname: str, alb: ApplicationLoadBalancer, subnet: str,
                run_dir: str) -> dict[str, Any]:
    """The configuration of the node of `alb` in `subnet` (notes/alb-config.md)."""
    vpc = lab.vpcs[vname]
    account = account_id(lab.name)
    addresses = lab.addresses()
    ips = {i: addresses[(vname, i)] for i in vpc.instances}
    files = node_files(run_dir, vname, alb.name, subnet)
    cert = {"cert": os.path.join(run_dir, cert_stem(vname, alb.name) + ".crt"),
            "key": os.path.join(run_dir, cert_stem(vname, alb.name) + ".key")}
    groups = {}
    for g in alb.target_groups():
        tg = vpc.http_target_groups[g]
        groups[g] = {"arn": target_group_arn(lab.region, account, lab.name, vname, g),
                     "protocol": tg.protocol, "port": tg.port, "algorithm": tg.algorithm,
                     "targets": [{"id": t, "ip": ip, "port": port}
                                 for t, ip, port in tg.target_addresses(ips)],
                     "health_check": {"enabled": True, **tg.effective_health_check()}}
    return {
        "version": CONFIG_VERSION, "lab": lab.name, "region": lab.region,
        "account_id": account, "vpc": vname, "name": alb.name,
        "arn": alb_arn(lab.region, account, lab.name, vname, alb.name),
        "dns_name": dns_name(lab, vname, alb.name),
        "node": {"az": vpc.subnets[subnet].az, "subnet": subnet,
                 "address": addresses[(vname, node_name(alb.name, subnet))]},
        "idle_timeout": alb.idle_timeout,
        "xff_mode": alb.xff_header_processing,
        "xff_client_port": alb.xff_client_port,
        "socket": files["socket"], "access_log": files["access_log"],
        "listeners": [{"port": l.port, "protocol": l.protocol,
                       "tls": dict(cert) if l.protocol == "HTTPS" else None,
                       "rules": [{"priority": r.priority,
                                  "conditions": [c.to_config() for c in r.conditions],
                                  "action": r.action.to_config()}
                                 for r in sorted(l.rules, key=lambda r: r.priority)],
                       "default": l.default.to_config()} for l in alb.listeners],
        "target_groups": groups}


def netns(lab: Lab, vpc: str, alb: str, subnet: str) -> str:
    return names.instance_netns(lab.name, vpc, node_name(alb, subnet))
