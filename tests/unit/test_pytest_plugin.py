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


def test_lab_names_carry_the_run_token_and_fit_a_lab_name(monkeypatch):
    from dataplane.model import check_document
    from dataplane.pytest_plugin import RUN_ENV, lab_name

    monkeypatch.setenv(RUN_ENV, "k7q")
    assert lab_name("t1") == "k7q-t1"
    assert lab_name("k7q-t1") == "k7q-t1"               # a name of this run is kept
    assert lab_name("t13cgex") == "k7q-t13cgex"          # 11: fits as it is
    long_names = {lab_name(b) for b in ("t13longnames", "t13longnamez", "t13cgexec")}
    assert len(long_names) == 3                          # shortened, yet distinct
    assert all(len(n) == 12 and n.startswith("k7q-t13") for n in long_names)
    assert all(lab_name(n) == n for n in long_names)
    for name in long_names | {"k7q-t1"}:                 # each is a valid lab name
        assert check_document({"lab": name, "vpcs": {"v": {"cidr": "10.0.0.0/16"}}}) == []
    monkeypatch.setenv(RUN_ENV, "")
    assert lab_name("t1") == "t1"                        # empty: the names tests give


def test_a_bad_run_token_is_a_usage_error_naming_the_variable(pytester, monkeypatch):
    monkeypatch.setenv("VPCLAB_TEST_RUN", "Bad_")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    assert result.ret == 4                               # pytest's usage error
    result.stderr.fnmatch_lines(["*VPCLAB_TEST_RUN='Bad_': a run's token is 1-4 characters*"])


def test_runs_draw_different_tokens(monkeypatch):
    from dataplane.pytest_plugin import TOKEN_RE, draw_token

    drawn = {draw_token() for _ in range(50)}
    assert len(drawn) > 40 and all(TOKEN_RE.match(t) and len(t) == 3 for t in drawn)
