"""HTTP-API VPC links' part of `up` and `status`: API Gateway's VPC and each link's
routing domain with its attachment to the forwarder (compile/vpc_link.py says what they
are and how a program picks a link). The link ENIs in the customer subnets are
Hyperplane ENIs like PrivateLink's, made by lab/hyperplane.py before these steps.

A link is AVAILABLE when its routing domain, its attachment and every one of its ENIs
exist (its ENIs are provisioned, as AWS puts it); otherwise `status` says FAILED and
names what is missing.
"""
from __future__ import annotations

from typing import Any

from netns_setup import kernel, offload

from dataplane.compile import vpc_link as compiled
from dataplane.forwarder.frames import MAX_FRAME
from dataplane.model import Lab, names
from dataplane.model.vpc_link import ENI_KIND, vpc_link_id

from .hyperplane import ensure_namespace_without_ipv6
from .plan import ENI_MTU
from .progress import Step

def namespaces(lab: Lab) -> list[str]:
    """API Gateway's VPC and one namespace per link (recorded before anything is made)."""
    if not lab.vpc_links:
        return []
    return [names.apigw_netns(lab.name)] + [names.vpc_link_netns(lab.name, n)
                                            for n in lab.vpc_links]


def steps(build: Any) -> list[Step]:
    """Run after the Hyperplane's ENIs, before the forwarder starts (`build` is
    lab/hyperplane.py's `Build`: it collects the attachments' MACs and interfaces)."""
    lab = build.lab
    if not lab.vpc_links:
        return []
    apigw = names.apigw_netns(lab.name)
    out = [Step(f"API Gateway's VPC: namespace {apigw} ({compiled.API_GATEWAY_CIDR})",
                lambda: ensure_namespace_without_ipv6(lab, apigw))]
    for name, port in compiled.attachment_ports(lab, build.ports).items():
        link = lab.vpc_links[name]
        out.append(Step(f"VPC link {name} {vpc_link_id(lab.name, name)} into {link.vpc}: "
                        f"namespace {names.vpc_link_netns(lab.name, name)}, "
                        f"{compiled.ATTACHMENT_IFNAME} ⇄ hp{port}",
                        lambda name=name, port=port: _attachment(build, name, port)))
    return out


def _attachment(build: Any, name: str, port: int) -> None:
    lab, hp_ns = build.lab, build.hp_ns
    ns, hp_ifname = names.vpc_link_netns(lab.name, name), f"hp{port}"
    ensure_namespace_without_ipv6(lab, ns)
    kernel.ensure_veth(ns, compiled.ATTACHMENT_IFNAME,
                       f"{names.MARK}.{lab.name}.{names.APIGW}.{name}.{compiled.ATTACHMENT_IFNAME}",
                       hp_ns, hp_ifname, f"{names.MARK}.{lab.name}.{names.HYPERPLANE}.{hp_ifname}",
                       ENI_MTU)
    kernel.ensure_address(ns, compiled.ATTACHMENT_IFNAME, compiled.ATTACHMENT_IP,
                          compiled.ATTACHMENT_PREFIXLEN)
    kernel.ensure_route(ns, str(lab.vpcs[lab.vpc_links[name].vpc].network),
                        gateway=compiled.GATEWAY_IP)
    # It transmits into the forwarder, GSO frames included (netns_setup/offload.py).
    offload.cap_gso_size(compiled.ATTACHMENT_IFNAME, ns, MAX_FRAME)
    build.macs[port] = (kernel.link_mac(hp_ns, hp_ifname),
                        kernel.link_mac(ns, compiled.ATTACHMENT_IFNAME))
    build.port_ifnames.append(hp_ifname)


def state(lab: Lab) -> dict[str, Any]:
    """What this kind keeps in the state's `hyperplane` record: API Gateway's VPC and,
    per link, its ID, namespace and definition (ports are filled in by `up`)."""
    if not lab.vpc_links:
        return {}
    return {"api_gateway": {"netns": names.apigw_netns(lab.name), "cidr": compiled.API_GATEWAY_CIDR,
                            "vpc_links": {n: {"id": vpc_link_id(lab.name, n),
                                              "netns": names.vpc_link_netns(lab.name, n)}
                                          for n in lab.vpc_links}}}


def status(lab: Lab, hp: dict[str, Any], health: dict | None) -> dict[str, Any]:
    """API Gateway's VPC and each link: ID, state, VPC, subnets, groups, ENIs."""
    if not lab.vpc_links:
        return {}
    apigw = hp["api_gateway"]
    links = {}
    for name, link in lab.vpc_links.items():
        rec = apigw["vpc_links"][name]
        enis = [x for x in hp["enis"] if x["kind"] == ENI_KIND and x["owner"] == name]
        missing = [] if kernel.netns_exists(rec["netns"]) else [f"namespace {rec['netns']}"]
        vpc_ns = names.vpc_netns(lab.name, link.vpc)
        missing += [f"ENI {x['eni_id']} ({x['ifname']} in {vpc_ns})" for x in enis
                    if not kernel.link_exists(vpc_ns, x["ifname"])]
        links[name] = {"id": rec["id"], "state": "FAILED" if missing else "AVAILABLE",
                       "message": f"missing: {', '.join(missing)}" if missing else None,
                       "version": "V2", "vpc": link.vpc, "subnets": list(link.subnets),
                       "security_groups": link.effective_security_groups,
                       "netns": rec["netns"], "enis": enis}
    return {"api_gateway": {"netns": apigw["netns"], "cidr": apigw["cidr"],
                            "present": kernel.netns_exists(apigw["netns"]), "vpc_links": links}}
