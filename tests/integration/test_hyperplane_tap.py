"""`vpclab capture --hyperplane` on a live PrivateLink lab (issue 14, taps inside the
Hyperplane): one connection captured from the forwarder's own tap shows both sides of the
translation on their ENIs, and a SYN to a port no listener has shows as dropped with its
reason; the tap is off again once the reader ends, by Ctrl-C or by being killed.
Labs are named `ttp…` and removed whatever happens.
"""
from __future__ import annotations

import signal
import subprocess
import time

import pytest

from dataplane import lab as labmod
from dataplane.forwarder import control, tap
from dataplane.pytest_plugin import lab_name

from .conftest import CLI, connect, endpoint_to_nlb, serve, vpclab, write_topology

LAB = lab_name("ttp1")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    doc = endpoint_to_nlb(LAB, {"client": {}}, {"web": {"run": serve("web", 8080)}},
                          {"protocol": "TCP", "port": 8080, "targets": ["web"]})
    try:
        vpclab("up", str(write_topology(tmp_path_factory.mktemp("ttp"), doc)), check=True)
        st = labmod.status(LAB)
        hp = st["hyperplane"]
        yield {"ep": hp["endpoints"]["c/ep"]["enis"][0], "nlb": hp["load_balancers"]["p/nlb"]["enis"][0],
               "client": st["vpcs"]["c"]["instances"]["client"]["ip"],
               "web": st["vpcs"]["p"]["instances"]["web"]["ip"], "socket": hp["socket"]}
    finally:
        labmod.cleanup(LAB, everything=True)


def start_capture(*args: str) -> subprocess.Popen:
    """A capture in the background, returned once the tap is on (its first stderr line)."""
    proc = subprocess.Popen(CLI + ["capture", "-l", LAB, "--hyperplane", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stderr.readline().decode()
    assert line.startswith("capturing the Hyperplane"), line + proc.stderr.read().decode()
    return proc


def tap_is_off(sock: str) -> bool:
    """Whether a new tap session may start (then it is stopped again): the previous one ended."""
    try:
        session = control.call(sock, "tap", action="start")["session"]
    except control.ControlError as exc:
        assert "already running" in str(exc)
        return False
    control.call(sock, "tap", action="stop", session=session)
    return True


def tshark_rows(path) -> list[dict[str, str]]:
    fields = ["frame.interface_name", "frame.comment", "frame.packet_flags_direction",
              "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "tcp.flags.syn", "tcp.flags.ack"]
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|",
                          *sum((["-e", f] for f in fields), [])],
                         capture_output=True, text=True, check=True).stdout
    return [dict(zip(fields, line.split("|"))) for line in out.splitlines()]


def test_a_connection_and_a_drop_in_the_pcapng(lab, tmp_path) -> None:
    ep, nlb = lab["ep"], lab["nlb"]
    pcap = tmp_path / "hp.pcapng"
    proc = start_capture("-w", str(pcap))
    try:
        assert connect(LAB, "c/client", ep["ip"], 80) == "web"
        assert connect(LAB, "c/client", ep["ip"], 81, wait=1.0) == "timeout"   # no listener
        time.sleep(0.5)                       # a poll or two: the reader takes the last records
    finally:
        proc.send_signal(signal.SIGINT)       # Ctrl-C
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()
    assert "frame(s) captured" in err.decode() and tap_is_off(lab["socket"])
    rows = tshark_rows(pcap)

    def where(eni: dict, comment: str, **fields: str) -> list[dict]:
        return [r for r in rows if r["frame.interface_name"] == eni["eni_id"]
                and r["frame.comment"] == comment and all(r[k] == v for k, v in fields.items())]

    # The client's SYN as it arrived on the endpoint ENI, and as it left the NLB's ENI:
    # (client, cport, endpoint, 80) ⇒ (NLB address, SNAT port, target, 8080).
    syn_in = where(ep, f"eni={ep['eni_id']} stage=in verdict=forward drop=none",
                   **{"ip.src": lab["client"], "ip.dst": ep["ip"], "tcp.dstport": "80",
                      "tcp.flags.syn": "1", "tcp.flags.ack": "0",
                      "frame.packet_flags_direction": "0x00000001"})
    syn_out = where(nlb, f"eni={nlb['eni_id']} stage=out verdict=forward drop=none",
                    **{"ip.src": nlb["ip"], "ip.dst": lab["web"], "tcp.dstport": "8080",
                       "tcp.flags.syn": "1", "tcp.flags.ack": "0",
                       "frame.packet_flags_direction": "0x00000002"})
    assert len(syn_in) == 1 and len(syn_out) == 1
    snat_port = syn_out[0]["tcp.srcport"]
    # The target's SYN-ACK, in on the NLB's ENI, out of the endpoint's toward the client.
    assert where(nlb, f"eni={nlb['eni_id']} stage=in verdict=forward drop=none",
                 **{"ip.src": lab["web"], "tcp.srcport": "8080", "ip.dst": nlb["ip"],
                    "tcp.dstport": snat_port, "tcp.flags.syn": "1", "tcp.flags.ack": "1"})
    assert where(ep, f"eni={ep['eni_id']} stage=out verdict=forward drop=none",
                 **{"ip.src": ep["ip"], "tcp.srcport": "80", "ip.dst": lab["client"],
                    "tcp.dstport": syn_in[0]["tcp.srcport"], "tcp.flags.syn": "1"})
    # The SYN to port 81: in only, dropped, the reason named (the client retries it).
    dropped = where(ep, f"eni={ep['eni_id']} stage=in verdict=drop drop=no_service",
                    **{"ip.dst": ep["ip"], "tcp.dstport": "81", "tcp.flags.syn": "1"})
    assert dropped and not [r for r in rows if r["tcp.dstport"] == "81" and "stage=out" in r["frame.comment"]]


def test_text_lines_count_and_one_eni(lab) -> None:
    """One ENI keeps the frames that arrive on it or leave by it; `--stage in` shows each as
    it arrived (the target's SYN-ACK on the NLB's ENI, since it leaves by the endpoint's)."""
    ep, nlb = lab["ep"], lab["nlb"]
    proc = start_capture(ep["eni_id"], "--stage", "in", "-c", "6", "--duration", "20")
    try:
        assert connect(LAB, "c/client", ep["ip"], 80) == "web"
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    lines = out.decode().splitlines()
    assert proc.returncode == 0 and len(lines) == 6, err.decode()
    assert all(line.split()[1] in (ep["eni_id"], nlb["eni_id"]) and line.split()[2] == "in"
               and "stage=in" in line for line in lines)
    syn = [line for line in lines if f"> {ep['ip']}.80: Flags [S]," in line]
    assert len(syn) == 1 and f" {ep['eni_id']} in  IP {lab['client']}." in syn[0]
    assert syn[0].endswith(f"| eni={ep['eni_id']} stage=in verdict=forward drop=none")
    synack = [line for line in lines if "Flags [S.]" in line]
    assert len(synack) == 1 and f" {nlb['eni_id']} in  IP {lab['web']}.8080 > " in synack[0]
    assert tap_is_off(lab["socket"])


def test_a_reader_killed_outright_leaves_no_tap_on(lab) -> None:
    proc = start_capture("-w", "/dev/null")
    proc.kill()                                # no chance to stop the tap itself
    proc.wait(timeout=10)
    assert not tap_is_off(lab["socket"])       # still on: its lease has not run out
    deadline = time.monotonic() + tap.LEASE_S + 3
    while not tap_is_off(lab["socket"]):
        assert time.monotonic() < deadline, "the forwarder kept the tap of a reader that is gone"
        time.sleep(0.5)


def test_a_name_the_forwarder_does_not_have_is_refused(lab) -> None:
    proc = vpclab("capture", "-l", LAB, "--hyperplane", "eni-nosuch", "-c", "1")
    assert proc.returncode == 1 and "has no port 'eni-nosuch'" in proc.stderr
    proc = vpclab("capture", "-l", LAB, "--hyperplane", "-c", "1", "tcp")
    assert proc.returncode == 2 and "no other tcpdump arguments" in proc.stderr
