"""The plan `vpclab up FILE` shows and applies on a running lab (lab/reconcile.py's
`diff`): every kind of change, each classified as made in place or refused, naming the
field that asks for it. Pure: two models in, changes out (no root)."""
from __future__ import annotations

import copy
import pathlib
from typing import Any, Callable

import pytest

from dataplane.lab.reconcile import diff, refused
from dataplane.model import Lab, load

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def changed(name: str, edit: Callable[[dict[str, Any]], None]) -> tuple[Lab, Lab]:
    old = load(str(EXAMPLES / name))
    doc = copy.deepcopy(old.to_dict())
    edit(doc)
    new = Lab.from_dict(doc)
    new.check()
    return old, new


def lines(old: Lab, new: Lab) -> list[str]:
    return [c.line() for c in diff(old, new)]


@pytest.mark.parametrize("example", ["privatelink.yaml", "article.yaml", "demo.yaml",
                                     "alb.yaml", "vpc-link.yaml", "cloud-map.yaml"])
def test_the_same_file_is_no_change(example: str) -> None:
    lab = load(str(EXAMPLES / example))
    assert diff(lab, Lab.from_dict(lab.to_dict())) == []


def test_added_and_removed_vpcs_instances_subnets_groups_are_in_place() -> None:
    def edit(d):
        d["vpcs"]["extra"] = {"cidr": "10.7.0.0/16",
                              "subnets": {"a": {"cidr": "10.7.1.0/24"}},
                              "instances": {"box": {"subnet": "a"}}}
        d["vpcs"]["provider"]["subnets"]["svc-c"] = {"cidr": "10.0.3.0/24",
                                                     "az": "us-east-1c"}
        d["vpcs"]["provider"]["instances"]["web3"] = {"subnet": "svc-c"}
        d["vpcs"]["provider"]["security_groups"]["admin-sg"] = {"ingress": []}
    old, new = changed("privatelink.yaml", edit)
    assert lines(old, new) == [
        "+ vpc extra: 10.7.0.0/16",
        "+ subnet provider/svc-c: 10.0.3.0/24",
        "+ security group provider/admin-sg",
        "+ instance provider/web3: 10.0.3.4 in svc-c"]
    assert refused(diff(old, new)) == []
    back = lines(new, old)
    assert "- vpc extra" in back and "- instance provider/web3" in back
    assert "- subnet provider/svc-c: 10.0.3.0/24" in back
    assert refused(diff(new, old)) == []


def test_changed_rules_groups_flags_and_run_are_in_place() -> None:
    def edit(d):
        d["vpcs"]["provider"]["security_groups"]["web-sg"]["ingress"][0]["ports"] = 8081
        web1 = d["vpcs"]["provider"]["instances"]["web1"]
        web1["run"] = "python3 -m http.server 8081"
        web1["source_dest_check"] = False
        d["vpcs"]["consumer"]["instances"]["client"]["security_groups"] = ["endpoint-sg"]
    changes = diff(*changed("privatelink.yaml", edit))
    text = "\n".join(c.line() for c in changes)
    assert "~ security group provider/web-sg" in text
    assert "~ instance provider/web1: source_dest_check True → False" in text
    assert "~ instance provider/web1: run python3 -m http.server 8080 → " \
           "python3 -m http.server 8081" in text
    assert "~ instance consumer/client: security_groups ['default'] → ['endpoint-sg']" in text
    assert refused(changes) == []


def test_listener_target_group_and_service_changes_go_to_the_forwarder() -> None:
    def edit(d):
        p = d["vpcs"]["provider"]
        p["load_balancers"]["web-nlb"]["listeners"].append(
            {"port": 81, "protocol": "TCP", "target_group": "web-tg"})
        p["target_groups"]["web-tg"]["targets"] = ["web1"]
        p["endpoint_services"]["web-svc"]["private_dns_name"] = "www.provider.internal"
        d["vpcs"]["consumer"]["endpoints"]["web-ep"]["private_dns"] = False
    changes = diff(*changed("privatelink.yaml", edit))
    assert sorted(c.line() for c in changes) == sorted([
            "~ endpoint consumer/web-ep: the forwarder's tables",
            "~ endpoint service provider/web-svc: the forwarder's tables",
            "~ load balancer provider/web-nlb: the forwarder's tables",
            "~ target group provider/web-tg: the forwarder's tables"])
    assert refused(changes) == []


def renumber(d: dict[str, Any], vpc: str) -> None:
    """The VPC and its subnets moved from 10.0/16 to 10.8/16."""
    v = d["vpcs"][vpc]
    v["cidr"] = "10.8.0.0/16"
    for s in v["subnets"].values():
        s["cidr"] = s["cidr"].replace("10.0.", "10.8.")


REFUSED = [
    ("region", lambda d: [d.update(region="us-west-2")] + [
        s.update(az=s["az"].replace("us-east-1", "us-west-2"))
        for v in d["vpcs"].values() for s in v["subnets"].values()]),
    ("vpcs.provider.cidr", lambda d: renumber(d, "provider")),
    ("vpcs.consumer.subnets.app-b.cidr",
     lambda d: d["vpcs"]["consumer"]["subnets"]["app-b"].update(cidr="10.0.9.0/24")),
    ("vpcs.consumer.subnets.app-b.az",
     lambda d: [d["vpcs"][v]["subnets"][s].update(az="us-east-1c")
                for v, s in (("consumer", "app-b"), ("provider", "svc-b"))]),
    ("vpcs.provider.instances.web2.subnet",
     lambda d: d["vpcs"]["provider"]["instances"]["web2"].update(subnet="svc-a")),
    ("vpcs.consumer.instances.client.ip",
     lambda d: d["vpcs"]["consumer"]["instances"]["client"].update(ip="10.0.1.40")),
    # an instance added before the endpoint's ENI in its subnet moves the ENI
    ("vpcs.consumer.endpoints.web-ep",
     lambda d: d["vpcs"]["consumer"]["instances"].update({"client2": {"subnet": "app-a"}})),
]


@pytest.mark.parametrize("field,edit", REFUSED, ids=[r[0] + str(i) for i, r in
                                                      enumerate(REFUSED)])
def test_refused_changes_name_their_field(field: str, edit) -> None:
    no = refused(diff(*changed("privatelink.yaml", edit)))
    assert field in {c.field for c in no}, [c.line() for c in no]
    assert all(c.refused for c in no)


def test_an_instance_whose_address_would_move_is_named() -> None:
    def edit(d):        # web0 first in svc-a takes web1's address
        inst = d["vpcs"]["provider"]["instances"]
        d["vpcs"]["provider"]["instances"] = {"web0": {"subnet": "svc-a"}, **inst}
    no = refused(diff(*changed("privatelink.yaml", edit)))
    moved = [c for c in no if c.field == "vpcs.provider.instances.web1.ip"]
    assert moved and "10.0.1.4 → 10.0.1.5" in moved[0].detail


def test_an_added_instance_with_its_own_address_moves_nothing() -> None:
    def edit(d):
        d["vpcs"]["consumer"]["instances"]["client2"] = {"subnet": "app-a",
                                                         "ip": "10.0.1.40"}
    changes = diff(*changed("privatelink.yaml", edit))
    assert [c.line() for c in changes] == ["+ instance consumer/client2: 10.0.1.40 in app-a"]


def test_new_and_removed_hyperplane_enis_are_in_place() -> None:
    def more(d):        # a second endpoint, and the first in one subnet fewer
        d["vpcs"]["consumer"]["endpoints"]["web-ep2"] = {"service": "provider/web-svc",
                                                         "subnets": ["app-b"]}
        d["vpcs"]["consumer"]["endpoints"]["web-ep"]["subnets"] = ["app-a"]
    changes = diff(*changed("privatelink.yaml", more))
    assert refused(changes) == []
    text = [c.line() for c in changes]
    assert "+ endpoint consumer/web-ep2: the forwarder's tables" in text
    enis = [line for line in text if "hyperplane ENI" in line]
    assert len(enis) == 2, text
    assert any(line.startswith("+ ") and "vpce ENI of web-ep2 in app-b" in line
               and "a new forwarder port" in line for line in enis)
    assert any(line.startswith("- ") and "vpce ENI of web-ep in app-b" in line
               and "its forwarder port closes" in line for line in enis)


def test_an_alb_rule_change_restarts_its_nodes_and_a_moved_alb_is_refused() -> None:
    old = load(str(EXAMPLES / "alb.yaml"))
    vpc = next(v for v in old.vpcs.values() if v.albs)
    alb_name = next(iter(vpc.albs))

    def edit(d):
        d["vpcs"][vpc.name]["load_balancers"][alb_name]["idle_timeout"] = 30
    changes = diff(*changed("alb.yaml", edit))
    assert refused(changes) == []
    assert [c.line() for c in changes] == [
        f"~ load balancer {vpc.name}/{alb_name}: its nodes restart with the new configuration"]

    def move(d):        # the nodes' order is their addresses' (the model's plan)
        d["vpcs"][vpc.name]["load_balancers"][alb_name]["subnets"] = \
            vpc.albs[alb_name].subnets[::-1]
    no = refused(diff(*changed("alb.yaml", move)))
    assert f"vpcs.{vpc.name}.load_balancers.{alb_name}.subnets" in {c.field for c in no}


def test_the_lab_s_first_hyperplane_eni_is_refused() -> None:
    def none(d):
        for v in d["vpcs"].values():
            for key in ("endpoints", "load_balancers", "target_groups", "endpoint_services"):
                v.pop(key, None)
    bare, full = changed("privatelink.yaml", none)[1], load(str(EXAMPLES / "privatelink.yaml"))
    no = refused(diff(bare, full))
    assert any(c.what == "hyperplane" for c in no), [c.line() for c in no]


def test_other_kinds_are_refused_for_now() -> None:
    def api(d):
        section = d["api_gateway"]
        section["apis"]["orders"]["stages"].append("beta")
    no = refused(diff(*changed("api-gateway.yaml", api)))
    assert [c.field for c in no] == ["api_gateway"]


def test_the_plan_line_names_what_and_why() -> None:
    old, new = changed("privatelink.yaml",
                       lambda d: renumber(d, "provider"))
    line = next(c.line() for c in diff(old, new) if c.field == "vpcs.provider.cidr")
    assert line == ("~ vpc provider: cidr 10.0.0.0/16 → 10.8.0.0/16  (refused, "
                    "vpcs.provider.cidr: every address in the VPC depends on it)")
