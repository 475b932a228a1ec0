"""The pytest plugin, run by pytest itself (`pytester`, in a child pytest that finds the
plugin through its entry point, as a user's would): a lab of any scope is up for its
tests and down after them — also when a test fails or the run is interrupted — and
nothing of it is left. Labs here are named `tpy…`.
"""
from __future__ import annotations

import pytest

from dataplane import leftovers

pytestmark = pytest.mark.root

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
    assert leftovers("tpyp1") == []


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
    assert os.path.isdir("/run/vpclab/tpyp2b")
    raise RuntimeError("the user's test broke")
''')
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*RuntimeError: the user's test broke*"])
    assert leftovers("tpyp2b") == [] and leftovers("tpyp2") == []


def test_interrupted_run_still_takes_the_session_lab_down(pytester):
    pytester.makepyfile(test_user=BUILDER + '''
import os
from dataplane.pytest_plugin import lab_fixture

lab = lab_fixture(lambda: two_instances("tpyp3"), scope="session")

def test_interrupted(lab):
    assert os.path.isdir("/run/vpclab/tpyp3")
    raise KeyboardInterrupt

def test_never_runs(lab):
    pass
''')
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    assert leftovers("tpyp3") == []
