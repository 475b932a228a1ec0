"""VPC Flow Logs without a lab: the model's `flow_logs:` (intervals, formats, errors that
name the field), record formatting and aggregation (records.py), the collector's
deltas and its mapping of kernel and engine counts to ENIs (collector.py), and the
NFLOG packet parser (kernel.py)."""
from __future__ import annotations

import struct

import pytest
from conftest import S, open_connection

from dataplane.forwarder.engine import flows_from_raw, flows_raw_page
from dataplane.model import Lab, TopologyError, check_document
from dataplane.model.flow_logs import (DEFAULT_FIELDS, TEST_INTERVALS_ENV, az_id, format_version,
                                       parse_format)
from dataplane.services.flowlogs import kernel
from dataplane.services.flowlogs.collector import (Catalog, Deltas, conntrack_observations,
                                                   engine_observations, refused_observations)
from dataplane.services.flowlogs.records import (ACCEPT, EGRESS, INGRESS, REJECT, Eni,
                                                 Observation, Window, aligned, parse_line)
from netns_setup import nft

CUSTOM = ("${interface-id} ${srcaddr} ${dstaddr} ${pkt-srcaddr} ${pkt-dstaddr} ${tcp-flags} "
          "${flow-direction} ${traffic-path} ${action} ${log-status}")


def doc(**flow_logs):
    return {"lab": "tfl", "vpcs": {"shop": {
        "cidr": "10.0.0.0/16", "subnets": {"a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"}},
        **({"flow_logs": flow_logs["vpc"]} if "vpc" in flow_logs else {}),
        "instances": {"web1": {"subnet": "a", **({"flow_logs": flow_logs["inst"]}
                                               if "inst" in flow_logs else {})}}}}}


# -- model -------------------------------------------------------------------------------

def test_a_flow_log_on_a_vpc_and_on_an_instance_round_trips():
    d = doc(vpc={"interval": 60, "format": "default"}, inst={"interval": 600, "format": CUSTOM})
    assert check_document(d) == []
    lab = Lab.from_dict(d)
    assert {t: (f.interval, f.format) for t, f in lab.flow_logs.items()} == {
        "shop": (60, "default"), "shop/web1": (600, CUSTOM)}
    assert lab.to_dict()["vpcs"]["shop"]["flow_logs"] == {"interval": 60, "format": "default"}
    assert lab.to_dict()["vpcs"]["shop"]["instances"]["web1"]["flow_logs"]["format"] == CUSTOM


def test_only_aws_intervals_without_the_test_switch(monkeypatch):
    monkeypatch.delenv(TEST_INTERVALS_ENV, raising=False)
    problems = check_document(doc(vpc={"interval": 5}))
    assert [p.path for p in problems] == ["vpcs.shop.flow_logs.interval"]
    assert "60 or 600" in problems[0].reason and TEST_INTERVALS_ENV in problems[0].reason
    monkeypatch.setenv(TEST_INTERVALS_ENV, "1")
    assert check_document(doc(vpc={"interval": 5})) == []
    assert [p.path for p in check_document(doc(vpc={"interval": 61}))] == [
        "vpcs.shop.flow_logs.interval"]


@pytest.mark.parametrize("fmt, path, words", [
    ("${srcaddr} ${nosuch}", "vpcs.shop.instances.web1.flow_logs.format", "unknown field 'nosuch'"),
    ("${srcaddr}  ${dstaddr}", "vpcs.shop.instances.web1.flow_logs.format", "single spaces"),
    ("srcaddr dstaddr", "vpcs.shop.instances.web1.flow_logs.format", "not a ${field} token"),
    ("${srcaddr} ${srcaddr}", "vpcs.shop.instances.web1.flow_logs.format", "named twice"),
])
def test_a_bad_custom_format_is_named_at_its_field(fmt, path, words):
    problems = check_document(doc(inst={"format": fmt}))
    assert [p.path for p in problems] == [path]
    assert words in problems[0].reason


def test_the_shape_of_flow_logs_is_checked_by_the_schema():
    problems = check_document(doc(vpc={"interval": "60", "every": 1}))
    assert {p.path for p in problems} == {"vpcs.shop.flow_logs.interval",
                                          "vpcs.shop.flow_logs.every"}


def test_a_flow_log_from_python_on_a_missing_instance_is_refused():
    lab = Lab("tfl")
    lab.add_vpc("shop", "10.0.0.0/16").add_subnet("a", "10.0.1.0/24")
    lab.add_flow_log("shop/nope", interval=60)
    with pytest.raises(TopologyError, match="vpcs.shop.instances.nope.flow_logs: .*no such instance"):
        lab.check()


def test_formats_and_their_versions():
    assert parse_format("default") == DEFAULT_FIELDS and format_version(DEFAULT_FIELDS) == 2
    assert format_version(parse_format("${srcaddr} ${vpc-id}")) == 3
    assert format_version(parse_format("${az-id} ${srcaddr}")) == 4
    assert format_version(parse_format(CUSTOM)) == 5
    assert az_id("us-east-1", "us-east-1c") == "use1-az3"
    assert az_id("ap-southeast-2", "ap-southeast-2b") == "apse2-az2"
    assert az_id("eu-west-2", None) == "-"


# -- records -------------------------------------------------------------------------------

def eni(eni_id="eni-1", address="10.0.1.10", instance="i-1"):
    return Eni(eni_id, address, "shop", "vpc-1", "10.0.0.0/16", "subnet-1", instance,
               "123456789012", "us-east-1", "use1-az1")


def test_default_records_aggregate_per_eni_and_five_tuple_with_nodata():
    w = Window.of("default", {"eni-1": eni(), "eni-2": eni("eni-2", "10.0.1.11")}, 1800000030, 60)
    assert (w.start, w.end) == (1800000000, 1800000060)
    for _ in range(3):
        w.add(Observation("eni-1", EGRESS, "10.0.1.10", "10.0.1.50", 43512, 443, 6, ACCEPT, 4, 1060))
    w.add(Observation("eni-1", EGRESS, "10.0.1.10", "10.0.1.50", 43512, 443, 6, REJECT, 1, 60))
    w.add(Observation("eni-9", EGRESS, "10.0.1.10", "10.0.1.50", 1, 2, 6, ACCEPT, 1, 60))
    records = w.records()
    assert records["eni-1"] == [
        "2 123456789012 eni-1 10.0.1.10 10.0.1.50 43512 443 6 12 3180 1800000000 1800000060 ACCEPT OK",
        "2 123456789012 eni-1 10.0.1.10 10.0.1.50 43512 443 6 1 60 1800000000 1800000060 REJECT OK"]
    assert records["eni-2"] == ["2 123456789012 eni-2 - - - - - - - 1800000000 1800000060 - NODATA"]
    assert "eni-9" not in records


def test_srcaddr_is_the_enis_own_and_pkt_srcaddr_the_packets():
    """A NAT instance's ENI forwards another host's packets: AWS's NAT example."""
    w = Window.of(CUSTOM, {"eni-nat": eni("eni-nat", "10.0.1.5")}, 0, 60)
    w.add(Observation("eni-nat", INGRESS, "10.0.2.7", "203.0.113.5", 5000, 443, 6, ACCEPT, 1, 60, 2))
    w.add(Observation("eni-nat", EGRESS, "10.0.2.7", "10.0.3.9", 5000, 443, 6, ACCEPT, 1, 60, 2))
    lines = w.records()["eni-nat"]
    assert [parse_line(parse_format(CUSTOM), l) for l in lines] == [
        {"interface-id": "eni-nat", "srcaddr": "10.0.1.5", "dstaddr": "10.0.3.9",
         "pkt-srcaddr": "10.0.2.7", "pkt-dstaddr": "10.0.3.9", "tcp-flags": "2",
         "flow-direction": "egress", "traffic-path": "1", "action": "ACCEPT", "log-status": "OK"},
        {"interface-id": "eni-nat", "srcaddr": "10.0.2.7", "dstaddr": "10.0.1.5",
         "pkt-srcaddr": "10.0.2.7", "pkt-dstaddr": "203.0.113.5", "tcp-flags": "2",
         "flow-direction": "ingress", "traffic-path": "-", "action": "ACCEPT", "log-status": "OK"}]


def test_skipdata_marks_an_eni_whose_drops_have_no_five_tuple():
    w = Window.of("${interface-id} ${action} ${log-status}", {"eni-1": eni()}, 0, 60)
    w.skip("eni-1")
    w.add(Observation("eni-1", INGRESS, "10.0.1.9", "10.0.1.10", 1, 2, 17, ACCEPT, 1, 29))
    assert w.records()["eni-1"] == ["eni-1 ACCEPT OK", "eni-1 - SKIPDATA"]


def test_intervals_start_at_multiples_of_their_length():
    assert aligned(1700000059.9, 60) == 1700000040 and aligned(1700000000, 600) == 1699999800


# -- the collector's pieces ------------------------------------------------------------------

def test_deltas_report_only_what_was_counted_after_the_baseline():
    d = Deltas()
    assert d.seen("old", (5, 500)) == ((0, 0), False)
    d.sweep()
    assert d.seen("old", (7, 700)) == ((2, 200), False)
    assert d.seen("new", (1, 100)) == ((1, 100), True)
    d.sweep()
    assert d.gone("new", (3, 300)) == (2, 200)
    assert d.seen("old", (1, 50)) == ((1, 50), False)     # a counter that started again
    d.sweep()
    assert "new" not in d.last


def state_data():
    lab = Lab("tfl")
    shop = lab.add_vpc("shop", "10.0.0.0/16")
    shop.add_subnet("a", "10.0.1.0/24", az="us-east-1a")
    shop.add_instance("client", "a")
    shop.add_instance("server", "a")
    instances = {n: {"ip": ip, "subnet": "a", "eni": f"eni-{n}"}
                 for n, ip in (("client", "10.0.1.4"), ("server", "10.0.1.5"))}
    return {"topology": lab.to_dict(),
            "vpcs": {"shop": {"netns": "tfl.shop", "instances": instances}},
            "hyperplane": {"enis": [
                {"port": 0, "vpc": "shop", "subnet": "a", "az": "us-east-1a", "ip": "10.0.1.6",
                 "eni_id": "eni-ep", "ifname": "eni-ep"},
                {"port": 1, "vpc": "shop", "subnet": "a", "az": "us-east-1a", "ip": "10.0.1.7",
                 "eni_id": "eni-nlb", "ifname": "eni-nlb"}]}}


def test_a_conntrack_entry_is_four_records_and_dns_is_never_logged():
    cat = Catalog.of(state_data())
    client, server = cat.of_instance["shop/client"], cat.of_instance["shop/server"]
    d = Deltas()
    d.sweep()
    flow = kernel.Tracked(("1",), "10.0.1.4", "10.0.1.5", 4000, 9000, 17, (7, 896, 2, 100),
                          True, False, False)
    dns = kernel.Tracked(("2",), "10.0.1.4", "10.0.0.2", 4001, 53, 17, (1, 60, 1, 90),
                         True, False, False)
    to_endpoint = kernel.Tracked(("3",), "10.0.1.4", "10.0.1.6", 4002, 80, 6, (3, 180, 2, 120),
                                 True, False, False)
    obs = conntrack_observations(cat, "shop", [flow, dns, to_endpoint], d)
    got = {(o.eni_id, o.direction, o.src, o.dst, o.packets, o.bytes) for o in obs}
    assert got == {(client, EGRESS, "10.0.1.4", "10.0.1.5", 7, 896),
                   (server, INGRESS, "10.0.1.4", "10.0.1.5", 7, 896),
                   (server, EGRESS, "10.0.1.5", "10.0.1.4", 2, 100),
                   (client, INGRESS, "10.0.1.5", "10.0.1.4", 2, 100),
                   # the endpoint's own records are the engine's, not conntrack's
                   (client, EGRESS, "10.0.1.4", "10.0.1.6", 3, 180),
                   (client, INGRESS, "10.0.1.6", "10.0.1.4", 2, 120)}
    assert {o.tcp_flags for o in obs if o.protocol == 6 and o.direction == EGRESS} == {2}


def test_a_refusal_at_the_receiver_is_a_reject_there_and_an_accept_at_the_sender():
    cat = Catalog.of(state_data())
    client, server = cat.of_instance["shop/client"], cat.of_instance["shop/server"]
    r = kernel.Refused("ingress", "eni-server", "10.0.1.4", "10.0.1.5", 4000, 22, 6, 60, 2)
    got = {(o.eni_id, o.direction, o.action) for o in refused_observations(cat, "shop", [r])}
    assert got == {(server, INGRESS, REJECT), (client, EGRESS, ACCEPT)}
    r = kernel.Refused("egress", "eni-client", "10.0.1.4", "10.0.1.9", 4000, 22, 6, 60, 2)
    got = {(o.eni_id, o.direction, o.action) for o in refused_observations(cat, "shop", [r])}
    assert got == {(client, EGRESS, REJECT)}


def test_an_engine_flow_is_logged_on_its_two_enis_never_between_them():
    cat = Catalog.of(state_data())
    flow = {"protocol": "tcp", "tcp_state": "ESTABLISHED", "packets": [6, 5],
            "client": ["10.0.1.4", 4000], "vip": ["10.0.1.6", 80], "snat": ["10.0.1.7", 1100],
            "backend": ["10.0.2.20", 8080], "in_port": 0, "out_port": 1}
    obs = engine_observations(cat, flow, (6, 6 * 14 + 400, 5, 5 * 14 + 900), True)
    got = {(o.eni_id, o.direction, o.src, o.sport, o.dst, o.dport, o.packets, o.bytes, o.tcp_flags)
           for o in obs}
    assert got == {("eni-ep", INGRESS, "10.0.1.4", 4000, "10.0.1.6", 80, 6, 400, 2),
                   ("eni-ep", EGRESS, "10.0.1.6", 80, "10.0.1.4", 4000, 5, 900, 18),
                   ("eni-nlb", EGRESS, "10.0.1.7", 1100, "10.0.2.20", 8080, 6, 400, 2),
                   ("eni-nlb", INGRESS, "10.0.2.20", 8080, "10.0.1.7", 1100, 5, 900, 18)}


def test_targets_name_vpcs_instances_and_enis():
    cat = Catalog.of(state_data())
    assert sorted(cat.covered("shop")) == sorted(list(cat.of_instance.values()) + ["eni-ep", "eni-nlb"])
    assert cat.covered("eni-nlb") == ["eni-nlb"]
    assert cat.resolve("shop/nope") and "neither a VPC" in cat.resolve("shop/nope")


def test_a_logged_refusal_is_parsed_from_its_prefix_and_headers():
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 60, 1, 0, 64, 6, 0, bytes([10, 0, 1, 4]),
                     bytes([10, 0, 1, 5]))
    tcp = struct.pack("!HHIIBBHHH", 40000, 22, 1, 0, 5 << 4, 0x02, 1024, 0, 0)
    prefix = (nft.REJECT_LOG_PREFIX + "ingress eni-server").encode() + b"\0"
    assert kernel.parse_refused(prefix, ip + tcp) == kernel.Refused(
        "ingress", "eni-server", "10.0.1.4", "10.0.1.5", 40000, 22, 6, 60, 2)
    assert kernel.parse_refused(b"someone else\0", ip + tcp) is None


# -- the engine's part: the flows that moved, as raw records ---------------------------------

def test_the_engine_hands_over_only_the_flows_seen_since(engine, tcp_service):
    old = open_connection(engine, sport=40000, t=10 * S)
    new = open_connection(engine, sport=40001, t=20 * S)
    everything, cursor = flows_raw_page(engine, 0)
    assert cursor == 0 and flows_from_raw(everything) == engine.flows()
    moved, _ = flows_raw_page(engine, 0, since_ns=15 * S)
    assert flows_from_raw(moved) == [new] and old not in flows_from_raw(moved)
    first, cursor = flows_raw_page(engine, 0, max_flows=1)
    rest, end = flows_raw_page(engine, cursor, max_flows=1)
    assert flows_from_raw(first + rest) == engine.flows() and cursor
    assert flows_raw_page(engine, 0, since_ns=30 * S) == (b"", 0)
