"""`vpclab validate --plan/--json/--name` (cli/validate.py, lab/preview.py): the plan
names what the model and `up`'s own record say, makes nothing, needs no root; `--json`
keeps its documented shape; `--name` renames everything a lab makes."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from dataplane.lab import blueprint
from dataplane.lab.preview import preview
from dataplane.model import load, names

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
CLI = [sys.executable, "-m", "dataplane.cli.main"]
COUNT_KEYS = ["vpcs", "subnets", "instances", "nlbs", "albs", "endpoint_services",
              "endpoints", "vpc_links", "apis", "cloud_map_services"]
PLAN_KEYS = ["lab", "region", "state_dir", "cgroup", "namespaces", "interfaces", "enis",
             "dns", "services", "processes", "steps"]


def unprivileged() -> list[str]:
    """A prefix that runs a command as nobody when the tests run as root (CI), so the
    plan is shown to need no privilege; nothing when they already run unprivileged."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop root"
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def cli(*args: str, env: dict | None = None, as_nobody: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run((unprivileged() if as_nobody else []) + CLI + list(args), cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})))


def netns_list() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_plan_creates_nothing_and_needs_no_root(path, tmp_path) -> None:
    run_dir = tmp_path / "run"          # where a lab's state would go: must stay absent
    proc = cli("validate", str(path), "--plan", "--json", "--name", "tplx",
               env={"VPCLAB_RUN_DIR": str(run_dir)}, as_nobody=True)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["lab"] == "tplx" and list(doc["plan"]) == PLAN_KEYS
    assert not run_dir.exists()
    # other labs may come and go meanwhile (other tests); none of this one's exists
    assert not set(doc["plan"]["namespaces"]) & netns_list()
    assert not [n for n in netns_list() if n.startswith("tplx.")]
    assert doc["plan"]["state_dir"] == str(run_dir / "tplx")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_plan_names_the_models_namespaces_and_addresses(path) -> None:
    lab = load(path)
    plan = preview(lab)
    assert plan["namespaces"] == blueprint.namespaces(lab)
    for vpc in lab.vpcs.values():
        assert names.vpc_netns(lab.name, vpc.name) in plan["namespaces"]
        for inst in vpc.instances.values():
            assert names.instance_netns(lab.name, vpc.name, inst.name) in plan["namespaces"]
    addresses = lab.addresses()
    instance_enis = {(e["vpc"], e["owner"] if e["kind"] == "instance" else None): e["ip"]
                     for e in plan["enis"] if e["eni_id"] is None}
    for (vpc, inst), ip in addresses.items():
        if lab.vpcs[vpc].instances[inst].managed_by is None:
            assert instance_enis[(vpc, inst)] == ip
    hyperplane = [(e["eni_id"], e["ip"], e["ifname"]) for e in plan["enis"] if e["eni_id"]]
    assert hyperplane == [(e.eni_id, e.ip, e.ifname) for e in lab.hyperplane_enis()]
    # the interfaces table shows each Hyperplane ENI in its VPC's namespace
    rows = {(r["netns"], r["ifname"], r["address"]) for r in plan["interfaces"]}
    assert {(names.vpc_netns(lab.name, e.vpc), e.ifname, e.ip)
            for e in lab.hyperplane_enis()} <= rows
    # DNS: every user instance by name in its own VPC's resolver
    for (vpc, inst), ip in addresses.items():
        if lab.vpcs[vpc].instances[inst].managed_by is None:
            assert {"name": inst, "address": ip} in plan["dns"][vpc]
    roles = [p["role"] for p in plan["processes"]]
    assert roles.count("dns") >= len(lab.vpcs) and roles[-1] == "supervisor"
    assert ("forwarder" in roles) == bool(lab.hyperplane_enis())
    assert plan["steps"][-1].startswith("supervisor")


def test_plan_shows_the_forwarders_services() -> None:
    plan = preview(load(REPO / "examples" / "privatelink.yaml"))
    lab = load(REPO / "examples" / "privatelink.yaml")
    ep = [e for e in lab.hyperplane_enis() if e.kind == "vpce"]
    services = {s["in"]: s for s in plan["services"] if not s["name"].startswith("health:")}
    assert set(services) == {e.eni_id for e in ep}
    for e in ep:
        s = services[e.eni_id]
        assert s["listener"] == f"{e.ip}:80/tcp"
        assert sorted(s["backends"]) == ["10.0.1.4:8080", "10.0.2.4:8080"]
    dns = {d["name"] for d in plan["dns"]["consumer"]}
    assert "web.provider.internal" in dns


def test_plan_as_text() -> None:
    proc = cli("validate", "examples/privatelink.yaml", "--plan")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("OK: lab pl: 2 VPCs")
    for heading in ("namespaces (7):", "interfaces:", "ENIs:", "DNS names", "forwarder services:",
                    "processes:", "steps of `up` (21):"):
        assert heading in out
    assert "pl.hyperplane" in out and "web.provider.internal" in out and "10.0.1.4:8080" in out


def test_validate_json_shape_when_ok() -> None:
    proc = cli("validate", "examples/article.yaml", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert list(doc) == ["version", "ok", "file", "lab", "counts", "problems"]
    assert doc["ok"] is True and doc["problems"] == [] and doc["lab"] == "article"
    assert list(doc["counts"]) == COUNT_KEYS
    assert doc["counts"]["vpcs"] == 3 and doc["counts"]["apis"] == 2
    assert doc["counts"]["vpc_links"] == 2 and doc["counts"]["albs"] == 1


def test_validate_json_shape_with_problems(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("lab: x\nvpcs:\n  a: {cidr: 10.0.0.0/33}\n  b: {cidr: 10.0.0.0/16, nope: 1}\n")
    proc = cli("validate", str(bad), "--json")
    assert proc.returncode == 2 and proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["counts"] is None and doc["lab"] is None
    assert all(list(p) == ["path", "message"] for p in doc["problems"])
    paths = [p["path"] for p in doc["problems"]]
    assert "vpcs.a.cidr" in paths and any(p.startswith("vpcs.b") for p in paths)
    proc = cli("validate", str(tmp_path / "missing.yaml"), "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 2 and doc["problems"][0]["path"] == ""
    assert "No such file" in doc["problems"][0]["message"]


def test_name_renames_every_kernel_object_and_id() -> None:
    path = REPO / "examples" / "privatelink.yaml"
    first, second = preview(load(path)), preview(load(path, name="tpl2"))
    assert second["lab"] == "tpl2" and second["cgroup"] == "vpclab.tpl2"
    assert all(ns.startswith("tpl2.") for ns in second["namespaces"])
    assert [ns.split(".", 1)[1] for ns in second["namespaces"]] == \
        [ns.split(".", 1)[1] for ns in first["namespaces"]]
    assert not set(first["namespaces"]) & set(second["namespaces"])
    # the same addresses (they are the file's), other IDs (they are the lab's)
    assert [e["ip"] for e in first["enis"]] == [e["ip"] for e in second["enis"]]
    ids = [e["eni_id"] for e in second["enis"] if e["eni_id"]]
    assert ids and not set(ids) & {e["eni_id"] for e in first["enis"]}
    assert second["state_dir"].endswith("/tpl2")


def test_a_bad_name_is_named_as_the_option() -> None:
    proc = cli("validate", "examples/demo.yaml", "--name", "Not-A-Name")
    assert proc.returncode == 2
    assert "--name: 'Not-A-Name' is not valid" in proc.stderr
    proc = cli("validate", "examples/demo.yaml", "--name", "waytoolongname1")
    assert proc.returncode == 2 and "--name:" in proc.stderr


def test_plan_and_graph_run_without_the_compiled_engine() -> None:
    from test_layering import run_without_engine
    proc = run_without_engine("validate", "examples/article.yaml", "--plan", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["plan"]["services"]
    proc = run_without_engine("graph", "examples/article.yaml")
    assert proc.returncode == 0 and proc.stdout.startswith("flowchart LR"), proc.stderr


def test_the_address_plan_is_walked_once_per_reading_of_the_whole_lab(monkeypatch) -> None:
    """`plan`, `validate --plan` and `up` read the address plan once per VPC and per
    resource; inside `lab.unchanged()` each walk is made once (it was made hundreds of
    times for a 100-VPC lab: seconds)."""
    from dataplane.lab.plan import plan
    from dataplane.model import topology

    lab = load(REPO / "examples" / "privatelink.yaml")
    walks = {"addresses": 0, "hyperplane_enis": 0}
    real_addresses, real_enis = topology.Lab._addresses, topology.hyperplane_enis

    def counted_addresses(self):
        walks["addresses"] += 1
        return real_addresses(self)

    def counted_enis(lab_):
        walks["hyperplane_enis"] += 1
        return real_enis(lab_)
    monkeypatch.setattr(topology.Lab, "_addresses", counted_addresses)
    monkeypatch.setattr(topology, "hyperplane_enis", counted_enis)
    outside = plan(lab)
    assert walks == {"addresses": 1, "hyperplane_enis": 1}
    walks.update(addresses=0, hyperplane_enis=0)
    preview(lab)
    assert walks == {"addresses": 1, "hyperplane_enis": 1}
    assert lab._derived is None                  # nothing kept once the reading ends
    with lab.unchanged():
        first = lab.addresses()
        first[("consumer", "client")] = "192.0.2.1"     # a caller's copy, not the plan
        assert lab.addresses()[("consumer", "client")] != "192.0.2.1"
        with lab.unchanged():                           # nested: the same walk
            assert plan(lab) == outside
    assert walks["addresses"] == 2


def test_a_change_after_a_reading_is_seen() -> None:
    lab = load(REPO / "examples" / "privatelink.yaml")
    with lab.unchanged():
        before = lab.addresses()
    lab.vpcs["consumer"].add_instance("late", "app-a")
    assert lab.addresses() == {**before, ("consumer", "late"): "10.0.1.5"}
    assert ("consumer", "late") not in before
