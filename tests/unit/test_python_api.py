"""`dataplane.Lab` without root: loading and renaming, the same object from a file, a
document and the builder, `ready:` in the model with its errors, and the run-time
methods refusing clearly when there is no lab to act on."""
from __future__ import annotations

import pathlib

import pytest

import dataplane
from dataplane import Lab, LabError, TopologyError
from dataplane import model

REPO = pathlib.Path(__file__).resolve().parents[2]

DOC = {"lab": "tpyu", "vpcs": {"v": {"cidr": "10.0.0.0/16",
                                     "subnets": {"a": {"cidr": "10.0.1.0/24"}},
                                     "instances": {"web": {"subnet": "a", "run": "serve",
                                                           "ready": {"tcp": 8080}}}}}}


def problems(ready: dict, run: str | None = "serve") -> list[str]:
    inst = {"subnet": "a", "ready": ready, **({"run": run} if run else {})}
    doc = {**DOC, "vpcs": {"v": {**DOC["vpcs"]["v"], "instances": {"web": inst}}}}
    with pytest.raises(TopologyError) as err:
        Lab.from_document(doc)
    return [str(p) for p in err.value.problems]


def test_the_public_lab_is_the_builder_with_run_time_methods():
    assert dataplane.Lab is Lab and issubclass(Lab, model.Lab)
    built = Lab("tpyu")
    v = built.add_vpc("v", "10.0.0.0/16")
    v.add_subnet("a", "10.0.1.0/24")
    v.add_instance("web", "a", run="serve", ready={"tcp": 8080})
    assert built == Lab.from_document(DOC)
    assert built.to_dict()["vpcs"]["v"]["instances"]["web"]["ready"] == {"tcp": 8080}


def test_from_file_checks_and_renames():
    lab = Lab.from_file(REPO / "examples" / "privatelink.yaml", name="tpyren")
    assert isinstance(lab, Lab) and lab.name == "tpyren"
    assert lab.to_dict()["vpcs"] == model.load(REPO / "examples" / "privatelink.yaml").to_dict()["vpcs"]
    with pytest.raises(TopologyError, match="lab"):
        Lab.from_file(REPO / "examples" / "privatelink.yaml", name="Not A Name!")


def test_ready_errors_name_the_field():
    assert problems({"tcp": 70000}) == ["vpcs.v.instances.web.ready.tcp: 70000 is out of range (1..65535)"]
    assert problems({"tcp": 80}, run=None) == [
        "vpcs.v.instances.web.ready: ready: says when a `run:` command is ready, and this "
        "instance has no run:"]
    assert problems({"tcp": 80, "http": "/h"}) == [
        "vpcs.v.instances.web.ready: give exactly one check: tcp: PORT or http: /PATH "
        "(got tcp and http)"]
    assert problems({}) == ["vpcs.v.instances.web.ready: give exactly one check: tcp: PORT "
                            "or http: /PATH (got neither)"]
    assert problems({"http": "health"})[0].startswith("vpcs.v.instances.web.ready.http: 'health' is not valid")
    assert problems({"tcp": 80, "port": 81}) == [
        "vpcs.v.instances.web.ready.port: port: goes with http: (tcp: is itself the port)"]
    assert problems({"http": "/h", "timeout": 0}) == [
        "vpcs.v.instances.web.ready.timeout: 0 must be more than 0"]
    assert problems({"http": "/h", "wait": 3})[0].startswith(
        "vpcs.v.instances.web.ready.wait: unknown key")


def test_run_time_methods_refuse_a_lab_that_is_not_up():
    lab = Lab.from_document(DOC, name="tpynotup")
    with pytest.raises(LabError, match="lab tpynotup is not up"):
        lab.exec("v/web", "true")
    with pytest.raises(LabError, match="lab tpynotup is not up"):
        lab.flows()
    assert lab.down() == []          # nothing of it exists: nothing to do
