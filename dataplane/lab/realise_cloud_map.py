"""Cloud Map's part of `up`, `status` and the running lab's changes (compile/cloud_map.py
says what is made and where).

`up` (`final_steps`, after every VPC and the forwarder, before API Gateway's front end,
which reads the same registry) writes the registry and starts the Cloud Map process,
and waits until DiscoverInstances answers in every VPC. The VPC resolvers were started
earlier with the namespaces' forwarding (`resolver_args`); until the process listens a
forwarded name gets no answer.

A running lab's registry changes under the lab's lock (State.locked, as the supervisor's
restarts): `register_instance`, `deregister_instance`, `set_instance_health` read the
registry file, check the change as the model checks the file (model/cloud_map.py's
`instance_problems`; an `ip` inside some VPC, a `VPC/INSTANCE` that exists) and write
the registry anew; DNS, DiscoverInstances and API Gateway see it at their next question.
Bad input raises TopologyError (a field and why) or registry.DiscoveryError (an unknown
namespace, service or instance), before anything is written.
"""
from __future__ import annotations

import ipaddress
import json
import os
import sys
from typing import Any, Callable

from netns_setup import procs

from dataplane.compile import cloud_map as compiled
from dataplane.model import Lab
from dataplane.model.cloud_map import (IPV4, MAX_INSTANCES, PORT, initial_health, instance_problems,
                                       ip_problem, registered_attributes)
from dataplane.model.problems import Problem, TopologyError
from dataplane.services.cloudmap import registry as reg

from . import processes
from .progress import Step
from .state import LabError, State

ROLE = "cloudmap"
READY_S = 15.0






def record(lab: Lab, run_dir: str) -> dict[str, Any]:
    """The state file's `cloud_map` record."""
    if not compiled.has_cloud_map(lab):
        return {}
    return {"cloud_map": {"registry": os.path.join(run_dir, compiled.REGISTRY_FILE),
                          "config": os.path.join(run_dir, compiled.CONFIG_FILE),
                          "log": os.path.join(run_dir, compiled.LOG_FILE)}}


def final_steps(lab: Lab, st: State) -> list[Step]:
    if not compiled.has_cloud_map(lab):
        return []
    rec = st.data["cloud_map"]
    n = sum(len(s.instances) for s in lab.cloud_map_services.values())
    dns = ", ".join(f"{ns} in {v}" for v, args in compiled.resolver_args(lab).items()
                    for ns in (a.split("/")[1] for a in args)) or "none"
    return [
        Step(f"Cloud Map registry {rec['registry']}: {len(lab.cloud_map_namespaces)} "
             f"namespaces, {len(lab.cloud_map_services)} services, {n} instances",
             lambda: reg.save_registry(rec["registry"], compiled.registry(lab))),
        Step(f"Cloud Map process: DiscoverInstances on every VPC's resolver address "
             f":{compiled.HTTP_PORT}, private DNS ({dns}) on :{compiled.DNS_PORT}",
             lambda: _start(lab, st)),
    ]


def _start(lab: Lab, st: State) -> None:
    rec = st.data["cloud_map"]
    config = compiled.service_config(lab, st.dir)
    with open(rec["config"], "w") as f:
        json.dump(config, f, indent=1)
    home = config["vpcs"][0]
    pid = processes.start(st, ROLE, home["vpc"], None, home["netns"],
                          [sys.executable, "-m", "dataplane.services.cloudmap", "--config",
                           rec["config"]], rec["log"], None)
    processes.wait_ready(pid, _listening(config), "the Cloud Map process", rec["log"], READY_S)


def _listening(config: dict[str, Any]) -> Callable[[], bool]:
    """Whether DiscoverInstances accepts connections in every VPC (it opens them last)."""
    from netns_setup.nsenter import NetnsSockets

    def ready() -> bool:
        for v in config["vpcs"]:
            with NetnsSockets(v["netns"]) as sockets, sockets.socket() as sock:
                sock.settimeout(1)
                try:
                    sock.connect((v["address"], v["http_port"]))
                except OSError:
                    return False
        return True
    return ready


def lab_status(lab: Lab, data: dict[str, Any]) -> dict[str, Any]:
    """Cloud Map: the process, and every namespace, service and instance as the registry
    says now (with health)."""
    rec = data.get("cloud_map")
    if not rec:
        return {}
    proc = next((p for p in data.get("processes", []) if p["role"] == ROLE), None)
    try:
        registry = reg.load_registry(rec["registry"])
        problem = None
    except (OSError, ValueError) as exc:
        registry, problem = {"namespaces": {}}, f"registry unreadable: {exc}"
    namespaces = {}
    for nsname, ns in registry["namespaces"].items():
        services = {}
        for sname, svc in ns["services"].items():
            services[sname] = {
                "id": svc["id"], "arn": svc["arn"], "dns": svc["dns"],
                "dns_name": f"{sname}.{nsname}" if svc["dns"] else None,
                "health_check": svc["health_check"],
                "instances": {iid: {"ip": r["attributes"].get(IPV4),
                                    "port": r["attributes"].get(PORT),
                                    "instance": r.get("instance"),
                                    "health": reg.health_status_of(svc, r),
                                    "attributes": r["attributes"]}
                              for iid, r in svc["instances"].items()}}
        namespaces[nsname] = {"id": ns["id"], "type": ns["type"], "vpc": ns["vpc"],
                              "services": services}
    return {"cloud_map": {
        "registry": rec["registry"], "revision": registry.get("revision"), "problem": problem,
        "process": {"pid": proc["pid"] if proc else None, "log": rec["log"],
                    "running": bool(proc) and procs.alive(proc["pid"], proc["start"])},
        "api_names": compiled.api_names(lab.region), "namespaces": namespaces}}


# -- changes to a running lab ----------------------------------------------------------------

def change_registry(lab: str, change: Callable[[dict, State], Any]) -> Any:
    """Runs `change(registry, state)` on the running lab's registry under its lock and
    writes the result; returns what `change` returned."""
    with State.locked(lab) as st:
        if st is None or st.data.get("status") != "up":
            raise LabError(f"lab {lab} is not up")
        rec = st.data.get("cloud_map")
        if not rec:
            raise LabError(f"lab {lab} has no Cloud Map (its file has no cloud_map section)")
        with open(rec["registry"]) as f:
            registry = json.load(f)
        out = change(registry, st)
        reg.save_registry(rec["registry"], registry)
        return out


def register_instance(lab: str, service: str, instance_id: str, *, port: int | None,
                      ip: str | None = None, instance: str | None = None,
                      attributes: dict[str, str] | None = None,
                      namespace: str | None = None) -> tuple[str, str, bool]:
    """RegisterInstance on the running lab: (namespace, service, whether it is new)."""
    attributes = dict(attributes or {})

    def change(registry: dict, st: State) -> tuple[str, str, bool]:
        ns, svc_name = reg.locate(registry, service, namespace)
        svc = registry["namespaces"][ns]["services"][svc_name]
        where = f"{ns}/{svc_name}/{instance_id}"
        custom = svc.get("health_check") == "custom"
        problems = instance_problems(
            instance_id, port, attributes, where, custom_health=custom,
            dns_namespace=registry["namespaces"][ns]["type"] == "DNS_PRIVATE",
            srv="SRV" in (svc.get("dns") or {}))
        address = _address(st, ip, instance, where, problems)
        if instance_id not in svc["instances"] and len(svc["instances"]) >= MAX_INSTANCES:
            problems.append(Problem(where, f"service {ns}/{svc_name} has {MAX_INSTANCES} "
                                    f"instances, AWS's quota"))
        if problems:
            raise TopologyError(problems)
        new = reg.register(registry, ns, svc_name, instance_id,
                           registered_attributes(address, port, attributes), instance,
                           initial_health(custom, attributes))
        return ns, svc_name, new
    return change_registry(lab, change)


def _address(st: State, ip: str | None, instance: str | None, where: str,
             problems: list[Problem]) -> str:
    if (ip is None) == (instance is None):
        problems.append(Problem(where, "name exactly one of an address (--ip) and a lab "
                                       "instance (--instance VPC/INSTANCE)"))
        return ""
    if ip is not None:
        cidrs = {n: ipaddress.IPv4Network(v["cidr"])
                 for n, v in st.data["topology"]["vpcs"].items()}
        why = ip_problem(ip, cidrs)
        if why:
            problems.append(Problem(f"{where}.ip", why))
        return ip
    vname, _, iname = str(instance).partition("/")
    vpc = st.data["vpcs"].get(vname)
    found = vpc["instances"].get(iname) if vpc else None
    if found is None:
        known = [f"{v}/{i}" for v, r in st.data["vpcs"].items() for i in r["instances"]]
        problems.append(Problem(f"{where}.instance", f"no instance {instance!r} in lab "
                                f"{st.lab} (instances: {', '.join(known) or 'none'})"))
        return ""
    return found["ip"]


def deregister_instance(lab: str, service: str, instance_id: str,
                        namespace: str | None = None) -> tuple[str, str]:
    def change(registry: dict, st: State) -> tuple[str, str]:
        ns, svc = reg.locate(registry, service, namespace)
        reg.deregister(registry, ns, svc, instance_id)
        return ns, svc
    return change_registry(lab, change)


def set_instance_health(lab: str, service: str, instance_id: str, health: str,
                        namespace: str | None = None) -> tuple[str, str]:
    def change(registry: dict, st: State) -> tuple[str, str]:
        ns, svc = reg.locate(registry, service, namespace)
        reg.set_health(registry, ns, svc, instance_id, health)
        return ns, svc
    return change_registry(lab, change)


def discover_in_lab(lab: str, service: str, namespace: str | None = None,
                    **filters: Any) -> tuple[str, str, list[dict], int]:
    """DiscoverInstances on the running lab's registry: (namespace, service, instances,
    revision)."""
    st = State.load(lab)
    rec = (st.data.get("cloud_map") if st else None)
    if not rec:
        raise LabError(f"lab {lab} has no Cloud Map" if st else f"no lab {lab}")
    registry = reg.load_registry(rec["registry"])
    ns, svc = reg.locate(registry, service, namespace)
    return ns, svc, reg.discover(registry, ns, svc, **filters), int(registry.get("revision", 0))
