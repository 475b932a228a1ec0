"""`ready:` of `run:` commands and the states of processes, through the Python API.

`up` waits for each declared check (a TCP connection accepted, an HTTP status below
400) and fails, naming the instance and leaving nothing, when a command is never ready
or exits first; `status` shows an exited command with its exit code. Labs here are
named `lab_name("tpy…")`.
"""
from __future__ import annotations

import json
import time

import pytest

from dataplane import Lab, LabError, leftovers
from dataplane.pytest_plugin import lab_name

from .conftest import vpclab

pytestmark = pytest.mark.root
ECHO = "python3 -m dataplane.services.echo"


def one_instance(base: str, run: str, ready: dict | None = None) -> Lab:
    lab = Lab(lab_name(base))
    v = lab.add_vpc("v", "10.0.0.0/16")
    v.add_subnet("a", "10.0.1.0/24")
    v.add_instance("web", "a", run=run, ready=ready)
    v.add_instance("client", "a")
    return lab


def test_ready_tcp_waits_for_the_listener():
    # The server listens only after 1.5 s: without the wait, the first request fails.
    with one_instance("tpyrt", f"sleep 1.5; exec {ECHO} web 8080", {"tcp": 8080}) as lab:
        r = lab.exec("v/client", "curl -sS --max-time 5 http://web:8080/first", check=True)
        assert json.loads(r.stdout)["path"] == "/first"
        [p] = [p for p in lab.status()["processes"] if p["role"] == "run"]
        assert (p["state"], p["exit_code"]) == ("running", None)


def test_ready_http_waits_for_a_good_status():
    run = f"sleep 1.5; exec {ECHO} web 8081"
    with one_instance("tpyrh", run, {"http": "/healthz", "port": 8081}) as lab:
        r = lab.exec("v/client", ["curl", "-sS", "--max-time", "5", "http://web:8081/healthz"])
        assert (r.returncode, r.stdout) == (0, "web")


def test_never_ready_fails_up_naming_the_instance_and_leaves_nothing():
    lab = one_instance("tpynr", f"exec {ECHO} web 8082 503",
                       {"http": "/healthz", "port": 8082, "timeout": 2})
    with pytest.raises(LabError) as err:
        with lab:
            pytest.fail("the body ran although up failed")
    assert "the run: command of v/web was not ready within 2 s" in str(err.value)
    assert "HTTP 503" in str(err.value) and "everything it made was removed" in str(err.value)
    assert leftovers(lab.name) == []


def test_exit_before_ready_fails_up_with_the_exit_code(tmp_path):
    lab = one_instance("tpyex", "echo starting; exit 3", {"tcp": 8083})
    path = tmp_path / "lab.yaml"
    path.write_text(json.dumps(lab.to_dict()))
    out = vpclab("up", "-q", str(path))
    assert out.returncode == 1
    assert "the run: command of v/web exited with code 3 before it was ready (tcp 8083)" \
        in out.stderr and "starting" in out.stderr
    assert leftovers(lab.name) == []


def test_status_shows_an_exited_command_and_its_code():
    with one_instance("tpyst", "sleep 0.2; exit 7") as lab:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            [p] = [p for p in lab.status()["processes"] if p["role"] == "run"]
            if p["state"] != "running":
                break
            time.sleep(0.05)
        assert (p["state"], p["exit_code"], p["running"]) == ("exited", 7, False)
        text = vpclab("status", lab.name)
        assert text.returncode == 1          # degraded: a process of the lab has ended
        assert f"run v/web: pid {p['pid']} EXITED (code 7)" in text.stdout
        assert f"run process {p['pid']} (v/web) exited with code 7" in text.stdout
