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
"""
from __future__ import annotations

import inspect
import os
import pathlib
from typing import Any, Callable, Iterator, Union

import pytest

from . import lab as labmod
from .api import Lab, leftovers
from .model import Lab as ModelLab

Source = Union[str, os.PathLike, ModelLab, dict, Callable[..., Union[ModelLab, dict]]]

__all__ = ["lab_fixture", "running_lab", "Source"]


def _resolve(source: Source, name: str | None, request: pytest.FixtureRequest) -> Lab:
    if callable(source) and not isinstance(source, ModelLab):
        takes_request = bool(inspect.signature(source).parameters)
        source = source(request) if takes_request else source()
    if isinstance(source, Lab) and (name is None or name == source.name):
        return source
    if isinstance(source, ModelLab):
        return Lab.from_model(source, name)
    if isinstance(source, dict):
        return Lab.from_document(source, name)
    path = pathlib.Path(source)
    if not path.is_absolute():
        path = pathlib.Path(request.config.rootpath) / path
    return Lab.from_file(path, name)


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
