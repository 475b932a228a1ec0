"""`vpclab validate FILE`: every problem of a topology file, with its field path.

Prints `OK: lab <name>: N VPCs, N subnets, N instances` (and the PrivateLink resources
there are) and exits 0, or prints one line
per problem (`vpcs.shop.subnets.web-b.cidr: 10.1.2.0/24 is outside the VPC CIDR
10.0.0.0/16`) on stderr and exits 2. Needs no root and touches nothing.
"""
from __future__ import annotations

import sys

from ..model import TopologyError, load
from .common import EXIT_OK, EXIT_USAGE


def register(sub) -> None:
    p = sub.add_parser("validate", help="check a topology file, touching nothing")
    p.add_argument("file", help="the topology file (YAML)")
    p.set_defaults(func=run)


def report(file: str, e: TopologyError) -> None:
    print(f"{file}: {len(e.problems)} problem{'s' if len(e.problems) != 1 else ''}:",
          file=sys.stderr)
    for p in e.problems:
        print(f"  {p}", file=sys.stderr)


def run(args) -> int:
    try:
        lab = load(args.file)
    except TopologyError as e:
        report(args.file, e)
        return EXIT_USAGE
    # What the file declares: API Gateway's VPC and what REST links make are derived.
    vpcs = [v for v in lab.vpcs.values() if v.service is None]
    counts = [(len(vpcs), "VPC")]
    for attr, noun in (("subnets", "subnet"), ("instances", "instance"),
                       ("load_balancers", "NLB"), ("albs", "ALB"),
                       ("endpoint_services", "endpoint service"),
                       ("endpoints", "endpoint")):
        n = sum(1 for v in vpcs for x in getattr(v, attr).values()
                if getattr(x, "managed_by", None) is None)
        if n or attr in ("subnets", "instances"):
            counts.append((n, noun))
    links = len(lab.vpc_links) + len(lab.rest_vpc_links)
    if links:
        counts.append((links, "VPC link"))
    if lab.apis:
        counts.append((len(lab.apis), "API"))
    if lab.cloud_map_services:
        counts.append((len(lab.cloud_map_services), "Cloud Map service"))
    print(f"OK: lab {lab.name}: " + ", ".join(f"{n} {noun}{'s' * (n != 1)}" for n, noun in counts))
    return EXIT_OK
