"""API Gateway's part of `up` and `status`: the internet namespace, the lab's CA, the
internet's resolver and the front end (compile/api_gateway.py says what each is).
API Gateway's VPC itself is a VPC like the others (lab/realise_vpc.py makes its router,
resolver and security groups; lab/hyperplane.py the REST links' endpoint ENIs in it).

These are the last steps of `up` (`final_steps`): the front end needs the forwarder and
every VPC before it serves. `up` waits until the front end answers on its control socket.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from netns_setup import kernel, procs

from dataplane.forwarder import control as control_client
from dataplane.compile import api_gateway as compiled
from dataplane.model import Lab, execute_api, names
from dataplane.model.api_gateway import SERVICE, api_id, invoke_url

from . import ca, processes, realise_vpc
from .hyperplane import ensure_namespace_without_ipv6
from .plan import ENI_MTU
from .progress import Step
from .state import State

FRONT_END_READY_S = 15.0


def has_gateway(lab: Lab) -> bool:
    return bool(lab.apis)


def namespaces(lab: Lab) -> list[str]:
    return [names.internet_netns(lab.name)] if has_gateway(lab) else []




def record(lab: Lab, run_dir: str) -> dict[str, Any]:
    """The state file's `api_gateway` record (None: the lab has no APIs)."""
    if not has_gateway(lab):
        return {}
    return {"api_gateway": {
        "netns": names.apigw_netns(lab.name),
        "internet": {"netns": names.internet_netns(lab.name), "ip": compiled.INTERNET_CLIENT_IP,
                     "resolv_conf": os.path.join(run_dir, "internet.resolv.conf"),
                     "hosts": os.path.join(run_dir, "internet.hosts")},
        "front_end": {"address": compiled.FRONT_END_IP,
                      "config": os.path.join(run_dir, "apigw.json"),
                      "socket": os.path.join(run_dir, "apigw.sock"),
                      "log": os.path.join(run_dir, "apigw.log"),
                      "access_logs": os.path.join(run_dir, "apigw")},
        "ca": os.path.join(run_dir, "ca.crt"),
        "ca_bundle": os.path.join(run_dir, "ca-bundle.crt")}}


def final_steps(lab: Lab, st: State) -> list[Step]:
    if not has_gateway(lab):
        return []
    rec = st.data["api_gateway"]
    inet = rec["internet"]["netns"]
    return [
        Step(f"the internet: namespace {inet}, eth0 {compiled.INTERNET_CLIENT_IP}/"
             f"{compiled.PREFIXLEN} ⇄ {compiled.FRONT_END_IFNAME} {compiled.FRONT_END_IP} in "
             f"{rec['netns']}", lambda: _internet(lab)),
        Step(f"the lab's CA and API Gateway's certificate (*.execute-api.{lab.region}."
             f"amazonaws.com) in {st.dir}", lambda: _certificates(lab, st)),
        Step(f"DNS for the internet: dnsmasq on {compiled.INTERNET_CLIENT_IP} in {inet}, "
             f"*.execute-api.{lab.region}.amazonaws.com → {compiled.FRONT_END_IP}",
             lambda: _internet_dns(lab, st)),
        Step(f"API Gateway's front end in {rec['netns']}: {len(lab.apis)} APIs on "
             f"{compiled.FRONT_END_IP}:80 and :443"
             + (f", private APIs on {execute_api.FRONT_END_PRIVATE_IP}:443 (PROXY v2)"
                if compiled.has_private_listener(lab) else ""), lambda: _front_end(lab, st)),
    ]


def _internet(lab: Lab) -> None:
    inet, apigw = names.internet_netns(lab.name), names.apigw_netns(lab.name)
    ensure_namespace_without_ipv6(lab, inet)
    kernel.ensure_veth(apigw, compiled.FRONT_END_IFNAME,
                       f"{names.MARK}.{lab.name}.{names.APIGW}.{compiled.FRONT_END_IFNAME}",
                       inet, names.INSTANCE_IFNAME,
                       f"{names.MARK}.{lab.name}.{names.INTERNET}.{names.INSTANCE_IFNAME}",
                       ENI_MTU)
    kernel.ensure_address(apigw, compiled.FRONT_END_IFNAME, compiled.FRONT_END_IP,
                          compiled.PREFIXLEN)
    kernel.ensure_address(inet, names.INSTANCE_IFNAME, compiled.INTERNET_CLIENT_IP,
                          compiled.PREFIXLEN)
    kernel.ensure_route(inet, "0.0.0.0/0", gateway=compiled.FRONT_END_IP)
    if compiled.has_private_listener(lab):
        # the execute-api service's one target: its NLB nodes reach it in this namespace
        kernel.ensure_address(apigw, "lo", execute_api.FRONT_END_PRIVATE_IP, 32)


def _certificates(lab: Lab, st: State) -> None:
    ca.make(st.dir, lab.name, "apigw", [f"*.execute-api.{lab.region}.amazonaws.com",
                                        f"execute-api.{lab.region}.amazonaws.com",
                                        # an execute-api endpoint's own names
                                        f"*.execute-api.{lab.region}.vpce.amazonaws.com"])


def _internet_dns(lab: Lab, st: State) -> None:
    rec = st.data["api_gateway"]["internet"]
    with open(rec["hosts"], "w") as f:
        f.write("")
    with open(rec["resolv_conf"], "w") as f:
        f.write(f"# vpclab: the lab's internet resolver\nnameserver {compiled.INTERNET_CLIENT_IP}\n"
                f"options timeout:1 attempts:2\n")
    realise_vpc.start_resolver(
        st, names.INTERNET, rec["netns"], compiled.INTERNET_CLIENT_IP, lab.region, rec["hosts"],
        "the internet",
        (f"--address=/execute-api.{lab.region}.amazonaws.com/{compiled.FRONT_END_IP}",))


def _front_end(lab: Lab, st: State) -> None:
    rec = st.data["api_gateway"]["front_end"]
    config = compiled.frontend_config(lab, st.dir)
    os.makedirs(config["log_dir"], mode=0o755, exist_ok=True)
    with open(rec["config"], "w") as f:
        json.dump(config, f, indent=1)
    argv = [sys.executable, "-m", "dataplane.services.apigw", "--config", rec["config"]]
    pid = processes.start(st, "apigw", names.APIGW, None, st.data["api_gateway"]["netns"],
                          argv, rec["log"], None)
    processes.wait_ready(pid, processes.answers(rec["socket"]), "API Gateway's front end",
                         rec["log"], FRONT_END_READY_S)



def lab_status(lab: Lab, data: dict[str, Any]) -> dict[str, Any]:
    """API Gateway: front end (running, stats), REST links, APIs with invoke URLs."""
    rec = data.get("api_gateway")
    if not rec:
        return {}
    fe = rec["front_end"]
    proc = next((p for p in data.get("processes", []) if p["role"] == "apigw"), None)
    try:
        stats = control_client.call(fe["socket"], "stats", timeout=2)
        stats.pop("ok", None)
    except (control_client.ControlError, OSError):
        stats = None
    hp = data.get("hyperplane") or {}
    endpoints = hp.get("endpoints", {})
    cfg_links = compiled.links(lab)
    links = {}
    for name, link in lab.rest_vpc_links.items():
        ep = endpoints.get(f"{names.APIGW}/{name}")
        state, message = link.state, link.message
        if state == "AVAILABLE" and (ep is None or ep.get("state") != "available"):
            state, message = "FAILED", f"its endpoint is {ep.get('state') if ep else 'missing'}"
        links[name] = {"id": cfg_links[name]["id"], "type": "REST", "version": "V1",
                       "target": link.target, "state": state, "message": message,
                       "endpoint": ep.get("id") if ep else None,
                       "endpoint_service": ep.get("service") if ep else None,
                       # the customer's service admits API Gateway's account only
                       "allowed_principals": [f"arn:aws:iam::{compiled.account_id(SERVICE)}:root"],
                       "enis": [e for e in hp.get("enis", []) if e["vpc"] == names.APIGW
                                and e["owner"] == name]}
    apis = {}
    for name, api in lab.apis.items():
        stage_logs = {s: os.path.join(fe["access_logs"], name, f"{s}.log") for s in api.stages}
        apis[name] = {"id": api_id(lab.name, name), "type": api.type,
                      "stages": list(api.stages),
                      "invoke_urls": {s: invoke_url(lab.name, lab.region, name, s)
                                      for s in api.stages},
                      "routes": {k: r.to_dict() for k, r in api.routes.items()},
                      "throttle": None if api.throttle is None else
                      {"rate": api.throttle.rate, "burst": api.throttle.burst},
                      "access_logs": stage_logs}
    return {"api_gateway": {
        "netns": rec["netns"], "present": kernel.netns_exists(rec["netns"]),
        "internet": {**rec["internet"], "present": kernel.netns_exists(rec["internet"]["netns"])},
        "front_end": {"address": fe["address"], "pid": proc["pid"] if proc else None,
                      "running": bool(proc) and procs.alive(proc["pid"], proc["start"]),
                      "log": fe["log"], "socket": fe["socket"], "stats": stats},
        "ca": rec["ca"], "rest_vpc_links": links, "apis": apis}}
