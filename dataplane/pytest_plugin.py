"""vpclab's pytest plugin: labs as fixtures, brought up for a test, a module or a
session, and always taken down — when the test fails, errors or is interrupted.

It is active wherever vpclab is installed (the `pytest11` entry point `vpclab` in
pyproject.toml). Two ways to get a lab:

* the fixture `vpclab_lab`, a factory for one test:

      def test_my_service(vpclab_lab):
          lab = vpclab_lab("examples/privatelink.yaml", name="t1")
          assert lab.exec("consumer/client", "curl -s http://10.0.1.50/").returncode == 0

* `lab_fixture(source, name=None, scope="module")`, a fixture of the scope you choose,
  declared once in a test module or conftest.py under the name you give it:

      from dataplane.pytest_plugin import lab_fixture
      shop = lab_fixture("examples/privatelink.yaml", name="tshop", scope="module")

      def test_one(shop): ...
      def test_two(shop): ...        # the same running lab

Every lab a fixture brings up is named for this run: `lab_name(name)`, which is
`<token>-<name>` (see "Names for this run" below), so two test runs on one machine never
meet. The lab's own name, or `name=`, is the part after the run's token; a test asks
the lab it got for its name (`lab.name`), or calls `lab_name("t1")` for the same name.

A source is a topology file's path (relative paths from pytest's rootdir), a `Lab`
(`dataplane.Lab` or `dataplane.model.Lab`), a topology as a plain dict (what the YAML
would give), or a function returning a Lab or a dict — called when
the fixture is set up, with the fixture's `request` if it takes an argument. `name=`
runs the lab under another name (two modules can run one file side by side).

Teardown is `Lab.down()`, then a check that nothing of the lab is left anywhere
(`dataplane.api.leftovers`): what is left is removed (`cleanup`) and the teardown
fails, naming it. pytest tears fixtures down after a failed test and after Ctrl-C too;
`up` itself rolls back when it fails. Labs need root, as `vpclab up` does: without it
the fixture fails saying so.

Names for this run. A run's token is three characters, a letter then two of [a-z0-9],
drawn when the plugin first needs it and kept in the environment (`VPCLAB_TEST_RUN`),
so that the pytest a test starts (pytester) and every `vpclab` it runs see the same.
`lab_name(base)` is `<token>-<base>`; when that is longer than a lab name may be (12),
`base` is cut to five characters and hex digits of its hash fill the name to 12 (three,
with a three-character token), so it stays distinct. Setting `VPCLAB_TEST_RUN`
beforehand chooses the token (1-4 characters, a letter first); setting it empty keeps
the names tests give. A lab a test makes without a fixture (`dataplane.Lab`, `vpclab up
--name`) takes its name from `lab_name` too. At the end of the session the outermost
pytest (the first of the process tree to start, `VPCLAB_TEST_RUN_OWNER`; not one a test
started, nor one run inline) removes every lab whose name carries the token — none,
when every test took its labs down — and the run fails naming them: labs of other runs
are never touched. A run that is killed leaves its labs up under their names: `vpclab
status` lists them, and `vpclab cleanup <lab>` removes one.
"""
from __future__ import annotations

import hashlib
import inspect
import os
import pathlib
import re
import secrets
import string
from typing import Any, Callable, Iterator, Union

import pytest

from . import lab as labmod
from .api import Lab, leftovers
from .model import Lab as ModelLab
from .model import names

Source = Union[str, os.PathLike, ModelLab, dict, Callable[..., Union[ModelLab, dict]]]

__all__ = ["draw_token", "lab_fixture", "lab_name", "run_labs", "run_token", "running_lab",
           "Source"]

RUN_ENV = "VPCLAB_TEST_RUN"
# The pid of the pytest that drew the token: only that one removes the run's labs.
OWNER_ENV = "VPCLAB_TEST_RUN_OWNER"
TOKEN_RE = re.compile(r"[a-z][a-z0-9]{0,3}\Z")
_HASHED_BASE = 5           # characters of a base kept when the name must be shortened
_owner: pytest.Config | None = None


def draw_token() -> str:
    """A new run's token: a letter, then two of [a-z0-9]."""
    # secrets, not random: a seeded `random` would give every run the same token.
    return secrets.choice(string.ascii_lowercase) + "".join(
        secrets.choice(string.ascii_lowercase + string.digits) for _ in range(2))


def run_token() -> str:
    """This run's token (module docstring); '' when VPCLAB_TEST_RUN is set empty."""
    token = os.environ.get(RUN_ENV)
    if token is None:
        token = os.environ[RUN_ENV] = draw_token()
    elif token and not TOKEN_RE.match(token):
        raise pytest.UsageError(f"{RUN_ENV}={token!r}: a run's token is 1-4 characters of "
                                f"[a-z0-9] starting with a letter (empty: labs keep the "
                                f"names tests give)")
    return token


def lab_name(base: str) -> str:
    """This run's name for the lab a test calls `base`: `<token>-<base>`, shortened with a
    hash when too long (module docstring). A name that already is this run's is kept."""
    token = run_token()
    if not token or base.startswith(token + "-"):
        return base
    name = f"{token}-{base}"
    if len(name) <= names.MAX_LAB_NAME:
        return name
    digest = hashlib.sha256(base.encode()).hexdigest()
    hashed = names.MAX_LAB_NAME - len(token) - 1 - _HASHED_BASE
    return f"{token}-{base[:_HASHED_BASE]}{digest[:hashed]}"


def run_labs() -> list[str]:
    """The labs this run's token names that anything is left of (`vpclab cleanup`'s view)."""
    token = run_token()
    return [lab for lab in labmod.known_labs() if token and lab.startswith(token + "-")]


def pytest_configure(config: pytest.Config) -> None:
    global _owner
    run_token()                     # a bad VPCLAB_TEST_RUN is a usage error, at once
    if OWNER_ENV not in os.environ:
        os.environ[OWNER_ENV] = str(os.getpid())
        _owner = config


def pytest_unconfigure(config: pytest.Config) -> None:
    global _owner
    if config is _owner:
        os.environ.pop(OWNER_ENV, None)
        _owner = None


@pytest.hookimpl(trylast=True)      # after the session's fixtures are torn down
def pytest_sessionfinish(session: pytest.Session) -> None:
    if session.config is not _owner or os.geteuid() != 0:
        return
    removed = {lab: labmod.cleanup(lab, everything=True).get(lab, []) for lab in run_labs()}
    if not removed:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for lab, done in removed.items():
        line = (f"vpclab: lab {lab} of this run was left behind by a test; removed "
                f"{len(done)} objects")
        if reporter is not None:
            reporter.write_line(line, red=True)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _resolve(source: Source, name: str | None, request: pytest.FixtureRequest) -> Lab:
    """The Lab of `source`, under this run's name for `name` (or for its own name)."""
    if callable(source) and not isinstance(source, ModelLab):
        takes_request = bool(inspect.signature(source).parameters)
        source = source(request) if takes_request else source()
    if isinstance(source, ModelLab):
        lab = source
    elif isinstance(source, dict):
        lab = Lab.from_document(source)
    else:
        path = pathlib.Path(source)
        if not path.is_absolute():
            path = pathlib.Path(request.config.rootpath) / path
        lab = Lab.from_file(path)
    wanted = lab_name(name if name is not None else lab.name)
    if isinstance(lab, Lab) and lab.name == wanted:
        return lab
    return Lab.from_model(lab, wanted)


def running_lab(lab: Lab) -> Iterator[Lab]:
    """Bring `lab` up, yield it, take it down and check nothing is left (a generator
    for a fixture's body)."""
    lab.up()
    try:
        yield lab
    finally:
        try:
            lab.down()
        finally:
            left = leftovers(lab.name)
            if left:
                labmod.cleanup(lab.name, everything=True)
        if left:
            pytest.fail(f"lab {lab.name}: `down` left {', '.join(left)} (now removed)",
                        pytrace=False)


def lab_fixture(source: Source, name: str | None = None, scope: str = "module",
                **fixture_args: Any):
    """A fixture (assign it to a module-level name) giving the running lab of `source`
    for `scope` ("function", "class", "module", "package", "session")."""
    @pytest.fixture(scope=scope, **fixture_args)
    def _lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
        yield from running_lab(_resolve(source, name, request))
    return _lab


@pytest.fixture
def vpclab_lab(request: pytest.FixtureRequest) -> Iterator[Callable[..., Lab]]:
    """A factory: `vpclab_lab(source, name=None)` brings a lab up for this test; every
    lab it made is taken down after the test, last first."""
    made: list[Iterator[Lab]] = []

    def make(source: Source, name: str | None = None) -> Lab:
        life = running_lab(_resolve(source, name, request))
        lab = next(life)
        made.append(life)
        return lab

    yield make
    errors = []
    for life in reversed(made):
        try:
            next(life, None)
        except BaseException as e:       # noqa: BLE001 (every lab goes down first)
            errors.append(e)
    if errors:
        raise errors[0]
