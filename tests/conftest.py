"""Shared by every test directory: root-only tests say so instead of failing obscurely.

Tests marked `root` create network namespaces; they run as root in CI and never skip.
A developer without root gets one clear failure per test, and `make unit` runs the
rest.
"""
from __future__ import annotations

import os
import pathlib
import sys

import pytest

# bench/'s own Python is tested here too. `make sanitize` runs from tests/ so that the
# installed, sanitized dataplane is the one imported: the repository goes last on the
# path, where it serves `bench` and never shadows that dataplane.
REPO = str(pathlib.Path(__file__).resolve().parents[1])
if REPO not in sys.path:
    sys.path.append(REPO)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") and os.geteuid() != 0:
        pytest.fail("this test creates network namespaces and needs root (make unit runs the others)",
                    pytrace=False)
