"""`vpclab validate FILE [--name LAB] [--plan] [--json]`: every problem of a topology
file, with its field path; with `--plan`, what `up` would make. Needs no root, touches
nothing, never loads the compiled engine.

Prints `OK: lab <name>: N VPCs, N subnets, N instances` (and the other resources there
are) and exits 0, or prints one line per problem (`vpcs.shop.subnets.web-b.cidr:
10.1.2.0/24 is outside the VPC CIDR 10.0.0.0/16`) on stderr and exits 2. `--name LAB`
checks the file as the lab `LAB` (as `up FILE --name LAB` would make it). `--plan` adds
the plan (lab/preview.py): namespaces, interfaces, ENIs with addresses and IDs, DNS
names, the forwarder's services, processes and `up`'s steps.

`--json` prints one JSON object on stdout instead, whatever the outcome (exit codes as
above); its shape is stable (keys are only ever added):

    {"version": 1, "ok": true, "file": "examples/demo.yaml", "lab": "demo",
     "counts": {"vpcs": 1, "subnets": 2, "instances": 4, "nlbs": 0, "albs": 0,
                "endpoint_services": 0, "endpoints": 0, "vpc_links": 0, "apis": 0,
                "cloud_map_services": 0},
     "problems": [],
     "plan": {...}}                       # only with --plan (lab/preview.py's keys)

    {"version": 1, "ok": false, "file": "bad.yaml", "lab": null, "counts": null,
     "problems": [{"path": "vpcs.shop.cidr", "message": "..."}]}

`path` is "" for a problem of the whole file (unreadable, not YAML).
"""
from __future__ import annotations

import sys
from typing import Any

from ..model import Lab, TopologyError, load
from .common import EXIT_OK, EXIT_USAGE, print_json, table

# (JSON key, noun) of what the summary counts, in its order
COUNTED = (("vpcs", "VPC"), ("subnets", "subnet"), ("instances", "instance"),
           ("nlbs", "NLB"), ("albs", "ALB"), ("endpoint_services", "endpoint service"),
           ("endpoints", "endpoint"), ("vpc_links", "VPC link"), ("apis", "API"),
           ("cloud_map_services", "Cloud Map service"))
ALWAYS_SHOWN = ("vpcs", "subnets", "instances")


def register(sub) -> None:
    p = sub.add_parser("validate", help="check a topology file, touching nothing")
    p.add_argument("file", help="the topology file (YAML)")
    add_name_option(p)
    p.add_argument("--plan", action="store_true",
                   help="also show what `up` would make: namespaces, ENIs, DNS names, "
                        "forwarder services, processes, steps")
    p.add_argument("--json", action="store_true",
                   help="one JSON object on stdout (a stable shape: ok, problems, counts)")
    p.set_defaults(func=run)


def add_name_option(p) -> None:
    """`--name LAB`, shared with `up`: the file's lab under another name."""
    p.add_argument("--name", metavar="LAB",
                   help="the lab's name instead of the file's `lab:` (run one file as "
                        "several labs side by side)")


def load_named(file: str, name: str | None) -> Lab:
    """The lab in `file`, named `name` when given; a bad `--name` is named as such."""
    try:
        return load(file, name=name)
    except TopologyError as e:
        if name is not None:
            for i, p in enumerate(e.problems):
                if p.path == "lab":
                    e.problems[i] = type(p)("--name", p.reason)
        raise


def report(file: str, e: TopologyError) -> None:
    print(f"{file}: {len(e.problems)} problem{'s' if len(e.problems) != 1 else ''}:",
          file=sys.stderr)
    for p in e.problems:
        print(f"  {p}", file=sys.stderr)


def counts(lab: Lab) -> dict[str, int]:
    """What the file declares: API Gateway's VPC and what REST links make are derived."""
    vpcs = [v for v in lab.vpcs.values() if v.service is None]

    def declared(attr: str) -> int:
        return sum(1 for v in vpcs for x in getattr(v, attr).values()
                   if getattr(x, "managed_by", None) is None)
    return {"vpcs": len(vpcs), "subnets": declared("subnets"),
            "instances": declared("instances"), "nlbs": declared("load_balancers"),
            "albs": declared("albs"), "endpoint_services": declared("endpoint_services"),
            "endpoints": declared("endpoints"),
            "vpc_links": len(lab.vpc_links) + len(lab.rest_vpc_links),
            "apis": len(lab.apis), "cloud_map_services": len(lab.cloud_map_services)}


def summary(lab: Lab) -> str:
    n = counts(lab)
    shown = [(n[key], noun) for key, noun in COUNTED if n[key] or key in ALWAYS_SHOWN]
    return f"OK: lab {lab.name}: " + ", ".join(f"{k} {noun}{'s' * (k != 1)}" for k, noun in shown)


def run(args) -> int:
    try:
        lab = load_named(args.file, args.name)
    except TopologyError as e:
        if args.json:
            print_json({"ok": False, "file": args.file, "lab": None, "counts": None,
                         "problems": [{"path": p.path, "message": p.reason}
                                      for p in e.problems]})
        else:
            report(args.file, e)
        return EXIT_USAGE
    plan = None
    if args.plan:
        from ..lab.preview import preview       # the lab floor, only when asked
        plan = preview(lab)
    if args.json:
        out: dict[str, Any] = {"ok": True, "file": args.file, "lab": lab.name,
                               "counts": counts(lab), "problems": []}
        if plan is not None:
            out["plan"] = plan
        print_json(out)
        return EXIT_OK
    print(summary(lab))
    if plan is not None:
        print_plan(plan)
    return EXIT_OK


def print_plan(plan: dict[str, Any]) -> None:
    """The plan as text: one section per key of lab/preview.py's dict."""
    print(f"\nplan of lab {plan['lab']} (region {plan['region']}); nothing was made. "
          f"State and logs: {plan['state_dir']}/, cgroup {plan['cgroup']}")
    print(f"\nnamespaces ({len(plan['namespaces'])}):")
    for ns in plan["namespaces"]:
        print(f"  {ns}")
    print("\ninterfaces:")
    table([(r["netns"], r["ifname"], r["address"], r["what"]) for r in plan["interfaces"]],
          ("NAMESPACE", "INTERFACE", "ADDRESS", "WHAT"))
    print("\nENIs:")
    table([(e["vpc"], e["subnet"], e["ifname"], e["eni_id"] or "-", e["ip"],
            f"{e['kind']} {e['owner']}") for e in plan["enis"]],
          ("VPC", "SUBNET", "INTERFACE", "ENI ID", "ADDRESS", "OF"))
    print("\nDNS names (each VPC's resolver):")
    for vpc, entries in plan["dns"].items():
        for d in entries:
            print(f"  {vpc}: {d['name']} → {d['address']}")
    if plan["services"]:
        print("\nforwarder services:")
        for s in plan["services"]:
            if s["type"] == "privatelink":
                print(f"  {s['name']}: {s['listener']} on {s['in']} → "
                      f"{', '.join(s['backends']) or 'no backends'} via {s['out']} "
                      f"(from {s['snat']}){' PROXY v2' if s['proxy_protocol_v2'] else ''}"
                      f"{' disabled' if s['disabled'] else ''}")
            else:
                print(f"  {s['name']}: VPC-to-VPC NAT on {s['in']} to "
                      f"{', '.join(s['prefixes'])} from {', '.join(s['enis'])}")
    print("\nprocesses:")
    for p in plan["processes"]:
        where = p["vpc"] + (f"/{p['instance']}" if p["instance"] else "")
        print(f"  {p['role']:>9} {where} in {p['netns']}: {p['what']}")
    print(f"\nsteps of `up` ({len(plan['steps'])}):")
    for i, s in enumerate(plan["steps"], 1):
        print(f"  [{i}/{len(plan['steps'])}] {s}")
