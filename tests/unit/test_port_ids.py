"""Forwarder port ids (compile/hyperplane.py `allocate_port_ids`): given once and kept,
so that a port added to or removed from a running lab renumbers no other (no root)."""
from __future__ import annotations

import copy
import pathlib

import pytest

from dataplane.compile import hyperplane
from dataplane.compile.privatelink import endpoint_states, health_port_id
from dataplane.compile.vpc_link import attachment_ports
from dataplane.model import Lab, load
from dataplane.model.constants import MAX_FORWARDER_PORTS

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def test_a_new_lab_numbers_enis_then_health_then_attachments() -> None:
    lab = load(str(EXAMPLES / "vpc-link.yaml"))
    ports = hyperplane.ports(lab)
    n = len(lab.hyperplane_enis())
    assert [p.id for p in ports] == list(range(n))
    assert [p.hp_ifname for p in ports] == [f"hp{i}" for i in range(n)]
    assert health_port_id(ports) == n
    assert sorted(attachment_ports(lab, ports).values()) == list(range(n + 1, n + 1 + len(lab.vpc_links)))


def test_kept_ids_stay_new_keys_take_ids_nobody_held() -> None:
    previous = {"eni-a": 0, "eni-b": 1, "health": 2, "eni-c": 3}
    # eni-b goes, eni-d and eni-e come: 1 was eni-b's and is not given in the same change
    ids = hyperplane.allocate_port_ids(["eni-a", "eni-d", "health", "eni-c", "eni-e"], previous)
    assert ids == {"eni-a": 0, "health": 2, "eni-c": 3, "eni-d": 4, "eni-e": 5}
    # the next change: 1 is free again, and the lowest
    assert hyperplane.allocate_port_ids(list(ids) + ["eni-f"], ids)["eni-f"] == 1


def test_a_broken_record_does_not_give_one_id_twice() -> None:
    ids = hyperplane.allocate_port_ids(["x", "y", "z"], {"x": 5, "y": 5, "z": "7"})
    assert ids["x"] == 5 and len(set(ids.values())) == 3


def test_running_out_of_ids_is_a_clear_error() -> None:
    keys = [f"eni-{i}" for i in range(MAX_FORWARDER_PORTS + 1)]
    with pytest.raises(ValueError, match=f"no forwarder port id left for eni-{MAX_FORWARDER_PORTS}"):
        hyperplane.allocate_port_ids(keys)


def test_an_endpoint_added_and_one_removed_keep_every_other_port() -> None:
    old = load(str(EXAMPLES / "privatelink.yaml"))
    before = hyperplane.ports(old)
    doc = copy.deepcopy(old.to_dict())
    consumer = doc["vpcs"]["consumer"]["endpoints"]
    consumer["web-ep"]["subnets"] = consumer["web-ep"]["subnets"][:1]
    consumer["web-ep2"] = {"service": "provider/web-svc", "subnets": ["app-b"]}
    new = Lab.from_dict(doc)
    after = hyperplane.ports(new, before.ids)
    kept = set(before.ids) & {p.eni.eni_id for p in after}
    assert kept and all(before.ids[k] == after.ids[k] for k in kept)
    assert health_port_id(after) == health_port_id(before)
    fresh = [p for p in after if p.eni.eni_id not in before.ids]
    assert fresh and all(p.id not in before.ids.values() for p in fresh)
    assert all(p.hp_ifname == f"hp{p.id}" for p in after)
    # the spec names the same ports: a kept port's id, interface and address are the same
    macs = {i: ("02:00:00:00:00:01", "02:00:00:00:00:02") for i in after.ids.values()}
    spec = hyperplane.compile_spec(new, after, macs, endpoint_states(new))
    by_id = {p.id: p for p in spec.ports}
    for p in before:
        if p.eni.eni_id in kept:
            assert by_id[p.id].ifname == p.hp_ifname and by_id[p.id].addrs == (p.eni.ip,)
