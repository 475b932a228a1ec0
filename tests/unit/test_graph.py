"""`vpclab graph` (dataplane/graph.py): every example renders in both formats, the
mermaid is well-formed by its structure, Graphviz's `dot` accepts the dot, every resource
of the model is named, and the connections are the lab's."""
from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

from dataplane import graph
from dataplane.model import load, loads
from dataplane.model.privatelink import endpoint_id

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
CLI = [sys.executable, "-m", "dataplane.cli.main"]

ID = r"[nc][0-9]+"
QUOTED = r'"[^"]*"'
MERMAID_LINE = [re.compile(p) for p in (
    rf"^subgraph {ID}\[{QUOTED}\]$",
    r"^end$",
    rf"^{ID}\[{QUOTED}\]$",
    rf"^{ID} (-->|-\.->)(\|{QUOTED}\|)? {ID}$",
    r"^classDef [a-z_]+ fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6}$",
    rf"^class {ID}(,{ID})* [a-z_]+$",
    r"^%% .*$",
)]


def check_mermaid(text: str) -> None:
    """A mermaid flowchart as graph.mermaid writes it: a header, then only the statement
    forms it uses; subgraphs balanced; every ID defined once before an edge uses it;
    no raw quote or entity-less '#' inside a label."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    depth, defined = 0, set()
    for line in lines[1:]:
        s = line.strip()
        assert any(p.match(s) for p in MERMAID_LINE), f"not a statement graph writes: {s!r}"
        if s.startswith("subgraph "):
            depth += 1
        elif s == "end":
            depth -= 1
            assert depth >= 0, "an `end` without its subgraph"
        m = re.match(rf"^(?:subgraph )?({ID})\[", s)
        if m:
            assert m.group(1) not in defined, f"{m.group(1)} defined twice"
            defined.add(m.group(1))
        edge = re.match(rf"^({ID}) -\.?->(?:\|{QUOTED}\|)? ({ID})$", s)
        if edge:
            assert {edge.group(1), edge.group(2)} <= defined, f"edge to an undefined node: {s}"
        for label in re.findall(QUOTED, s):
            assert re.search(r"#(?![0-9]+;|quot;|lt;|gt;)", label) is None, label
    assert depth == 0, "a subgraph is not closed"


def resource_names(lab) -> list[str]:
    """Every resource of the model, by the name or ID the graph must show."""
    names = []
    for v in lab.vpcs.values():
        names.append(f"VPC {v.name}")
        names += [f"subnet {s}" for s in v.subnets]
        names += [i for i in v.instances]
        names += [f"NLB {n}" for n in v.load_balancers] + [f"ALB {n}" for n in v.albs]
        names += [f"target group {n}" for n in list(v.target_groups) + list(v.http_target_groups)]
        names += [f"endpoint service {n}" for n in v.endpoint_services]
        names += [f"endpoint {n}" for n in v.endpoints]
        names += [endpoint_id(lab.name, v.name, n) for n in v.endpoints]
    names += [e.eni_id for e in lab.hyperplane_enis()] + [e.ip for e in lab.hyperplane_enis()]
    names += [ip for ip in lab.addresses().values()]
    names += [f"VPC link {n}" for n in list(lab.vpc_links) + list(lab.rest_vpc_links)]
    names += [f"API {n}" for n in lab.apis]
    names += [key for api in lab.apis.values() for key in api.routes]
    names += [f"Cloud Map namespace {n}" for n in lab.cloud_map_namespaces]
    names += [f"Cloud Map service {n}" for n in lab.cloud_map_services]
    names += [i.id for s in lab.cloud_map_services.values() for i in s.instances]
    return names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_renders_well_formed_mermaid_naming_every_resource(path) -> None:
    lab = load(path)
    text = graph.render(lab, "mermaid")
    check_mermaid(text)
    missing = [n for n in resource_names(lab) if n not in text]
    assert missing == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_graphviz_draws_every_example(path, tmp_path) -> None:
    lab = load(path)
    text = graph.render(lab, "dot")
    proc = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and "<svg" in proc.stdout
    missing = [n for n in resource_names(lab) if n not in text]
    assert missing == []
    # every node and cluster made it into the drawing
    g = graph.build(lab)
    empty = [c for c in g.clusters if not g.children(c.id)]     # each holds a blank node
    assert proc.stdout.count('class="node"') == len(g.nodes) + len(empty)
    assert proc.stdout.count('class="cluster"') == len(g.clusters)


def edges_by_label(g: graph.Graph) -> set[tuple[str, str, str]]:
    first = {n.id: n.lines[0] for n in g.nodes}
    return {(first[e.src], first[e.dst], e.label) for e in g.edges}


def test_privatelink_is_drawn_endpoint_to_service_to_nlb_to_targets() -> None:
    g = graph.build(load(REPO / "examples" / "privatelink.yaml"))
    edges = edges_by_label(g)
    assert ("endpoint web-ep", "endpoint service web-svc", "PrivateLink") in edges
    assert ("endpoint service web-svc", "NLB web-nlb", "") in edges
    assert ("NLB web-nlb", "target group web-tg", "TCP 80") in edges
    assert {("target group web-tg", f"instance {i}", "TCP 8080") for i in ("web1", "web2")} <= edges
    # each ENI is its owner's (dashed) and sits in its subnet's cluster
    owned = [(e.src, e.dst) for e in g.edges if e.style == graph.DASHED]
    enis = [n for n in g.nodes if n.kind == "eni"]
    assert len(enis) == 4 and all(any(dst == n.id for _, dst in owned) for n in enis)
    subnets = {c.id: c.label for c in g.clusters}
    assert all(subnets[n.parent].startswith("subnet ") for n in enis)


def test_apis_routes_lead_through_their_links_to_their_targets() -> None:
    edges = edges_by_label(graph.build(load(REPO / "examples" / "article.yaml")))
    assert ("API catalog (HTTP, REGIONAL)", "VPC link shop-link (HTTP)", "ANY /web/{proxy+}") in edges
    assert ("VPC link shop-link (HTTP)", "ALB web-alb", "port 80") in edges
    assert ("VPC link shop-link (HTTP)", "Cloud Map service inventory",
            "cloudmap:shop.local/inventory") in edges
    assert ("Cloud Map service inventory", "instance inv1", "i-blue 10.1.1.6:8080") in edges
    assert ("API orders (REST, PRIVATE)", "VPC link orders-link (REST) to shop/orders-nlb",
            "ANY /orders/{proxy+}") in edges
    assert ("endpoint api-ep", "API orders (REST, PRIVATE)", "associated") in edges
    assert ("the internet (API clients)", "API catalog (HTTP, REGIONAL)", "HTTPS") in edges
    assert ("ALB web-alb", "target group web-tg", "HTTP 80 default") in edges


def test_labels_are_escaped_for_each_format() -> None:
    g = graph.Graph('a "quoted" #lab <x>')
    a = g.node(("a",), "instance", ['say "hi" #1 <b>', "back\\slash"], None)
    b = g.node(("b",), "api", ["b"], g.cluster(("c",), 'cluster "c"'))
    g.edge(a, b, 'GET /x?"y"#z')
    text = graph.mermaid(g)
    check_mermaid(text)
    assert 'say #quot;hi#quot; #35;1 #lt;b#gt;' in text
    dot = graph.dot(g)
    assert 'label="say \\"hi\\" #1 <b>\\nback\\\\slash"' in dot
    proc = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_a_graph_is_the_same_every_time_and_follows_the_name() -> None:
    text = (REPO / "examples" / "vpc-link.yaml").read_text()
    assert graph.render(loads(text), "mermaid") == graph.render(loads(text), "mermaid")
    other = graph.render(loads(text, name="tpl9"), "mermaid")
    assert "lab tpl9" in other and other != graph.render(loads(text), "mermaid")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_the_graph_verb(tmp_path) -> None:
    proc = cli("graph", "examples/demo.yaml")
    assert proc.returncode == 0, proc.stderr
    check_mermaid(proc.stdout)
    out = tmp_path / "demo.dot"
    proc = cli("graph", "examples/demo.yaml", "--format", "dot", "-o", str(out))
    assert proc.returncode == 0 and proc.stdout == ""
    assert out.read_text().startswith('digraph "lab demo')
    proc = cli("graph", "examples/demo.yaml", "-l", "demo")
    assert proc.returncode == 2 and "not both" in proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("lab: x\nvpcs: {a: {cidr: 10.0.0.0/33}}\n")
    proc = cli("graph", str(bad))
    assert proc.returncode == 2 and "vpcs.a.cidr" in proc.stderr
    proc = cli("graph", "examples/demo.yaml", "--format", "svg")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
