"""The pytest plugin, run by pytest itself (`pytester`, in a child pytest that finds the
plugin through its entry point, as a user's would): a lab of any scope is up for its
tests and down after them — also when a test fails or the run is interrupted — and
nothing of it is left; the labs of a run carry its token, and the run removes what its
tests left — only its own labs — and a killed run's labs can be found and removed.
Labs here are named `lab_name("tpy…")`.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from dataplane import Lab, leftovers
from dataplane import lab as labmod
from dataplane.pytest_plugin import OWNER_ENV, RUN_ENV, draw_token, lab_name

pytestmark = pytest.mark.root
REPO = str(pathlib.Path(__file__).resolve().parents[2])

BUILDER = '''
from dataplane import Lab

def two_instances(name):
    lab = Lab(name)
    v = lab.add_vpc("v", "10.0.0.0/16")
    v.add_subnet("a", "10.0.1.0/24")
    v.add_instance("web", "a", run="exec python3 -m dataplane.services.echo web 8080",
                   ready={"tcp": 8080})
    v.add_instance("client", "a")
    return lab
'''


def test_module_lab_is_shared_and_torn_down_after_a_failing_test(pytester):
    pytester.makepyfile(test_user=BUILDER + '''
from dataplane.pytest_plugin import lab_fixture

shop = lab_fixture(lambda: two_instances("tpyp1"), scope="module")
seen = []

def test_first(shop):
    seen.append(shop.status()["processes"][0]["pid"])
    r = shop.exec("v/client", "curl -s http://web:8080/x", check=True)
    assert '"path": "/x"' in r.stdout

def test_second_fails(shop):
    assert shop.status()["processes"][0]["pid"] == seen[0]     # the same lab
    assert shop.exec("v/client", "false").returncode == 0
''')
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    assert leftovers(lab_name("tpyp1")) == []


def test_factory_lab_from_a_file_goes_down_when_its_test_fails(pytester):
    pytester.makefile(".yaml", shop="""
lab: tpyp2
vpcs:
  v:
    cidr: 10.0.0.0/16
    subnets: {a: {cidr: 10.0.1.0/24}}
    instances: {client: {subnet: a}}
""")
    pytester.makepyfile(test_user='''
import os

def test_fails(vpclab_lab):
    lab = vpclab_lab("shop.yaml", name="tpyp2b")
    assert lab.name.endswith("-tpyp2b") and os.path.isdir(f"/run/vpclab/{lab.name}")
    raise RuntimeError("the user's test broke")
''')
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*RuntimeError: the user's test broke*"])
    assert leftovers(lab_name("tpyp2b")) == [] and leftovers(lab_name("tpyp2")) == []


def test_interrupted_run_still_takes_the_session_lab_down(pytester):
    pytester.makepyfile(test_user=BUILDER + '''
import os
from dataplane.pytest_plugin import lab_fixture

lab = lab_fixture(lambda: two_instances("tpyp3"), scope="session")

def test_interrupted(lab):
    assert os.path.isdir(f"/run/vpclab/{lab.name}")
    raise KeyboardInterrupt

def test_never_runs(lab):
    pass
''')
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    assert leftovers(lab_name("tpyp3")) == []


def another_run(monkeypatch) -> str:
    """The token of a pytest this test starts as a run of its own (it draws no token
    from this run, and it removes its own labs at its end)."""
    token = draw_token()
    while token == lab_name("x").split("-")[0]:
        token = draw_token()
    monkeypatch.setenv(RUN_ENV, token)
    monkeypatch.delenv(OWNER_ENV, raising=False)
    return token


def test_a_run_removes_the_labs_its_tests_left_and_no_other_runs(pytester, monkeypatch,
                                                                   vpclab_lab):
    ours = Lab("tpyp4")                                      # this run's: must stay up
    ours.add_vpc("v", "10.0.0.0/16").add_subnet("a", "10.0.1.0/24")
    ours = vpclab_lab(ours)
    token = another_run(monkeypatch)
    pytester.makepyfile(test_user=BUILDER + '''
from dataplane.pytest_plugin import lab_name

def test_leaks_a_lab():
    two_instances(lab_name("tpyleak")).up()                   # and never takes it down
''')
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED          # a lab was left behind
    result.stdout.fnmatch_lines([f"*vpclab: lab {token}-tpyleak of this run was left behind "
                                 f"by a test; removed * objects*"])
    assert leftovers(f"{token}-tpyleak") == []
    assert ours.status()["status"] == "up" and ours.name not in result.stdout.str()


def test_a_killed_runs_lab_is_listed_and_cleaned_up_by_name(pytester, monkeypatch):
    token = another_run(monkeypatch)
    pytester.makepyfile(test_user=BUILDER + '''
import os, signal
from dataplane.pytest_plugin import lab_fixture

lab = lab_fixture(lambda: two_instances("tpykill"), scope="session")

def test_killed(lab):
    os.kill(os.getpid(), signal.SIGKILL)                     # no teardown, no session end
''')
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    assert result.ret == -9
    name = f"{token}-tpykill"
    try:
        env = dict(os.environ, PYTHONPATH=REPO)
        cli = [sys.executable, "-m", "dataplane.cli.main"]
        every = json.loads(subprocess.run(cli + ["status", "--json"], capture_output=True,
                                          text=True, timeout=60, env=env).stdout)
        assert name in [lab["lab"] for lab in every["labs"]]
        clean = subprocess.run(cli + ["cleanup", "-l", name], capture_output=True, text=True,
                               timeout=120, env=env)
        assert clean.returncode == 0 and f"lab {name}: removed" in clean.stdout, clean
        assert leftovers(name) == []
    finally:
        labmod.cleanup(name, everything=True)
