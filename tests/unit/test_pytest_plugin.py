"""The pytest plugin is found through its entry point wherever vpclab is installed,
and its fixtures are offered; a lab fixture of a bad file fails with the file's
problems (no root needed: nothing is made)."""
from __future__ import annotations


def test_plugin_is_active_and_offers_its_fixtures(pytester):
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*vpclab_lab*", "*A factory: `vpclab_lab(source, name=None)`*"])
    assert "dataplane.pytest_plugin" in pytester.runpytest_subprocess(
        "--trace-config", "-p", "no:cacheprovider").stdout.str()


def test_a_bad_topology_fails_the_fixture_naming_the_problem(pytester):
    pytester.makefile(".yaml", bad="lab: tpybad\nvpcs: {v: {cidr: 10.0.0.0/33}}\n")
    pytester.makepyfile(test_user='''
from dataplane.pytest_plugin import lab_fixture
lab = lab_fixture("bad.yaml")

def test_x(lab):
    pass
''')
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*vpcs.v.cidr*"])
