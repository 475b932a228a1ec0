"""The naming scheme: how every kernel object of a lab is called.

Everything a lab makes starts with the lab's name, and a dot separates the parts (names
in the model are [a-z0-9-], so a dot can't be part of one, and `a.b-c` and `a-b.c` never
collide):

| object | name | example (lab demo, VPC shop, instance web1) |
|---|---|---|
| VPC namespace (router + DNS) | `<lab>.<vpc>` | `demo.shop` |
| Hyperplane namespace (the forwarder) | `<lab>.hyperplane` (no VPC may be called `hyperplane`) | `demo.hyperplane` |
| Hyperplane ENI, VPC end | `eni-<11 hex>` in the VPC namespace (model/enis.py) | `eni-3f2a9c01b7d` |
| Hyperplane ENI, forwarder end | `hp<port>` in the Hyperplane namespace | `hp0` |
| health checker's namespace | `<lab>.hyperplane.health`, its `eth0` ⇄ `hc0` in the Hyperplane namespace | `demo.hyperplane.health` |
| API Gateway's VPC (the service's account) | `<lab>.apigw` (no VPC may be called `apigw`) | `demo.apigw` |
| an HTTP-API VPC link's routing domain | `<lab>.apigw.<link>`, its `vpclink0` ⇄ `hp<port>` in the Hyperplane namespace | `demo.apigw.app-link` |
| the internet (clients of the lab's APIs) | `<lab>.internet` (no VPC may be called `internet`), its `eth0` ⇄ `internet0` in `<lab>.apigw` | `demo.internet` |
| instance namespace | `<lab>.<vpc>.<instance>` | `demo.shop.web1` |
| ENI, VPC (router) end | `eni-<instance>` in the VPC namespace | `eni-web1` |
| ENI, instance end | `eth0` in the instance namespace | `eth0` |
| ownership mark (altname) | `vpclab.<lab>.<vpc>.<instance>.eni` / `.eth0`, and `vpclab.<lab>.lo` on each namespace's `lo` | `vpclab.demo.shop.web1.eni` |
| nftables table | `inet <lab>-sg` in each VPC namespace | `table inet demo-sg` |
| state, logs, resolv.conf | `/run/vpclab/<lab>/` | `/run/vpclab/demo/state.json` |

Interface names are limited to 15 characters by the kernel (IFNAMSIZ), so an instance
name is at most 11 (`eni-` + 11). Altnames may be 127.
"""
from __future__ import annotations

import os

MAX_LAB_NAME = 12        # characters of a lab name (schema.json's `lab` pattern)
IFNAMSIZ = 15            # usable characters of an interface name
ALTNAMSIZ = 127          # usable characters of an interface altname
MARK = "vpclab"
ENI_PREFIX = "eni-"
INSTANCE_IFNAME = "eth0"
MAX_INSTANCE_NAME = IFNAMSIZ - len(ENI_PREFIX)
RUN_DIR = os.environ.get("VPCLAB_RUN_DIR", "/run/vpclab")


HYPERPLANE = "hyperplane"
APIGW = "apigw"
INTERNET = "internet"
RESERVED_VPC_NAMES = (HYPERPLANE, APIGW, INTERNET)


def hyperplane_netns(lab: str) -> str:
    """The namespace of the lab's forwarder: no addresses, no routes (DESIGN.md)."""
    return f"{lab}.{HYPERPLANE}"


def health_netns(lab: str) -> str:
    """Where the NLB health checks are sent from, through the forwarder."""
    return f"{lab}.{HYPERPLANE}.health"


def vpc_netns(lab: str, vpc: str) -> str:
    return f"{lab}.{vpc}"


def instance_netns(lab: str, vpc: str, instance: str) -> str:
    return f"{lab}.{vpc}.{instance}"


def eni_ifname(instance: str) -> str:
    return ENI_PREFIX + instance


def eni_altname(lab: str, vpc: str, instance: str) -> str:
    return f"{MARK}.{lab}.{vpc}.{instance}.eni"


def eth_altname(lab: str, vpc: str, instance: str) -> str:
    return f"{MARK}.{lab}.{vpc}.{instance}.eth0"


def lo_altname(lab: str) -> str:
    return f"{MARK}.{lab}.lo"


def mark_prefix(lab: str | None = None) -> str:
    """What every ownership altname of `lab` (or of any lab) starts with."""
    return f"{MARK}.{lab}." if lab else f"{MARK}."


def lab_of_mark(altname: str) -> str | None:
    """The lab an ownership altname belongs to, or None if it isn't one of ours."""
    parts = altname.split(".")
    if len(parts) >= 3 and parts[0] == MARK:
        return parts[1]
    return None


def nft_table(lab: str) -> str:
    return f"{lab}-sg"


def nft_ports_table(lab: str) -> str:
    """The hyperplane namespace's table that stops port frames after the forwarder."""
    return f"{lab}-ports"


def lab_dir(lab: str) -> str:
    return os.path.join(RUN_DIR, lab)


def cgroup_name(lab: str) -> str:
    """The lab's cgroup v2 group, directly below the v2 root (netns_setup/cgroup.py)."""
    return f"{MARK}.{lab}"


def lab_of_cgroup(group: str) -> str | None:
    return group[len(MARK) + 1:] or None if group.startswith(MARK + ".") else None


def apigw_netns(lab: str) -> str:
    """API Gateway's own VPC: where its front end runs (issue 10 on)."""
    return f"{lab}.{APIGW}"


def internet_netns(lab: str) -> str:
    """Where the lab's API clients stand: the internet, with a route to API Gateway only."""
    return f"{lab}.{INTERNET}"


def vpc_link_netns(lab: str, link: str) -> str:
    """One HTTP-API VPC link's routing domain: its attachment to the Hyperplane and a
    route to the link VPC's CIDR, nothing else (the kernel here has no VRFs)."""
    return f"{lab}.{APIGW}.{link}"
