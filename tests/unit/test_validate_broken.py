"""Broken topology files (issue 13, part 5): each is refused by `validate` with the
field path and the reason, never by a traceback, a hang, or a failure inside `up`.

A case is a change to a good PrivateLink document, or a whole YAML text, with the
expected problems as (path, words of the reason). The rule they keep: if `validate`
says OK, `up` does not fail on the file's content. No root needed.
"""
from __future__ import annotations

import copy
import pathlib

import pytest
import yaml

from dataplane.cli.main import main
from dataplane.model import TopologyError, load, loads
from dataplane.model import loader as loader_mod
from dataplane.model.constants import (MAX_BACKENDS, MAX_FORWARDER_PORTS,
                                       MAX_FORWARDER_SERVICES, MAX_SG_RULES)
from dataplane.model.enis import eni_ids
from dataplane.model.names import ALTNAMSIZ, IFNAMSIZ

REPO = pathlib.Path(__file__).resolve().parents[2]
GOOD = yaml.safe_load((REPO / "examples" / "privatelink.yaml").read_text())


ENDPOINT_IFNAME = eni_ids("pl", "consumer", "vpce", "web-ep", "app-a")[1]


def consumer(d):
    return d["vpcs"]["consumer"]


def provider(d):
    return d["vpcs"]["provider"]


def problems(text_or_doc) -> list[tuple[str, str]]:
    text = text_or_doc if isinstance(text_or_doc, str) else yaml.safe_dump(text_or_doc)
    try:
        loads(text, "broken.yaml")
    except TopologyError as e:
        return [(p.path, p.reason) for p in e.problems]
    return []


def many_subnets(d, n):
    consumer(d)["subnets"] = {f"s{i}": {"cidr": f"10.0.{i}.0/28", "az": "us-east-1a"}
                              for i in range(n)}


DOC_CASES = [
    # -- value types: a float is not a whole number, whatever JSON Schema says ----------
    ("float listener port", lambda d: provider(d)["load_balancers"]["web-nlb"]["listeners"][0]
     .update(port=80.0), [("vpcs.provider.load_balancers.web-nlb.listeners[0].port",
                           "expected a whole number, got a decimal number")]),
    ("float target group port", lambda d: provider(d)["target_groups"]["web-tg"]
     .update(port=8080.0), [("vpcs.provider.target_groups.web-tg.port",
                             "expected a whole number, got a decimal number")]),
    ("float health check interval", lambda d: provider(d)["target_groups"]["web-tg"]
     ["health_check"].update(interval=5.0),
     [("vpcs.provider.target_groups.web-tg.health_check.interval", "whole number")]),
    ("float security group ports", lambda d: consumer(d)["security_groups"]["endpoint-sg"]
     ["ingress"][0].update(ports=80.0),
     [("vpcs.consumer.security_groups.endpoint-sg.ingress[0].ports", "80.0 is not valid")]),
    ("boolean as a port", lambda d: provider(d)["target_groups"]["web-tg"].update(port=True),
     [("vpcs.provider.target_groups.web-tg.port", "got a boolean")]),
    ("string source_dest_check", lambda d: consumer(d)["instances"]["client"]
     .update(source_dest_check="false"),
     [("vpcs.consumer.instances.client.source_dest_check", "expected a boolean")]),
    # -- CIDRs the kernel does not route as unicast --------------------------------------
    ("multicast VPC CIDR", lambda d: consumer(d).update(cidr="224.0.0.0/16"),
     [("vpcs.consumer.cidr", "multicast (224.0.0.0/4)")]),
    ("loopback VPC CIDR", lambda d: consumer(d).update(cidr="127.0.0.0/16"),
     [("vpcs.consumer.cidr", "loopback (127.0.0.0/8)")]),
    ("link-local VPC CIDR", lambda d: consumer(d).update(cidr="169.254.0.0/16"),
     [("vpcs.consumer.cidr", "link-local")]),
    ("reserved VPC CIDR", lambda d: consumer(d).update(cidr="240.0.0.0/16"),
     [("vpcs.consumer.cidr", "240.0.0.0/4")]),
    ("'this network' VPC CIDR", lambda d: consumer(d).update(cidr="0.0.0.0/16"),
     [("vpcs.consumer.cidr", "'this network'")]),
    # -- DNS names: labels of at most 63, names of at most 253 ----------------------------
    ("DNS label over 63", lambda d: provider(d)["endpoint_services"]["web-svc"]
     .update(private_dns_name="a" * 64 + ".provider.internal"),
     [("vpcs.provider.endpoint_services.web-svc.private_dns_name", "labels of 1-63")]),
    ("DNS name over 253", lambda d: provider(d)["endpoint_services"]["web-svc"]
     .update(private_dns_name=".".join(["a" * 60] * 5) + ".internal"),
     [("vpcs.provider.endpoint_services.web-svc.private_dns_name", "at most 253")]),
    ("region too long for the endpoints' zonal names", lambda d: d.update(
        region="us-" + "e" * 30 + "-1"), [("region", "at most 25")]),
    ("two endpoints with private DNS for one service", lambda d: consumer(d)["endpoints"]
     .update({"web-ep2": dict(consumer(d)["endpoints"]["web-ep"])}),
     [("vpcs.consumer.endpoints.web-ep2.private_dns", "already answers web.provider.internal")]),
    # -- what the kernel and the engine take ----------------------------------------------
    ("a NUL in a command", lambda d: consumer(d)["instances"]["client"].update(run="sleep\x001"),
     [("vpcs.consumer.instances.client.run", "NUL")]),
    ("a health check matcher the checker cannot read", lambda d: provider(d)["target_groups"]
     ["web-tg"]["health_check"].update(protocol="HTTP", matcher="ok"),
     [("vpcs.provider.target_groups.web-tg.health_check.matcher", "HTTP codes")]),
    ("a health check path with a line break", lambda d: provider(d)["target_groups"]
     ["web-tg"]["health_check"].update(protocol="HTTP", path="/\r\nX: y"),
     [("vpcs.provider.target_groups.web-tg.health_check.path", "no spaces or control")]),
    ("instance name longer than an interface name allows", lambda d: consumer(d)["instances"]
     .update({"a" * 12: {"subnet": "app-a"}}),
     [("vpcs.consumer.instances." + "a" * 12, f"({IFNAMSIZ} characters)")]),
    ("an instance named like a Hyperplane ENI's interface", lambda d: consumer(d)["instances"]
     .update({ENDPOINT_IFNAME[4:]: {"subnet": "app-a"}}),
     [("vpcs.consumer.instances." + ENDPOINT_IFNAME[4:],
       f"its ENI would be {ENDPOINT_IFNAME}, the interface of the vpce ENI of web-ep")]),
    ("subnet with no free address for an ENI", lambda d: (
        consumer(d)["subnets"]["app-a"].update(cidr="10.0.1.0/28"),
        consumer(d)["instances"].update({f"c{i}": {"subnet": "app-a"} for i in range(10)})),
     [("vpcs.consumer.subnets.app-a", "no free address for the vpce ENI of web-ep")]),
    ("more Hyperplane ENIs than forwarder ports", lambda d: (
        many_subnets(d, MAX_FORWARDER_PORTS),
        consumer(d).update(instances={}, endpoints={
            f"e{i}": {"service": "provider/web-svc", "subnets": [f"s{i}"]}
            for i in range(MAX_FORWARDER_PORTS)})),
     [("", f"the forwarder has {MAX_FORWARDER_PORTS} ports")]),
    ("one target twice, by name and by address", lambda d: provider(d)["target_groups"]
     ["web-tg"].update(targets=["web1", "web2", "10.0.1.4:8080"]),
     [("vpcs.provider.target_groups.web-tg.targets[2]",
       "10.0.1.4:8080 is 10.0.1.4:8080, already a target as web1")]),
    ("more targets than a service takes", lambda d: provider(d)["target_groups"]["web-tg"]
     .update(targets=[f"10.0.{i // 250}.{i % 250 + 4}" for i in range(MAX_BACKENDS + 1)]),
     [("vpcs.provider.target_groups.web-tg.targets", f"at most {MAX_BACKENDS}")]),
    ("more services than the forwarder holds", lambda d: provider(d)["target_groups"]["web-tg"]
     .update(targets=[f"10.0.{i // 250}.{i % 250 + 4}" for i in range(MAX_FORWARDER_SERVICES // 2 + 1)]),
     [("", f"the forwarder holds {MAX_FORWARDER_SERVICES}")]),
    ("an endpoint's groups compile to more rules than the engine takes", lambda d: (
        consumer(d)["subnets"].update(big={"cidr": "10.0.64.0/18"}),
        consumer(d)["instances"].update({f"i{i}": {"subnet": "big"}
                                         for i in range(MAX_SG_RULES + 1)}),
        consumer(d)["security_groups"]["endpoint-sg"]["ingress"].append(
            {"protocol": "tcp", "ports": 80, "source": "sg:default"})),
     [("vpcs.consumer.endpoints.web-ep.security_groups",
       f"the forwarder takes {MAX_SG_RULES} per ENI")]),
]


@pytest.mark.parametrize("name,change,expected", DOC_CASES, ids=[c[0] for c in DOC_CASES])
def test_broken_document_is_refused_at_its_field(name, change, expected):
    doc = copy.deepcopy(GOOD)
    change(doc)
    got = problems(doc)
    for path, words in expected:
        assert any(p == path and words in r for p, r in got), (path, words, got)


def nested_aliases(levels: int, width: int = 10) -> str:
    lines = ["a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


TEXT_CASES = [
    ("20,000 nested brackets", "lab: " + "[" * 20000 + "]" * 20000,
     [("", "broken.yaml, line 1: not valid YAML: nested more than 64 levels deep")]),
    ("deeply nested block mappings", "lab:\n" + "".join(" " * (i + 1) + f"k{i}:\n"
                                                       for i in range(100)),
     [("", "nested more than 64 levels deep")]),
    ("an alias bomb (a billion laughs)", nested_aliases(9),
     [("", "broken.yaml, line 6: not valid YAML: more than 200000 values once aliases "
           "are expanded")]),
    ("an alias to an enclosing node", "lab: &a [*a]\n",
     [("", "alias *a refers to a node that encloses it (a cycle)")]),
    ("an unknown alias", "lab: *nope\n", [("", "found undefined alias 'nope'")]),
    ("a number too long to convert", "lab: demo\nregion: " + "9" * 5000 + "\n",
     [("", "line 2: not valid YAML: a number of 5000 digits")]),
    ("a Python tag", "lab: !!python/object/apply:os.system [true]\n",
     [("", "could not determine a constructor")]),
    ("a mapping as a key", "? [a]\n: b\n", [("", "found unhashable key")]),
    ("two documents", "lab: a\n---\nlab: b\n", [("", "line 2: not valid YAML")]),
    ("a list, not a mapping", "- lab\n", [("", "is a mapping with keys lab and vpcs")]),
    ("duplicate keys", "lab: a\nlab: b\nvpcs: {x: {cidr: 10.0.0.0/16}}\n",
     [("lab", "duplicate key (line 2)")]),
]


@pytest.mark.parametrize("name,text,expected", TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_broken_text_is_refused_with_its_line(name, text, expected):
    got = problems(text)
    for path, words in expected:
        assert any(p == path and words in r for p, r in got), (path, words, got)


@pytest.mark.parametrize("name,text,expected", TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_loading_is_bounded_by_the_text_not_by_what_it_expands_to(name, text, expected,
                                                                  monkeypatch):
    """Every node the loader composes, and every scanner step past a bracket, costs at
    least one character of the text: an alias bomb or a deep nest is refused after work
    linear in its length (counted, never timed)."""
    calls = {"compose": 0, "brackets": 0}
    compose = loader_mod.BoundedLoader.compose_node
    bracket = loader_mod.BoundedLoader.fetch_flow_collection_start

    def counted_compose(self, parent, index):
        calls["compose"] += 1
        return compose(self, parent, index)

    def counted_bracket(self, token_class):
        calls["brackets"] += 1
        return bracket(self, token_class)

    monkeypatch.setattr(loader_mod.BoundedLoader, "compose_node", counted_compose)
    monkeypatch.setattr(loader_mod.BoundedLoader, "fetch_flow_collection_start", counted_bracket)
    problems(text)
    assert calls["compose"] <= len(text)
    assert calls["brackets"] <= loader_mod.MAX_DEPTH + 1


def test_an_alias_bomb_below_the_bound_is_refused_by_the_schema_not_expanded():
    # 10^4 values: within MAX_NODES, so it is read; the schema names what is wrong.
    got = problems(nested_aliases(4) + "lab: demo\nvpcs: {}\n")
    assert ("a0", "unknown key (allowed: api_gateway, cloud_map, lab, region, vpcs)") in got


def test_non_utf8_file_names_the_line_and_byte(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"lab: demo\n# caf\xe9\nvpcs: {}\n")
    with pytest.raises(TopologyError) as e:
        load(path)
    assert [str(p) for p in e.value.problems] == [
        f"{path}, line 2: not UTF-8 (byte 0xe9 at offset 15)"]
    assert main(["validate", str(path)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_oversized_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * loader_mod.MAX_FILE_BYTES + b"\n")
    with pytest.raises(TopologyError, match="larger than 1048576 bytes"):
        load(path)
    with pytest.raises(TopologyError, match="a topology file is at most 1048576 bytes"):
        loads("#" * (loader_mod.MAX_FILE_BYTES + 1))


def test_longest_names_fit_the_kernel():
    """Names as long as the schema allows make interface names and altnames the kernel
    takes (the instance name is bounded by validate, the rest by the schema)."""
    from dataplane.model import names
    from dataplane.model.enis import eni_ids
    lab, vpc, inst = "l" * 12, "v" * 20, "i" * names.MAX_INSTANCE_NAME
    assert len(names.eni_ifname(inst)) <= IFNAMSIZ
    assert len(eni_ids(lab, vpc, "vpce", "o" * 32, "s" * 32)[1]) <= IFNAMSIZ
    for altname in (names.eni_altname(lab, vpc, inst), names.eth_altname(lab, vpc, inst),
                    f"{names.MARK}.{lab}.{vpc}.{eni_ids(lab, vpc, 'nlb', 'o', 's')[0]}",
                    f"{names.MARK}.{lab}.{names.HYPERPLANE}.hp{MAX_FORWARDER_PORTS}"):
        assert len(altname) <= ALTNAMSIZ
