"""`dataplane.Lab` as a script uses it: exec's result, check and timeout, a body that
raises, and a lab that exists already. Labs here are named `lab_name("tpy…")`."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from dataplane import ExecError, Lab, LabError, leftovers
from dataplane.pytest_plugin import lab_fixture, lab_name

pytestmark = pytest.mark.root


def small(base: str) -> Lab:
    lab = Lab(lab_name(base))
    v = lab.add_vpc("v", "10.0.0.0/16")
    v.add_subnet("a", "10.0.1.0/24")
    v.add_instance("one", "a")
    v.add_instance("two", "a")
    return lab


lab = lab_fixture(lambda: small("tpyapi"), scope="module")


def test_exec_returns_code_stdout_and_stderr(lab):
    r = lab.exec("v/one", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = lab.exec("v/two", ["ip", "-o", "-4", "addr", "show", "dev", "eth0"], check=True)
    assert "10.0.1.5/24" in r.stdout
    assert lab.exec("v/one", "getent hosts two").stdout.split()[0] == "10.0.1.5"
    assert lab.exec("v/one", "cat", input="to stdin").stdout == "to stdin"


def test_exec_check_raises_with_the_stderr(lab):
    with pytest.raises(ExecError) as err:
        lab.exec("v/one", "echo no such thing >&2; exit 4", check=True)
    assert err.value.returncode == 4 and "no such thing" in str(err.value)
    with pytest.raises(ExecError, match="has no instance 'nine'"):
        lab.exec("v/nine", "true", check=True)        # vpclab exec's own error, exit 2


def test_exec_timeout_kills_the_command(lab):
    with pytest.raises(subprocess.TimeoutExpired):
        lab.exec("v/one", "sleep 30", timeout=1)


def test_a_body_that_raises_still_takes_the_lab_down():
    with pytest.raises(ZeroDivisionError):
        with small("tpyraise") as running:
            assert os.path.isdir(f"/run/vpclab/{running.name}")
            assert running.status()["status"] == "up"
            1 / 0
    assert leftovers(lab_name("tpyraise")) == []


def test_a_lab_that_exists_is_refused_and_left_alone(lab):
    with pytest.raises(LabError, match=f"lab {lab.name} already exists"):
        small("tpyapi").up()
    assert lab.status()["status"] == "up"


def test_ctrl_c_in_the_body_takes_the_lab_down():
    with pytest.raises(KeyboardInterrupt):
        with small("tpyctrlc"):
            raise KeyboardInterrupt
    assert leftovers(lab_name("tpyctrlc")) == []


SIGNALLED = lab_name("tpysig")
SCRIPT = '''
import sys, time
from dataplane import Lab
lab = Lab(NAME)
v = lab.add_vpc("v", "10.0.0.0/16")
v.add_subnet("a", "10.0.1.0/24")
v.add_instance("one", "a", run="sleep 300", ready={"tcp": 9, "timeout": 60})
try:
    with lab:
        print("body ran", flush=True)
except KeyboardInterrupt as e:
    print("interrupted:", e, flush=True)
    sys.exit(130)
'''.replace("NAME", repr(SIGNALLED))


def test_sigint_while_up_waits_rolls_back_and_raises_keyboard_interrupt():
    """A script's `with Lab(...)` interrupted while `up` waits for a command that never
    gets ready: up stops, removes everything, and the script sees KeyboardInterrupt."""
    child = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = f"/run/vpclab/{SIGNALLED}/state.json"
            if os.path.exists(state) and '"role": "run"' in open(state).read():
                break
            time.sleep(0.05)
        time.sleep(0.5)                  # into the ready: wait
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert "body ran" not in out
    assert (f"interrupted: up of lab {SIGNALLED} interrupted during: ready: v/one (tcp 9)"
            in out)
    assert leftovers(SIGNALLED) == []
