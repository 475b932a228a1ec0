"""The CLI as scripts and pipes use it, on real labs (issue 15, "Scripts and pipes"): the
--json documents of status, flows, stats, endpoint and down; a pcap streamed to stdout
into a reader while traffic flows; the plain tcpdump command `status` gives for a
Hyperplane ENI; `exec` without a command; a reader that goes away; what a user who is not
root gets; and the exit status of a lab that is not up or has no forwarder. The labs are
named `lab_name("tcl…")` and removed whatever happens.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from dataplane.pytest_plugin import lab_fixture, lab_name

from .conftest import CLI, REPO, connect, endpoint_to_nlb, serve, vpclab

LAB, PLAIN, DOWNED = lab_name("tcl1"), lab_name("tcl2"), lab_name("tcl3")
NOBODY = 65534
ENV = dict(os.environ, PYTHONPATH=str(REPO))


# An endpoint in VPC c to an NLB in VPC p with one target, web (vpclab's pytest plugin).
pl = lab_fixture(endpoint_to_nlb(LAB, consumers={"client": {"ip": "10.0.1.10"}},
                                 providers={"web": {"ip": "10.1.1.10", "run": serve("web", 8080)}},
                                 target_group={"port": 8080, "targets": ["web"]}))

# One VPC, two instances, no Hyperplane (so no forwarder).
plain = lab_fixture({"lab": PLAIN, "region": "us-east-1", "vpcs": {"v": {
    "cidr": "10.5.0.0/16", "subnets": {"a": {"cidr": "10.5.1.0/24", "az": "us-east-1a"}},
    "security_groups": {"open": {"ingress": [{"protocol": "all", "source": "0.0.0.0/0"}]}},
    "instances": {n: {"subnet": "a", "security_groups": ["open"]} for n in ("a", "b")}}}})


def endpoint_ip(lab: str) -> str:
    st = json.loads(vpclab("status", "-l", lab, "--json", check=True).stdout)
    return st["hyperplane"]["endpoints"]["c/ep"]["enis"][0]["ip"]


def test_status_flows_stats_json_carry_version_and_the_lab(pl) -> None:
    st = json.loads(vpclab("status", "-l", LAB, "--json", check=True).stdout)
    assert st["version"] == 1 and st["lab"] == LAB and st["healthy"] is True
    assert st == {**json.loads(vpclab("status", LAB, "--json", check=True).stdout),
                  "tracking": st["tracking"]}      # the positional LAB is the same lab
    every = json.loads(vpclab("status", "--json").stdout)
    assert every["version"] == 1 and LAB in [r["lab"] for r in every["labs"]]
    assert connect(LAB, "c/client", endpoint_ip(LAB), 80) == "web"
    flows = json.loads(vpclab("flows", "-l", LAB, "--json", check=True).stdout)
    assert flows["version"] == 1 and flows["lab"] == LAB
    assert any(f["client"][0] == "10.0.1.10" and f["backend"] == ["10.1.1.10", 8080]
               for f in flows["flows"]), flows
    stats = json.loads(vpclab("stats", "-l", LAB, "--json", "--all", check=True).stdout)
    assert stats["version"] == 1 and stats["lab"] == LAB and stats["flows"] >= 1
    assert any(port["counters"]["rx_packets"] > 0 for port in stats["ports"].values())
    assert "sg_egress" in stats["drop_reasons"] and stats["drop_reasons"]["sg_egress"]


def test_a_reader_that_goes_away_is_no_error(pl) -> None:
    proc = subprocess.run(f"{' '.join(CLI)} flows -l {LAB} --json | head -1; "
                          f"echo rc=${{PIPESTATUS[0]}}", shell=True, executable="/bin/bash",
                          capture_output=True, text=True, timeout=60, cwd=REPO, env=ENV)
    assert proc.stdout.splitlines() == ["{", "rc=0"] and proc.stderr == ""


def test_capture_streams_pcap_to_a_reader_while_traffic_flows(pl) -> None:
    ip = endpoint_ip(LAB)
    capture = subprocess.Popen(CLI + ["capture", "-l", LAB, "c/client", "-w", "-", "-c", "6",
                                      "tcp port 80"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=ENV)
    reader = subprocess.Popen(["tcpdump", "-n", "-r", "-"], stdin=capture.stdout,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    capture.stdout.close()
    try:
        time.sleep(1.0)                     # tcpdump needs a moment to attach
        for _ in range(3):
            assert connect(LAB, "c/client", ip, 80) == "web"
        out, err = reader.communicate(timeout=30)
        assert capture.wait(timeout=30) == 0
    finally:
        capture.kill()
        reader.kill()
    packets = out.splitlines()
    assert len(packets) == 6, (out, err)
    assert all("10.0.1.10." in p and f"{ip}.80" in p for p in packets), out
    assert b"listening on eth0" in capture.stderr.read()      # messages: stderr only


def test_status_names_the_plain_tcpdump_command_of_each_hyperplane_eni(pl) -> None:
    text = vpclab("status", "-l", LAB, check=True).stdout
    commands = re.findall(r"capture: (ip netns exec \S+ tcpdump -ni eni-[0-9a-f]{11})$", text,
                          re.M)
    assert len(commands) == 2, text                 # the endpoint's ENI and the NLB node's
    ip = endpoint_ip(LAB)
    endpoint_command = next(c for c in commands if f"{LAB}.c " in c)
    tcpdump = subprocess.Popen(endpoint_command.split() + ["-c", "1", "tcp port 80"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert connect(LAB, "c/client", ip, 80) == "web"
        out, _ = tcpdump.communicate(timeout=20)
    finally:
        tcpdump.kill()
    assert f"> {ip}.80:" in out


@pytest.mark.parametrize("shell", ["/bin/sh", None])
def test_exec_without_a_command_opens_a_shell_reading_stdin(pl, shell) -> None:
    env = {k: v for k, v in ENV.items() if k != "SHELL"}
    if shell:
        env["SHELL"] = shell
    proc = subprocess.run(CLI + ["exec", "-l", LAB, "c/client"], input="echo hi; ip -o -4 addr "
                          "show eth0; exit 3\n", capture_output=True, text=True, timeout=30,
                          cwd=REPO, env=env)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.startswith("hi\n") and "10.0.1.10/24" in proc.stdout


def as_nobody(*args: str) -> subprocess.CompletedProcess:
    """vpclab run by user nobody (util-linux's setpriv drops root)."""
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           *CLI, *args], capture_output=True, text=True, timeout=60,
                          cwd="/", env=ENV)


@pytest.mark.parametrize("verb", [["down"], ["flows"], ["stats"], ["exec", "c/client", "--", "true"],
                                  ["capture", "c/client", "-c", "1"], ["endpoint", "accept", "c/ep"],
                                  ["cleanup"]])
def test_a_user_who_is_not_root_is_told_so(pl, verb) -> None:
    proc = as_nobody(*verb, "-l", LAB)
    assert proc.returncode == 1 and "needs root" in proc.stderr, proc
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_status_and_logs_need_no_root(pl) -> None:
    assert json.loads(as_nobody("status", "-l", LAB, "--json").stdout)["lab"] == LAB
    logs = as_nobody("logs", "-l", LAB, "api")          # the lab has no APIs: bad usage
    assert logs.returncode == 2 and "has no API" in logs.stderr


def test_endpoint_json_says_the_new_state_and_a_refused_change_is_1(pl) -> None:
    """Last of the tests on lab LAB: it rejects the endpoint."""
    again = vpclab("endpoint", "accept", "c/ep", "-l", LAB, "--json")
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr == "vpclab endpoint: endpoint c/ep is available; it cannot be accepted\n"
    unknown = vpclab("endpoint", "reject", "c/nosuch", "-l", LAB)
    assert unknown.returncode == 2 and "has no endpoint c/nosuch (endpoints: c/ep)" in unknown.stderr
    out = vpclab("endpoint", "reject", "c/ep", "-l", LAB, "--json", check=True)
    assert json.loads(out.stdout) == {"version": 1, "lab": LAB, "endpoint": "c/ep",
                                      "state": "rejected"}


def test_exit_statuses_of_a_missing_lab_a_lab_without_forwarder_and_bad_names(plain) -> None:
    none = lab_name("tclnone")
    missing = vpclab("status", "-l", none)
    assert missing.returncode == 1 and f"no lab {none}" in missing.stderr
    assert vpclab("flows", "-l", none).returncode == 1
    no_forwarder = vpclab("flows", "-l", PLAIN, "--json")
    assert no_forwarder.returncode == 1 and "no forwarder" in no_forwarder.stderr
    assert no_forwarder.stdout == ""
    bad = vpclab("exec", "-l", PLAIN, "v/nosuch", "--", "true")
    assert bad.returncode == 2 and "no instance 'nosuch'" in bad.stderr
    assert vpclab("status", PLAIN, "-l", lab_name("tclother")).returncode == 2
    assert vpclab("status", "-l", PLAIN).returncode == 0


def test_down_json_says_what_was_removed(tmp_path) -> None:
    doc = {"lab": DOWNED, "region": "us-east-1", "vpcs": {"v": {
        "cidr": "10.6.0.0/16", "subnets": {"a": {"cidr": "10.6.1.0/24", "az": "us-east-1a"}},
        "instances": {"a": {"subnet": "a", "run": "sleep 300"}}}}}
    from .conftest import write_topology
    from dataplane import lab as labmod
    path = write_topology(tmp_path, doc)
    try:
        vpclab("up", str(path), check=True)
        out = json.loads(vpclab("down", "-l", DOWNED, "--json", check=True).stdout)
    finally:
        labmod.cleanup(DOWNED, everything=True)
    assert out["version"] == 1 and out["failed"] == {}
    down = out["labs"][DOWNED]
    assert down["namespaces"] == 2 and f"namespace {DOWNED}.v.a" in down["removed"]
    assert any("sleep" in p or "run" in p for p in down["processes"]), down
