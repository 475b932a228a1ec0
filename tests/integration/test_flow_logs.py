"""VPC Flow Logs in a running lab: records compared with the traffic the test sent.

Lab `tfl1`: consumer VPC (10.0.0.0/16) with `client`, a UDP `sink` whose group admits
UDP 9000 only, and an interface endpoint; provider VPC (10.1.0.0/16) with `web1` behind
an NLB and an endpoint service. Flow logs with a 2-second interval (the test-only
switch): on the consumer VPC in a custom format with the v3-v5 fields, on `client` in
the default format, on the provider VPC in a custom format.

Counts are compared exactly once every interval that held the traffic has been written:
the tests wait for a record whose interval starts two intervals after the traffic.
"""
from __future__ import annotations

import json
import os
import sys
import time

import pytest

from dataplane.model.flow_logs import TEST_INTERVALS_ENV, parse_format
from dataplane.pytest_plugin import lab_fixture, lab_name
from dataplane.services.flowlogs.collector import flowlogs_dir
from dataplane.services.flowlogs.records import parse_line
from dataplane.lab.state import State
from netns_setup import procs

from .conftest import run_in, vpclab

pytestmark = pytest.mark.root
LAB = lab_name("tfl1")
TFL2 = lab_name("tfl2")
INTERVAL = 2
CUSTOM = ("${version} ${interface-id} ${instance-id} ${srcaddr} ${dstaddr} ${pkt-srcaddr} "
          "${pkt-dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} "
          "${tcp-flags} ${flow-direction} ${traffic-path} ${action} ${log-status}")
SINK_RUN = ("python3 -c \"import socket;s=socket.socket(2,2);s.bind(('0.0.0.0',9000));"
            "[s.recv(65535) for _ in iter(int,1)]\"")
CLIENT, SINK, WEB1 = "10.0.1.4", "10.0.1.5", "10.1.1.4"


def topology() -> dict:
    return {"lab": LAB, "region": "us-east-1", "vpcs": {
        "consumer": {
            "cidr": "10.0.0.0/16",
            "flow_logs": {"interval": INTERVAL, "format": CUSTOM},
            "subnets": {"a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"}},
            "security_groups": {
                "endpoint-sg": {"ingress": [{"protocol": "tcp", "ports": 80, "source": "10.0.0.0/16"}]},
                "sink-sg": {"ingress": [{"protocol": "udp", "ports": 9000, "source": "10.0.0.0/16"}]}},
            "instances": {
                "client": {"subnet": "a", "ip": CLIENT,
                           "flow_logs": {"interval": INTERVAL, "format": "default"}},
                "sink": {"subnet": "a", "ip": SINK, "security_groups": ["sink-sg"],
                         "run": SINK_RUN}},
            "endpoints": {"web-ep": {"service": "provider/web-svc", "subnets": ["a"],
                                     "security_groups": ["endpoint-sg"]}}},
        "provider": {
            "cidr": "10.1.0.0/16",
            "flow_logs": {"interval": INTERVAL, "format": CUSTOM},
            "subnets": {"a": {"cidr": "10.1.1.0/24", "az": "us-east-1a"}},
            "security_groups": {"web-sg": {"ingress": [{"protocol": "tcp", "ports": 8080,
                                                         "source": "10.1.0.0/16"}]}},
            "instances": {"web1": {"subnet": "a", "ip": WEB1, "security_groups": ["web-sg"],
                                   "run": "python3 -m http.server 8080",
                                   "ready": {"tcp": 8080}}},
            "load_balancers": {"web-nlb": {"type": "network", "subnets": ["a"], "listeners": [
                {"port": 80, "protocol": "TCP", "target_group": "web-tg"}]}},
            "target_groups": {"web-tg": {"protocol": "TCP", "port": 8080, "targets": ["web1"]}},
            "endpoint_services": {"web-svc": {"load_balancers": ["web-nlb"],
                                              "acceptance_required": False}}}}}


@pytest.fixture(scope="module")
def test_intervals():
    before = os.environ.get(TEST_INTERVALS_ENV)
    os.environ[TEST_INTERVALS_ENV] = "1"
    yield
    if before is None:
        del os.environ[TEST_INTERVALS_ENV]
    else:
        os.environ[TEST_INTERVALS_ENV] = before


running = lab_fixture(topology, scope="module")


@pytest.fixture(scope="module")
def lab(test_intervals, running):
    return running.state


def state():
    with open(os.path.join("/run/vpclab", LAB, "state.json")) as f:
        return json.load(f)


def records(target: str) -> list[dict]:
    """Every record of the flow log on `target`, parsed, with its ENI's file name."""
    rec = state()["flow_logs"][target]
    fields = parse_format(rec["format"])
    d = os.path.join(flowlogs_dir(LAB), rec["id"])
    out = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        with open(os.path.join(d, name)) as f:
            out += [dict(parse_line(fields, line.rstrip("\n")), file=name[:-4]) for line in f]
    return out


def settled(target: str, since: float) -> list[dict]:
    """The flow log's records once every interval up to `since` has been written."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = records(target)
        if any(int(r["start"]) >= since + 2 * INTERVAL for r in got):
            return got
        time.sleep(0.2)
    raise AssertionError(f"no records of {target} after {since} within 30 s")


def total(rs: list[dict], **match) -> tuple[int, int]:
    hits = [r for r in rs if all(r.get(k) == str(v) for k, v in match.items())]
    return sum(int(r["packets"]) for r in hits), sum(int(r["bytes"]) for r in hits)


def eni_of(lab_state: dict, vpc: str, kind: str) -> str:
    return next(e["eni_id"] for e in lab_state["hyperplane"]["enis"]
                if e["vpc"] == vpc and e["kind"] == kind)


def send_udp(port: int, count: int, size: int, sport: int) -> float:
    code = (f"import socket;s=socket.socket(2,2);s.bind(('0.0.0.0',{sport}))\n"
            f"for _ in range({count}): s.sendto(b'x'*{size},('{SINK}',{port}))")
    started = time.time()
    proc = run_in(LAB, "consumer/client", sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    return started


def test_udp_accepted_is_counted_exactly_on_both_instance_enis(lab):
    since = send_udp(9000, 7, 100, 41000)
    consumer = settled("consumer", since)
    tuple_ = dict(srcport=41000, dstport=9000, protocol=17, action="ACCEPT")
    assert total(consumer, srcaddr=CLIENT, dstaddr=SINK, **{"flow-direction": "egress"},
                 **tuple_) == (7, 7 * 128)
    assert total(consumer, srcaddr=CLIENT, dstaddr=SINK, **{"flow-direction": "ingress"},
                 **tuple_) == (7, 7 * 128)
    egress = [r for r in consumer if r["srcport"] == "41000" and r["flow-direction"] == "egress"]
    assert {(r["version"], r["traffic-path"], r["instance-id"][:2]) for r in egress} == {("5", "1", "i-")}
    # The instance's own flow log, in the default format: the same counts.
    client = settled("consumer/client", since)
    assert total(client, srcaddr=CLIENT, dstaddr=SINK, **tuple_) == (7, 7 * 128)
    assert {r["version"] for r in client} == {"2"}
    assert {r["log-status"] for r in client} <= {"OK", "NODATA"}


def test_a_security_group_refusal_is_a_reject_on_the_receiver(lab):
    since = send_udp(9001, 3, 50, 41001)
    consumer = settled("consumer", since)
    tuple_ = dict(srcaddr=CLIENT, dstaddr=SINK, srcport=41001, dstport=9001, protocol=17)
    assert total(consumer, action="REJECT", **{"flow-direction": "ingress"}, **tuple_) == (3, 3 * 78)
    # The sender's group let them out: an ACCEPT on its ENI, as AWS logs it.
    assert total(consumer, action="ACCEPT", **{"flow-direction": "egress"}, **tuple_) == (3, 3 * 78)
    assert total(consumer, action="ACCEPT", **{"flow-direction": "ingress"}, **tuple_) == (0, 0)


def test_a_privatelink_flow_on_the_endpoint_and_nlb_enis(lab):
    endpoint, nlb = eni_of(lab.data, "consumer", "vpce"), eni_of(lab.data, "provider", "nlb")
    ep_ip = next(e["ip"] for e in lab.data["hyperplane"]["enis"] if e["eni_id"] == endpoint)
    nlb_ip = next(e["ip"] for e in lab.data["hyperplane"]["enis"] if e["eni_id"] == nlb)
    since = time.time()
    proc = run_in(LAB, "consumer/client", "curl", "-s", "--local-port", "42000", "-o",
                  "/dev/null", "-w", "%{http_code}", f"http://{ep_ip}/")
    assert proc.stdout == "200", proc.stderr
    consumer, provider = settled("consumer", since), settled("provider", since)
    on_client = dict(file=lab_eni(lab.data, "consumer", "client"), srcport=42000, dstport=80)
    on_endpoint = dict(file=endpoint, srcport=42000, dstport=80)
    sent = total(consumer, **on_client, **{"flow-direction": "egress"})
    assert sent[0] >= 5
    # The engine's counts on the endpoint ENI are the kernel's on the client's ENI.
    assert total(consumer, **on_endpoint, **{"flow-direction": "ingress"}) == sent
    back = total(consumer, file=endpoint, srcport=80, dstport=42000, **{"flow-direction": "egress"})
    assert back == total(consumer, **dict(on_client, srcport=80, dstport=42000),
                         **{"flow-direction": "ingress"})
    ep_records = [r for r in consumer if r["file"] == endpoint and r["srcport"] == "42000"]
    assert {(r["srcaddr"], r["pkt-srcaddr"], r["dstaddr"], r["pkt-dstaddr"], r["instance-id"],
             r["tcp-flags"][:0]) for r in ep_records} == {(CLIENT, CLIENT, ep_ip, ep_ip, "-", "")}
    assert int(ep_records[0]["tcp-flags"]) & 2       # the SYN came in that interval
    # On the NLB ENI: the NLB's address toward the target, never the consumer's.
    to_target = [r for r in provider if r["file"] == nlb and r["dstaddr"] == WEB1
                 and r["dstport"] == "8080" and r["flow-direction"] == "egress"]
    assert to_target and {(r["srcaddr"], r["pkt-srcaddr"]) for r in to_target} == {(nlb_ip, nlb_ip)}
    assert not any(CLIENT == r["srcaddr"] or r["srcport"] == "42000" for r in provider)
    # Each NLB-to-target connection: the engine's count is the target ENI's.
    web1 = lab_eni(lab.data, "provider", "web1")
    for r in to_target:
        assert total(provider, file=web1, srcaddr=nlb_ip, srcport=r["srcport"],
                     **{"flow-direction": "ingress"}) == total(
            provider, file=nlb, srcport=r["srcport"], **{"flow-direction": "egress"})
    # Never logged: the endpoint ENI ↔ NLB ENI leg.
    assert not any(r["dstaddr"] == nlb_ip for r in consumer)


def test_dns_to_the_vpc_resolver_is_never_logged(lab):
    since = time.time()
    proc = run_in(LAB, "consumer/client", sys.executable, "-c",
                  "import socket; print(socket.gethostbyname('sink'))")
    assert proc.stdout.strip() == SINK, proc.stderr
    consumer = settled("consumer", since)
    assert not any(r["dstport"] == "53" or r["dstaddr"] == "10.0.0.2" for r in consumer)


def test_enable_disable_and_read_on_a_running_lab(lab):
    nlb = eni_of(lab.data, "provider", "nlb")
    env_ok = vpclab("flowlogs", "-l", LAB, "enable", "--interval", str(INTERVAL), nlb)
    assert env_ok.returncode == 0, env_ok.stderr
    assert nlb in state()["flow_logs"]
    bad = vpclab("flowlogs", "-l", LAB, "enable", "--format", "${srcaddr} ${nope}", nlb)
    assert bad.returncode != 0 and "unknown field 'nope'" in bad.stderr
    missing = vpclab("flowlogs", "-l", LAB, "enable", "provider/nope")
    assert missing.returncode != 0 and "provider/nope" in missing.stderr
    since = time.time()
    got = settled(nlb, since)
    assert {r["file"] for r in got} == {nlb}
    out = vpclab("flowlogs", "-l", LAB, "--json", check=True).stdout.splitlines()
    lines = [json.loads(line) for line in out]
    assert {l["target"] for l in lines} >= {"consumer", "provider", nlb}
    assert all(l["record"] is not None for l in lines)
    assert vpclab("flowlogs", "-l", LAB, "disable", nlb).returncode == 0
    assert nlb not in state()["flow_logs"]
    collector = [p for p in state()["processes"] if p["role"] == "flowlogs"]
    assert len(collector) == 1 and procs.alive(collector[0]["pid"], collector[0]["start"])


def lab_eni(lab_state: dict, vpc: str, instance: str) -> str:
    from dataplane.model.flow_logs import instance_eni_id
    return instance_eni_id(LAB, vpc, instance)


def test_the_collector_is_a_lab_process_enable_starts_and_the_last_disable_stops(vpclab_lab):
    """A lab without flow logs: `enable` starts the collector, the supervisor restarts
    it after a kill, the last `disable` stops it by its PID, `down` leaves nothing."""
    import signal
    doc = {"lab": TFL2, "vpcs": {"v": {"cidr": "10.2.0.0/16",
                                         "subnets": {"a": {"cidr": "10.2.1.0/24"}},
                                         "instances": {"i": {"subnet": "a"}}}}}
    vpclab_lab(doc)
    collector = lambda: [p for p in State.load(TFL2).data["processes"]  # noqa: E731
                         if p["role"] == "flowlogs"]
    assert collector() == []
    assert vpclab("flowlogs", "-l", TFL2, "enable", "--interval", "60", "v").returncode == 0
    [first] = collector()
    assert procs.alive(first["pid"], first["start"])
    os.kill(first["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not collector() or collector()[0]["pid"] == first["pid"]):
        time.sleep(0.1)
    [second] = collector()
    assert second["pid"] != first["pid"] and second["restarts"] == 1
    assert vpclab("flowlogs", "-l", TFL2, "disable", "v").returncode == 0
    assert collector() == [] and not procs.alive(second["pid"], second["start"])
    assert vpclab("flowlogs", "-l", TFL2, "disable", "v").returncode != 0
