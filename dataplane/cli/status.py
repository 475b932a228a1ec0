"""`vpclab status [-l LAB | LAB] [--json]`: what a lab is made of and whether it is all there.

Reads only the state file and asks the kernel whether each namespace and process is
still there. Without LAB, every lab with state is listed. The exit status is 1 when any
lab shown is not up and whole — unfinished, degraded, a part missing or stopped (with
--json too: each lab's `"healthy"` says which) — and when the lab named has no state.

`--json` prints one object: with a lab named, that lab's report with `"version": 1` in
front; without, `{"version": 1, "labs": [report, …]}`. The README's "--json shapes" lists
a report's keys.
"""
from __future__ import annotations

import contextlib
import io

from .. import lab as labmod
from ..model import names
from . import cloudmap
from .common import EXIT_FAILED, EXIT_OK, add_lab_option, lab_name, print_json, table


def register(sub) -> None:
    p = sub.add_parser("status", help="show labs (from their state files)")
    add_lab_option(p, positional=True, what="the lab to show (default: every lab with state)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object instead of the text (README: --json shapes)")
    p.set_defaults(func=run)


def run(args) -> int:
    name = lab_name(args)
    if name:
        reports = [labmod.status(name)]
    else:
        reports = []
        for each in labmod.state_labs():
            try:
                reports.append(labmod.status(each))
            except labmod.LabError as e:
                reports.append({"lab": each, "status": f"broken: {e}", "vpcs": {},
                                "processes": [], "region": None, "state_dir": None})
    if args.json:
        for r in reports:
            with contextlib.redirect_stdout(io.StringIO()):   # the text's verdict, unprinted
                r["healthy"] = print_lab(r)
        print_json(reports[0] if name else {"labs": reports})
        return EXIT_OK if all(r["healthy"] for r in reports) else EXIT_FAILED
    if not reports:
        print("no labs")
        return EXIT_OK
    healthy = True
    for r in reports:
        healthy &= print_lab(r)
        print()
    return EXIT_OK if healthy else EXIT_FAILED


def _process_state(p: dict) -> str:
    """`running`, `EXITED (code N)` (a `run:` command's status) or `STOPPED`."""
    if p["running"]:
        return "running"
    return f"EXITED (code {p['exit_code']})" if p.get("state") == "exited" else "STOPPED"


def print_lab(r: dict) -> bool:
    """One lab's report as text; False when any part of it is missing or stopped."""
    print(f"lab {r['lab']}: {r['status']} (region {r['region']}, state in {r['state_dir']})")
    healthy = r["status"] == "up"          # not building, going down, degraded or broken
    for problem in r.get("degraded") or []:
        print(f"  DEGRADED: {problem}")
    healthy &= not r.get("degraded")
    rows = []
    for vname, v in r["vpcs"].items():
        rows.append((vname, "-", v["netns"], f"{v['cidr']} dns {v['dns']}",
                     "-", "-", "ok" if v["present"] else "MISSING"))
        healthy &= v["present"]
        for n, i in v["instances"].items():
            rows.append((vname, n, i["netns"], f"{i['ip']}/{i['prefixlen']}",
                         ",".join(i["security_groups"]), _source_dest(i),
                         "ok" if i["present"] else "MISSING"))
            healthy &= i["present"]
    table(rows, ("VPC", "INSTANCE", "NAMESPACE", "ADDRESS", "SG", "SRC/DST CHECK DROPS",
                 "STATE"))
    for p in r["processes"]:
        where = p["vpc"] + (f"/{p['instance']}" if p["instance"] else "")
        restarts = f", restarted {p['restarts']}×" if p.get("restarts") else ""
        print(f"  {p['role']} {where}: pid {p['pid']} {_process_state(p)}{restarts}; "
              f"log {p['log']}")
    if r.get("tracking"):
        healthy &= _print_tracking(r["tracking"])
    if r.get("hyperplane"):
        healthy &= _print_hyperplane(r["hyperplane"], r["lab"])
    if r.get("albs"):
        healthy &= _print_albs(r["albs"])
    if r.get("api_gateway"):
        healthy &= _print_apis(r["api_gateway"], r["lab"])
    if r.get("cloud_map"):
        healthy &= cloudmap.print_status(r["cloud_map"])
    return bool(healthy)


def tcpdump_command(lab: str, eni: dict) -> str:
    """The plain command that captures a Hyperplane ENI on its VPC router's side. Its
    interface name is the eni- ID cut to 15 characters (the kernel's limit): tcpdump
    (libpcap) names an interface through a 16-byte ifreq, so neither the 21-character ID
    nor the ownership altname that carries it can be given to `tcpdump -i`."""
    return f"ip netns exec {names.vpc_netns(lab, eni['vpc'])} tcpdump -ni {eni['ifname']}"


def _print_eni(x: dict, lab: str, where: str) -> None:
    print(f"    ENI {x['eni_id']} {x['ip']} in {where}")
    if x.get("ifname"):
        print(f"      capture: {tcpdump_command(lab, x)}")


def _source_dest(instance: dict) -> str:
    """The source/destination check: `off`, or the packets it dropped each way."""
    if not instance.get("source_dest_check", True):
        return "off"
    dropped = instance.get("source_dest_dropped")
    if dropped is None:
        return "?"
    return f"src {dropped['source']} dst {dropped['destination']}"


def _print_tracking(t: dict) -> bool:
    """Where the lab's processes are tracked (and ended at `down`); False when its
    cgroup is missing."""
    if "path" not in t:
        print(f"  processes tracked by: {t['mode']} (psutil; {t['reason']})")
        return True
    cpu = "n/a" if t["cpu_usec"] is None else f"{t['cpu_usec'] / 1e6:.2f} s"
    mem = ("n/a (no memory controller in cgroup v2)" if t["memory_bytes"] is None
           else f"{t['memory_bytes'] / 2**20:.1f} MiB")
    print(f"  processes tracked by: {t['mode']} {t['path']} "
          f"{'ok' if t['present'] else 'MISSING'}; {t['processes']} processes, "
          f"CPU {cpu}, memory {mem}")
    return t["present"]


def _print_hyperplane(hp: dict, lab: str) -> bool:
    print(f"  hyperplane: namespace {hp['netns']} {'ok' if hp['present'] else 'MISSING'}, "
          f"control socket {hp['socket']}")
    for key, e in hp["endpoints"].items():
        print(f"  endpoint {key} {e['id']}: {e['state']} (service {e['service']})")
        for x in e["enis"]:
            _print_eni(x, lab, f"{x['subnet']} ({x['az']})")
        for name in e["dns"]:
            print(f"    DNS {name}")
    for key, lb in hp["load_balancers"].items():
        print(f"  NLB {key}:")
        for x in lb["enis"]:
            _print_eni(x, lab, f"{x['subnet']} ({x['az']})")
        for l in lb["listeners"]:
            print(f"    TCP {l['port']} → {l['target_group']}: {', '.join(l['targets'])}")
        health = lb["target_health"]
        if health is None:
            print("    target health: unknown (the forwarder does not answer)")
            continue
        for group, targets in health.items():
            node, tg = group.split("/")
            for target, h in sorted(targets.items()):
                why = f" {h['reason']}" if h["reason"] else ""
                err = f" ({h['last_error']})" if h["last_error"] else ""
                print(f"    {tg} target {target} seen from {node}: {h['state']}{why}{err}")
    return hp["present"] and _print_api_gateway(hp.get("api_gateway"), lab)


def _print_albs(albs: dict) -> bool:
    """Each ALB, its nodes and the target health each node sees; False when a node is
    not running."""
    healthy = True
    for key, alb in albs.items():
        print(f"  ALB {key}: {alb['dns_name']} ({', '.join(alb['listeners'])})")
        for n in alb["nodes"]:
            print(f"    node {n['address']} in {n['subnet']} ({n['az']}): pid {n['pid']} "
                  f"{'running' if n['running'] else 'STOPPED'}; namespace {n['netns']}")
            healthy &= n["running"]
            for tg, targets in (n["target_groups"] or {}).items():
                for t in targets:
                    why = f" {t['reason']}" if t.get("reason") else ""
                    desc = f" ({t['description']})" if t.get("description") else ""
                    print(f"      {tg} target {t['id']} {t['ip']}:{t['port']}: "
                          f"{t['state']}{why}{desc}")
    return healthy


def _print_api_gateway(apigw: dict | None, lab: str) -> bool:
    """API Gateway's VPC and its VPC links; False when any part is missing."""
    if apigw is None:
        return True
    print(f"  API Gateway VPC: namespace {apigw['netns']} ({apigw['cidr']}) "
          f"{'ok' if apigw['present'] else 'MISSING'}")
    healthy = apigw["present"]
    for name, link in apigw["vpc_links"].items():
        why = f": {link['message']}" if link["message"] else ""
        print(f"  VPC link {name} {link['id']}: {link['state']}{why}")
        print(f"    into {link['vpc']}, subnets {', '.join(link['subnets'])}, "
              f"sg {', '.join(link['security_groups'])}; routing domain {link['netns']}")
        for x in link["enis"]:
            _print_eni(x, lab, f"{x['subnet']} ({x['az']})")
        healthy &= link["state"] == "AVAILABLE"
    return healthy


def _print_apis(gw: dict, lab: str) -> bool:
    """API Gateway's front end, REST links and APIs; False when a part is missing or
    the front end is not running."""
    fe, inet = gw["front_end"], gw["internet"]
    print(f"  API Gateway front end in {gw['netns']}: {fe['address']}:80 and :443, pid "
          f"{fe['pid']} {'running' if fe['running'] else 'STOPPED'}; log {fe['log']}")
    print(f"  internet: namespace {inet['netns']} {'ok' if inet['present'] else 'MISSING'}, "
          f"{inet['ip']} (vpclab exec internet -- curl https://…); lab CA {gw['ca']}")
    stats = fe["stats"]
    if stats is not None:
        counts = ", ".join(f"{k} {v}" for k, v in stats.items() if isinstance(v, int))
        print(f"    {counts}")
    healthy = fe["running"] and inet["present"] and gw["present"]
    for name, link in gw["rest_vpc_links"].items():
        why = f": {link['message']}" if link["message"] else ""
        print(f"  VPC link {name} {link['id']} (REST, V1): {link['state']}{why}")
        print(f"    → NLB {link['target']} over PrivateLink: endpoint {link['endpoint']}, "
              f"service {link['endpoint_service']} (allowed principal "
              f"{', '.join(link['allowed_principals'])}, acceptance not required)")
        for x in link["enis"]:
            _print_eni(x, lab, f"API Gateway's {x['subnet']}")
    for name, api in gw["apis"].items():
        print(f"  API {name} {api['id']} ({api['type']}), stages {', '.join(api['stages'])}"
              + (f", throttle {api['throttle']['rate']}/s burst {api['throttle']['burst']}"
                 if api["throttle"] else ""))
        for stage, url in api["invoke_urls"].items():
            print(f"    {stage}: {url}  (access log {api['access_logs'][stage]})")
        for key, r in api["routes"].items():
            where = r.get("uri") or r.get("target")
            print(f"    {key} → {r['vpc_link']}: {where}")
    return healthy
