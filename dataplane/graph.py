"""A lab drawn as a graph: `vpclab graph [-l LAB | FILE] --format mermaid|dot`.

`build(lab)` turns a model (a file's, or a running lab's topology from its state file)
into a `Graph` of nested clusters, nodes and edges; `mermaid(graph)` and `dot(graph)`
write it out. Pure: only the model is read, so a graph needs neither root nor a lab.

What is drawn, and how it is connected:

| cluster / node | inside | edges (solid: traffic goes that way; dashed: owns / is associated with) |
|---|---|---|
| VPC (name, CIDR, `vpc-…` ID; API Gateway's own VPC marked as such) | top level | |
| subnet (CIDR, AZ) | its VPC | |
| instance (its ENI `eni-<name>` and address); an ALB's node likewise | its subnet | |
| Hyperplane ENI (`eni-…` ID, address) | its subnet | owner ⇢ ENI |
| NLB, ALB | its VPC | listener → target group (`TCP 80`, `HTTP 80 default`, `rule 10`); ALB ⇢ its nodes |
| target group (protocol, port) | its VPC | → each target (an instance, or an address node) |
| endpoint service (`vpce-svc-…`) | its VPC | → each of its NLBs |
| interface endpoint (`vpce-…`) | its VPC | → its endpoint service (PrivateLink); ⇢ the private APIs it is associated with |
| VPC link (`vpclink-…`, HTTP or REST) | cluster "API Gateway" | HTTP: ⇢ its ENIs, → each route's target; REST: → its endpoint in API Gateway's VPC |
| API (type, ID; private or regional) | cluster "API Gateway" | → its link, labelled with the route; the internet → each regional API |
| Cloud Map service (`srv-…`) | cluster of its namespace | → each registered instance (`i-…`) |

Node IDs are `n<k>`, clusters `c<k>`, numbered in the order above, so the output of one
file is stable. Labels are quoted and escaped for each format (mermaid: `#quot;`-style
entity codes; dot: backslash escapes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dataplane.model import Lab, names
from dataplane.model.api_gateway import CloudMapTarget, api_id, parse_target
from dataplane.model.cloud_map import instance_address, service_id as cloud_map_service_id
from dataplane.model.execute_api import FRONT_END_PRIVATE_IP, vpc_id
from dataplane.model.privatelink import endpoint_id, service_id
from dataplane.model.vpc_link import vpc_link_id

FORMATS = ("mermaid", "dot")
SOLID, DASHED = "solid", "dashed"


@dataclass
class Cluster:
    id: str
    label: str
    parent: str | None


@dataclass
class Node:
    id: str
    lines: list[str]
    kind: str
    parent: str | None


@dataclass
class Edge:
    src: str
    dst: str
    label: str = ""
    style: str = SOLID


@dataclass
class Graph:
    title: str
    clusters: list[Cluster] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    keys: dict[tuple, str] = field(default_factory=dict)   # resource key → node/cluster ID

    def cluster(self, key: tuple, label: str, parent: str | None = None) -> str:
        cid = f"c{len(self.clusters)}"
        self.clusters.append(Cluster(cid, label, parent))
        self.keys[key] = cid
        return cid

    def node(self, key: tuple, kind: str, lines: list[str], parent: str | None) -> str:
        if key in self.keys:
            return self.keys[key]
        nid = f"n{len(self.nodes)}"
        self.nodes.append(Node(nid, lines, kind, parent))
        self.keys[key] = nid
        return nid

    def edge(self, src: str, dst: str, label: str = "", style: str = SOLID) -> None:
        e = Edge(src, dst, label, style)
        if e not in self.edges:
            self.edges.append(e)

    def children(self, cluster: str) -> list[str]:
        """IDs of the nodes and clusters directly inside `cluster`."""
        return [n.id for n in self.nodes if n.parent == cluster] + \
            [c.id for c in self.clusters if c.parent == cluster]


# -- building -----------------------------------------------------------------------

def build(lab: Lab) -> Graph:
    """The graph of `lab` (module docstring)."""
    g = Graph(f"lab {lab.name} ({lab.region})")
    addresses = lab.addresses()
    enis = lab.hyperplane_enis()
    gateway = g.cluster(("apigw-service",), "API Gateway") \
        if lab.apis or lab.vpc_links or lab.rest_vpc_links else None
    for vpc in lab.vpcs.values():
        what = f"{vpc.service}'s VPC {vpc.name}" if vpc.service else f"VPC {vpc.name}"
        vc = g.cluster(("vpc", vpc.name), f"{what} {vpc.cidr} {vpc_id(lab.name, vpc.name)}")
        for sn in vpc.subnets.values():
            g.cluster(("subnet", vpc.name, sn.name),
                      f"subnet {sn.name} {sn.cidr}" + (f" {sn.az}" if sn.az else ""), vc)
        for inst in vpc.instances.values():
            what = f"node {inst.name} of {inst.managed_by}" if inst.managed_by \
                else f"instance {inst.name}"
            g.node(("instance", vpc.name, inst.name), "instance",
                   [what, f"{inst.eni_ifname(lab.name, vpc.name)} "
                          f"{addresses[(vpc.name, inst.name)]}"],
                   g.keys[("subnet", vpc.name, inst.subnet)])
        for e in (e for e in enis if e.vpc == vpc.name):
            g.node(("eni", e.vpc, e.kind, e.owner, e.subnet), "eni",
                   [f"{e.kind} ENI {e.eni_id}", f"{e.ifname} {e.ip}"],
                   g.keys[("subnet", e.vpc, e.subnet)])
    for vpc in lab.vpcs.values():
        _load_balancers(g, lab, vpc, addresses)
    for vpc in lab.vpcs.values():
        _endpoint_services(g, lab, vpc)
    for vpc in lab.vpcs.values():      # after every service: an endpoint names another VPC's
        _endpoints(g, lab, vpc)
    _cloud_map(g, lab, addresses)
    if gateway is not None:
        _api_gateway(g, lab, gateway)
    for e in enis:
        owner = {"nlb": ("nlb", e.vpc, e.owner), "vpce": ("endpoint", e.vpc, e.owner),
                 "vpclink": ("link", e.owner)}.get(e.kind)
        if owner in g.keys:
            g.edge(g.keys[owner], g.keys[("eni", e.vpc, e.kind, e.owner, e.subnet)],
                   style=DASHED)
    return g


def _owner_note(obj: Any) -> str:
    return f" ({obj.managed_by})" if getattr(obj, "managed_by", None) else ""


def _target(g: Graph, vpc: Any, target: str, port: int,
            addresses: dict[tuple[str, str], str]) -> tuple[str, str]:
    """(node, port label) of one target-group target: an instance's node, or an address."""
    host, _, p = target.partition(":")
    if (vpc.name, host) in addresses:
        return g.keys[("instance", vpc.name, host)], f"{p or port}"
    return g.node(("address", vpc.name, host), "address", [f"address {host}"],
                  g.keys[("vpc", vpc.name)]), f"{p or port}"


def _load_balancers(g: Graph, lab: Lab, vpc: Any, addresses: dict) -> None:
    vc = g.keys[("vpc", vpc.name)]
    for tg in [*vpc.target_groups.values(), *vpc.http_target_groups.values()]:
        algorithm = f" {tg.algorithm}" if hasattr(tg, "algorithm") else ""   # an ALB's
        tid = g.node(("tg", vpc.name, tg.name), "target-group",
                     [f"target group {tg.name}{_owner_note(tg)}",
                      f"{tg.protocol} {tg.port}{algorithm}"], vc)
        for t in tg.targets:
            node, port = _target(g, vpc, t, tg.port, addresses)
            g.edge(tid, node, f"{tg.protocol} {port}")
    for lb in vpc.load_balancers.values():
        nid = g.node(("nlb", vpc.name, lb.name), "load-balancer",
                     [f"NLB {lb.name}{_owner_note(lb)}"], vc)
        for ls in lb.listeners:
            g.edge(nid, g.keys[("tg", vpc.name, ls.target_group)], f"{ls.protocol} {ls.port}")
    for alb in vpc.albs.values():
        nid = g.node(("alb", vpc.name, alb.name), "load-balancer", [f"ALB {alb.name}"], vc)
        g.keys[("nlb", vpc.name, alb.name)] = nid        # a route's `VPC/LB:PORT` finds either
        for node in alb.nodes():
            g.edge(nid, g.keys[("instance", vpc.name, node)], style=DASHED)
        for ls in alb.listeners:
            for group in ls.default.forward:
                g.edge(nid, g.keys[("tg", vpc.name, group)], f"{ls.protocol} {ls.port} default")
            for rule in ls.rules:
                for group in rule.action.forward:
                    g.edge(nid, g.keys[("tg", vpc.name, group)],
                           f"{ls.protocol} {ls.port} rule {rule.priority}")


def _endpoint_services(g: Graph, lab: Lab, vpc: Any) -> None:
    vc = g.keys[("vpc", vpc.name)]
    for es in vpc.endpoint_services.values():
        sid = g.node(("service", vpc.name, es.name), "endpoint-service",
                     [f"endpoint service {es.name}{_owner_note(es)}",
                      service_id(lab.name, vpc.name, es.name)], vc)
        for lb in es.load_balancers:
            g.edge(sid, g.keys[("nlb", vpc.name, lb)])


def _endpoints(g: Graph, lab: Lab, vpc: Any) -> None:
    vc = g.keys[("vpc", vpc.name)]
    for ep in vpc.endpoints.values():
        g.node(("endpoint", vpc.name, ep.name), "endpoint",
               [f"endpoint {ep.name}{_owner_note(ep)}", endpoint_id(lab.name, vpc.name, ep.name)],
               vc)
    for ep in vpc.endpoints.values():
        target = g.keys.get(("service", *ep.service_ref))
        if target is not None:
            g.edge(g.keys[("endpoint", vpc.name, ep.name)], target, "PrivateLink")


def _api_gateway(g: Graph, lab: Lab, gateway: str) -> None:
    for name, link in lab.vpc_links.items():
        g.node(("link", name), "vpc-link",
               [f"VPC link {name} (HTTP)", vpc_link_id(lab.name, name)], gateway)
    for name, link in lab.rest_vpc_links.items():
        lid = g.node(("link", name), "vpc-link",
                     [f"VPC link {name} (REST) to {link.target}", link.state], gateway)
        ep = g.keys.get(("endpoint", names.APIGW, name))
        vname, lb = link.target_ref
        g.edge(lid, ep if ep is not None else g.keys[("nlb", vname, lb)], "PrivateLink")
    internet = None
    for name, api in lab.apis.items():
        aid = g.node(("api", name), "api",
                     [f"API {name} ({api.type}, {api.endpoint})", api_id(lab.name, name),
                      "stages " + ", ".join(api.stages)], gateway)
        if api.endpoint == "PRIVATE":
            for ref in api.vpc_endpoints:
                vname, _, ep = ref.partition("/")
                g.edge(g.keys[("endpoint", vname, ep)], aid, "associated", DASHED)
            front_end = g.keys.get(("address", names.APIGW, FRONT_END_PRIVATE_IP))
            if front_end is not None:     # where the execute-api service's NLB sends
                g.edge(front_end, aid, "front end")
        else:
            internet = internet or g.node(("internet",), "internet",
                                          ["the internet (API clients)"], None)
            g.edge(internet, aid, "HTTPS")
        for key, route in api.routes.items():
            lid = g.keys[("link", route.vpc_link)]
            g.edge(aid, lid, key)
            if route.target is None:
                continue
            target = parse_target(route.target)
            if isinstance(target, CloudMapTarget):
                g.edge(lid, g.keys[("cloudmap", target.namespace, target.service)],
                       str(target))
            else:
                g.edge(lid, g.keys[("nlb", target.vpc, target.load_balancer)],
                       f"port {target.port}")


def _cloud_map(g: Graph, lab: Lab, addresses: dict) -> None:
    for ns in lab.cloud_map_namespaces.values():
        g.cluster(("cloudmap-ns", ns.name), f"Cloud Map namespace {ns.name} ({ns.type}"
                  + (f", VPC {ns.vpc})" if ns.vpc else ")"))
    for svc in lab.cloud_map_services.values():
        sid = g.node(("cloudmap", svc.namespace, svc.name), "cloud-map",
                     [f"Cloud Map service {svc.name}",
                      cloud_map_service_id(lab.name, svc.namespace, svc.name)],
                     g.keys[("cloudmap-ns", svc.namespace)])
        for inst in svc.instances:
            if inst.instance:
                vname, _, iname = inst.instance.partition("/")
                dst = g.keys[("instance", vname, iname)]
            else:
                dst = g.node(("address", "cloudmap", inst.ip), "address",
                             [f"address {inst.ip}"], None)
            port = f":{inst.port}" if inst.port else ""
            g.edge(sid, dst, f"{inst.id} {instance_address(lab, inst, addresses)}{port}")


# -- writing ------------------------------------------------------------------------

# (fill, stroke) of each kind of node, in both formats
COLOURS = {
    "instance": ("#eef5ff", "#3b73b9"),
    "eni": ("#fff4e0", "#d08a00"),
    "load-balancer": ("#e9f7ef", "#2e8b57"),
    "target-group": ("#f3fbf6", "#2e8b57"),
    "endpoint-service": ("#f5ecff", "#7a4cc2"),
    "endpoint": ("#f5ecff", "#7a4cc2"),
    "vpc-link": ("#ffeef0", "#c2405a"),
    "api": ("#ffeef0", "#c2405a"),
    "cloud-map": ("#eefaf9", "#1f8a86"),
    "address": ("#ffffff", "#888888"),
    "internet": ("#ffffff", "#444444"),
}


def _mermaid_text(text: str) -> str:
    """Text inside a mermaid quoted label: entity codes for what the parser reads."""
    out = text.replace("#", "#35;").replace('"', "#quot;")
    return out.replace("<", "#lt;").replace(">", "#gt;")


def mermaid(g: Graph) -> str:
    """The graph as a mermaid flowchart (GitHub renders a ```mermaid block)."""
    out = ["flowchart LR", f"  %% {g.title}: vpclab graph"]

    def emit(parent: str | None, indent: str) -> None:
        for n in g.nodes:
            if n.parent == parent:
                label = "<br/>".join(_mermaid_text(line) for line in n.lines)
                out.append(f'{indent}{n.id}["{label}"]')
        for c in g.clusters:
            if c.parent == parent:
                out.append(f'{indent}subgraph {c.id}["{_mermaid_text(c.label)}"]')
                emit(c.id, indent + "  ")
                out.append(f"{indent}end")
    emit(None, "  ")
    for e in g.edges:
        arrow = "-->" if e.style == SOLID else "-.->"
        label = f'|"{_mermaid_text(e.label)}"|' if e.label else ""
        out.append(f"  {e.src} {arrow}{label} {e.dst}")
    for kind, (fill, stroke) in COLOURS.items():
        ids = [n.id for n in g.nodes if n.kind == kind]
        if ids:
            name = kind.replace("-", "_")
            out.append(f"  classDef {name} fill:{fill},stroke:{stroke}")
            out.append(f"  class {','.join(ids)} {name}")
    return "\n".join(out) + "\n"


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def dot(g: Graph) -> str:
    """The graph in Graphviz's dot language (`dot -Tsvg`)."""
    out = [f'digraph "{_dot_text(g.title)}" {{', "  rankdir=LR;", "  compound=true;",
           '  node [shape=box, style="rounded,filled", fillcolor=white, fontname=Helvetica];',
           "  edge [fontname=Helvetica, fontsize=10];",
           f'  label="{_dot_text(g.title)}"; labelloc=t;']

    def emit(parent: str | None, indent: str) -> None:
        for n in g.nodes:
            if n.parent == parent:
                label = "\\n".join(_dot_text(line) for line in n.lines)
                fill, stroke = COLOURS[n.kind]
                out.append(f'{indent}{n.id} [label="{label}", fillcolor="{fill}", '
                           f'color="{stroke}"];')
        for c in g.clusters:
            if c.parent == parent:
                out.append(f"{indent}subgraph cluster_{c.id} {{")
                out.append(f'{indent}  label="{_dot_text(c.label)}";')
                if not g.children(c.id):      # Graphviz leaves out an empty cluster
                    out.append(f'{indent}  {c.id} [label="", shape=none, width=0, height=0];')
                emit(c.id, indent + "  ")
                out.append(f"{indent}}}")
    emit(None, "  ")
    for e in g.edges:
        attrs = [f'label="{_dot_text(e.label)}"'] if e.label else []
        if e.style == DASHED:
            attrs.append("style=dashed")
        out.append(f"  {e.src} -> {e.dst}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    out.append("}")
    return "\n".join(out) + "\n"


def render(lab: Lab, fmt: str) -> str:
    """`lab` drawn in `fmt` ("mermaid" or "dot")."""
    g = build(lab)
    return mermaid(g) if fmt == "mermaid" else dot(g)
