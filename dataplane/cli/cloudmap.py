"""`vpclab cloudmap [-l LAB] discover|register|deregister|set-health …`: AWS Cloud Map in a
running lab (dataplane/model/cloud_map.py, dataplane/services/cloudmap/).

    vpclab cloudmap discover SERVICE [--namespace NS] [--filter k=v …] [--optional k=v …]
                             [--health-status HEALTHY|UNHEALTHY|ALL|HEALTHY_OR_ELSE_ALL]
                             [--max-results N] [--json]
    vpclab cloudmap register SERVICE ID (--ip IP | --instance VPC/INSTANCE) --port P
                             [--attr k=v …] [--namespace NS]
    vpclab cloudmap deregister SERVICE ID [--namespace NS]
    vpclab cloudmap set-health SERVICE ID HEALTHY|UNHEALTHY [--namespace NS]

`discover` is DiscoverInstances (AWS-FACTS §9: filters, health status, a shuffled list);
the others change the lab's registry under its lock, and DNS, DiscoverInstances and API
Gateway see the change at their next question. A service named alone must be in one
namespace only. Bad input (an unknown service or instance, an address outside every VPC,
an attribute over AWS's limits) is exit status 2 with the reason, and changes nothing.
"""
from __future__ import annotations

import json

from ..lab import realise_cloud_map as cloudmap
from ..services.cloudmap.registry import (DEFAULT_HEALTH_STATUS, DEFAULT_MAX_RESULTS,
                                          HEALTH_STATUSES, DiscoveryError)
from .common import (EXIT_OK, EXIT_USAGE, CliError, add_lab_option, lab_name, need_root, pick_lab,
                     table)


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for text in values or []:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise CliError(f"{option} {text!r}: write KEY=VALUE", EXIT_USAGE)
        out[key] = value
    return out


def register(sub) -> None:
    p = sub.add_parser("cloudmap", help="discover, register, deregister Cloud Map instances")
    add_lab_option(p)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    d = actions.add_parser("discover", help="DiscoverInstances")
    _service_arguments(d, instance=False)
    d.add_argument("--filter", action="append", metavar="KEY=VALUE",
                   help="QueryParameters: every one must match")
    d.add_argument("--optional", action="append", metavar="KEY=VALUE",
                   help="OptionalParameters: applied only when some instance matches")
    d.add_argument("--health-status", choices=HEALTH_STATUSES, default=DEFAULT_HEALTH_STATUS,
                   help=f"which instances by health (default {DEFAULT_HEALTH_STATUS})")
    d.add_argument("--max-results", type=int, default=DEFAULT_MAX_RESULTS,
                   help=f"at most this many instances (default {DEFAULT_MAX_RESULTS})")
    d.add_argument("--json", action="store_true",
                   help="AWS's DiscoverInstances response body, as AWS shapes it")
    d.set_defaults(func=run_discover)

    r = actions.add_parser("register", help="RegisterInstance (an existing ID is updated)")
    _service_arguments(r)
    where = r.add_mutually_exclusive_group(required=True)
    where.add_argument("--ip", help="the instance's IPv4 address (in one of the lab's VPCs)")
    where.add_argument("--instance", metavar="VPC/INSTANCE",
                       help="a lab instance, whose address is registered")
    r.add_argument("--port", type=int, required=True, help="the instance's port")
    r.add_argument("--attr", action="append", metavar="KEY=VALUE",
                   help="a custom attribute (repeatable)")
    r.set_defaults(func=run_register)

    g = actions.add_parser("deregister", help="DeregisterInstance")
    _service_arguments(g)
    g.set_defaults(func=run_deregister)

    h = actions.add_parser("set-health", help="UpdateInstanceCustomHealthStatus")
    _service_arguments(h)
    h.add_argument("status", choices=("HEALTHY", "UNHEALTHY"), help="the new custom health")
    h.set_defaults(func=run_set_health)


def _service_arguments(p, instance: bool = True) -> None:
    """SERVICE [ID] [--namespace NS] [-l LAB], which every action takes."""
    p.add_argument("service", help="the Cloud Map service's name")
    if instance:
        p.add_argument("id", help="the instance's ID in the service")
    p.add_argument("--namespace", help="the service's namespace (needed when two have it)")
    add_lab_option(p)


def _lab(args) -> str:
    need_root()
    return pick_lab(lab_name(args)).lab


def _ask(call, *args, **kw):
    """`call(...)`; AWS's refusals (an unknown namespace, service or instance, …) are bad
    input: exit status 2."""
    try:
        return call(*args, **kw)
    except DiscoveryError as exc:
        raise CliError(f"{exc.code}: {exc}", EXIT_USAGE) from None


def run_discover(args) -> int:
    ns, svc, found, revision = _ask(
        cloudmap.discover_in_lab, _lab(args), args.service, args.namespace,
        query=_pairs(args.filter, "--filter"), optional=_pairs(args.optional, "--optional"),
        health_status=args.health_status, max_results=args.max_results)
    if args.json:
        print(json.dumps({"Instances": found, "InstancesRevision": revision}, indent=1))
        return EXIT_OK
    print(f"{ns}/{svc}: {len(found)} instances (revision {revision})")
    rows = [(i["InstanceId"], i["Attributes"].get("AWS_INSTANCE_IPV4", "-"),
             i["Attributes"].get("AWS_INSTANCE_PORT", "-"), i["HealthStatus"],
             ",".join(f"{k}={v}" for k, v in i["Attributes"].items()
                      if not k.startswith("AWS_INSTANCE_")) or "-") for i in found]
    table(rows, ("INSTANCE", "IPV4", "PORT", "HEALTH", "ATTRIBUTES"))
    return EXIT_OK


def run_register(args) -> int:
    ns, svc, new = _ask(cloudmap.register_instance, _lab(args), args.service, args.id,
                        port=args.port, ip=args.ip, instance=args.instance,
                        attributes=_pairs(args.attr, "--attr"), namespace=args.namespace)
    print(f"{ns}/{svc}: instance {args.id} {'registered' if new else 'updated'}")
    return EXIT_OK


def run_deregister(args) -> int:
    ns, svc = _ask(cloudmap.deregister_instance, _lab(args), args.service, args.id,
                   args.namespace)
    print(f"{ns}/{svc}: instance {args.id} deregistered")
    return EXIT_OK


def run_set_health(args) -> int:
    ns, svc = _ask(cloudmap.set_instance_health, _lab(args), args.service, args.id,
                   args.status, args.namespace)
    print(f"{ns}/{svc}: instance {args.id} is {args.status}")
    return EXIT_OK


def print_status(cm: dict) -> bool:
    """`vpclab status`'s Cloud Map part; False when its process is not running."""
    proc = cm["process"]
    print(f"  Cloud Map: registry {cm['registry']} (revision {cm['revision']}), process pid "
          f"{proc['pid']} {'running' if proc['running'] else 'STOPPED'}; DiscoverInstances "
          f"at http://{cm['api_names'][0]}/" + (f"; {cm['problem']}" if cm["problem"] else ""))
    for nsname, ns in cm["namespaces"].items():
        where = f", answered in VPC {ns['vpc']}" if ns["vpc"] else ""
        print(f"  namespace {nsname} {ns['id']} ({ns['type']}{where})")
        for sname, svc in ns["services"].items():
            dns = ", ".join(f"{t} ttl {ttl}" for t, ttl in svc["dns"].items())
            print(f"    service {sname} {svc['id']}" + (f": {svc['dns_name']} {dns}"
                                                       if svc["dns_name"] else "")
                  + f", health check {svc['health_check'] or 'none'}")
            for iid, i in svc["instances"].items():
                custom = ",".join(f"{k}={v}" for k, v in i["attributes"].items()
                                  if not k.startswith("AWS_INSTANCE_"))
                lab_instance = f" ({i['instance']})" if i["instance"] else ""
                print(f"      {iid} {i['ip']}:{i['port'] or '-'}{lab_instance} {i['health']}"
                      + (f" {custom}" if custom else ""))
    return proc["running"] and cm["problem"] is None
