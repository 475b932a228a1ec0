"""The forwarder as a process: spec in, control socket out.

Starts `python -m dataplane.forwarder.daemon` on minilab's namespaces, carries real TCP
through it, reads `flows` and `stats` over the control socket, changes tables with
`apply` while it runs (flows of an unchanged listener survive; a disabled service
passes nothing), and stops it with SIGTERM and with SIGKILL: nothing of it may remain
but, after SIGKILL, the socket file the lab's cleanup removes.
"""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from . import minilab
from dataplane.forwarder.control import ControlError, call
from dataplane.forwarder.io import max_frame
from dataplane.forwarder.show import format_flows, format_stats
from .minilab import CLI, CLIENT, EP_IP, HP, NLB_IP, TARGET_IP, in_ns, start_server

pytestmark = pytest.mark.root


def spec() -> dict:
    return {
        "flow_capacity": 1024,
        "ports": minilab.port_specs(),
        "services": [{"name": "vpce-test/80", "in_port": 0, "out_port": 1, "vip": EP_IP,
                      "vport": 80, "proto": "tcp", "mtu": 8500, "mss_clamp": 8460,
                      "rst_on_miss": True, "hash_tcp_seq": True,
                      "backends": [{"ip": TARGET_IP, "port": 8080}]}],
    }


@pytest.fixture
def daemon(tmp_path):
    minilab.create()
    sock = str(tmp_path / "forwarder.sock")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec()))
    proc = subprocess.Popen([sys.executable, "-m", "dataplane.forwarder.daemon", "--spec", str(spec_file),
                             "--socket", sock, "--netns", HP], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on" in line, line
        yield proc, sock
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        minilab.remove()


def connect_once(size: int = 1000) -> str:
    srv = start_server(1)
    try:
        out = in_ns(CLI, sys.executable, "-c", CLIENT, EP_IP, str(size))
        assert out.returncode == 0, out.stderr
        return out.stdout.split()[0]
    finally:
        srv.wait(timeout=30)


def test_traffic_flows_and_stats_over_the_control_socket(daemon) -> None:
    proc, sock = daemon
    assert call(sock, "ping")["pid"] == proc.pid
    assert connect_once(200_000) == NLB_IP
    (flow,) = call(sock, "flows")["flows"]
    assert flow["client"][0] == minilab.CLIENT_IP and flow["vip"] == [EP_IP, 80]
    assert flow["snat"][0] == NLB_IP and flow["backend"] == [TARGET_IP, 8080]
    assert flow["in_port_name"] == "eni0" and flow["out_port_name"] == "eni1"
    assert flow["packets"][0] > 20 and flow["bytes"][0] > 200_000
    stats = call(sock, "stats")
    assert stats["ports"]["eni0"]["counters"]["flows_created"] == 1
    # The loop thread runs real-time, as the kernel's packet processing would.
    assert stats["loop"] == "SCHED_FIFO 10"
    policies = [os.sched_getscheduler(int(t)) for t in os.listdir(f"/proc/{proc.pid}/task")]
    assert policies.count(os.SCHED_FIFO) == 1  # the loop's thread, and only it
    # GSO frames: fewer frames than the flow's packets, at most a slot's worth each
    assert 200_000 // max_frame() <= stats["ports"]["eni1"]["io"]["tx_frames"] <= flow["packets"][0]
    with pytest.raises(ControlError, match="unknown command 'frobnicate'"):
        call(sock, "frobnicate")
    # What `vpclab flows` and `vpclab stats` print.
    table = format_flows(call(sock, "flows")["flows"])
    assert f"{EP_IP}:80" in table and f"⇒ {NLB_IP}:" in table and f"{TARGET_IP}:8080" in table
    assert table.endswith("1 flow(s)")
    text = format_stats(call(sock, "stats"))
    assert text.startswith("flows 1 of 1024") and "eni0" in text and "eni1" in text


def test_apply_changes_tables_without_cutting_surviving_flows(daemon) -> None:
    _, sock = daemon
    connect_once()
    new = spec()
    new["services"][0]["backends"].append({"ip": "10.0.2.21", "port": 8080, "weight": 0})
    assert call(sock, "apply", spec=new)["changes"]["updated"] == ["vpce-test/80"]
    assert len(call(sock, "flows")["flows"]) == 1    # same listener: the flow stays
    disabled = copy.deepcopy(new)
    disabled["services"][0]["disabled"] = True        # the endpoint is rejected
    call(sock, "apply", spec=disabled)
    out = in_ns(CLI, sys.executable, "-c", f"import socket; socket.create_connection(('{EP_IP}', 80), timeout=1)")
    assert "timed out" in out.stderr
    moved = copy.deepcopy(new)
    moved["services"][0]["vport"] = 81                # a new listener replaces the old one
    changes = call(sock, "apply", spec=moved)["changes"]
    assert changes["removed"] == ["vpce-test/80"] and changes["added"] == ["vpce-test/80"]
    assert call(sock, "flows")["flows"] == []
    bad = copy.deepcopy(new)
    bad["services"][0]["proto"] = "sctp"
    with pytest.raises(ControlError, match="unknown protocol 'sctp'"):
        call(sock, "apply", spec=bad)
    # A spec that cannot be read is refused whole, naming the field; the tables stay as
    # the failed sctp apply left them (the old listener removed, the new one not added).
    unreadable = copy.deepcopy(new)
    unreadable["services"][0]["backends"][0]["ip"] = "10.0.2.300"
    with pytest.raises(ControlError, match=r"services\[0\].backends\[0\].ip: '10.0.2.300' is not an IPv4"):
        call(sock, "apply", spec=unreadable)
    assert call(sock, "apply", spec=new)["changes"] == {"ports": [], "removed": [],
                                                        "added": ["vpce-test/80"], "updated": []}


def test_clock_offset_ages_flows(daemon) -> None:
    _, sock = daemon
    connect_once()
    call(sock, "clock", offset_s=3600)
    deadline = time.monotonic() + 5
    while call(sock, "flows")["flows"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert call(sock, "flows")["flows"] == []
    assert call(sock, "stats")["ports"]["eni0"]["counters"]["flows_expired"] == 1


@pytest.mark.parametrize("how", ["stop", "sigterm"])
def test_clean_stop_removes_the_socket(daemon, how: str) -> None:
    proc, sock = daemon
    if how == "stop":
        call(sock, "stop")
    else:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert not os.path.exists(sock)


def test_sigkill_leaves_only_the_socket_file(daemon) -> None:
    proc, sock = daemon
    proc.kill()
    proc.wait(timeout=10)
    with pytest.raises(ControlError, match="no forwarder is listening"):
        call(sock, "ping")


def test_bad_spec_is_refused_with_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "spec.json"
    bad.write_text(json.dumps({"ports": [], "services": [{"name": "x", "in_port": 0}]}))
    out = subprocess.run([sys.executable, "-m", "dataplane.forwarder.daemon", "--spec", str(bad),
                          "--socket", str(tmp_path / "s")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "services[0]: 'out_port' is missing" in out.stderr
    assert not (tmp_path / "s").exists()
