"""What `vpclab` does when a verb goes wrong (dataplane/cli/main.py): no traceback reaches
a user. A reader that goes away ends the command with 0; a permission refused to a user
who is not root is "needs root", 1; anything unexpected is one line naming it, 1, and
VPCLAB_DEBUG=1 shows the traceback; an interrupt is 130. Verbs are replaced by functions
that fail on purpose; no root needed.
"""
from __future__ import annotations

import errno
import os
import pathlib
import subprocess
import sys

import pytest
from pyroute2 import NetlinkError

from dataplane.cli import main

REPO = pathlib.Path(__file__).resolve().parents[2]


def run_failing(monkeypatch, exc: BaseException, euid: int = 1000) -> int:
    def verb(args):
        raise exc
    monkeypatch.setattr(main.status, "run", verb)       # registered when parser() runs
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    return main.main(["status"])


@pytest.mark.parametrize("exc", [PermissionError(errno.EACCES, "Permission denied", "/run/x"),
                                 OSError(errno.EPERM, "Operation not permitted"),
                                 NetlinkError(errno.EPERM, "Operation not permitted")])
def test_refused_permission_without_root_is_needs_root(monkeypatch, capsys, exc) -> None:
    assert run_failing(monkeypatch, exc) == 1
    err = capsys.readouterr().err
    assert err.startswith("vpclab status: needs root") and err.count("\n") == 1


def test_refused_permission_as_root_is_not_called_needs_root(monkeypatch, capsys) -> None:
    assert run_failing(monkeypatch, PermissionError(errno.EACCES, "denied"), euid=0) == 1
    err = capsys.readouterr().err
    assert "needs root" not in err and "unexpected PermissionError" in err


def test_an_unexpected_exception_is_one_line_and_debug_shows_the_traceback(monkeypatch,
                                                                         capsys) -> None:
    monkeypatch.delenv("VPCLAB_DEBUG", raising=False)
    assert run_failing(monkeypatch, KeyError("vpcs")) == 1
    err = capsys.readouterr().err
    assert err == "vpclab status: unexpected KeyError: 'vpcs' (VPCLAB_DEBUG=1 shows the traceback)\n"
    monkeypatch.setenv("VPCLAB_DEBUG", "1")
    with pytest.raises(KeyError):
        run_failing(monkeypatch, KeyError("vpcs"))


def test_an_interrupt_is_130(monkeypatch, capsys) -> None:
    assert run_failing(monkeypatch, KeyboardInterrupt()) == 130
    assert capsys.readouterr().err == "vpclab status: interrupted\n"


FLOOD = """
import sys
from dataplane.cli import main
def flood(args):
    for _ in range(100000):
        print("x" * 100)
    return 0
main.status.run = flood
sys.exit(main.main(["status"]))
"""


def test_a_reader_that_goes_away_ends_the_command_quietly_with_0() -> None:
    """`vpclab … | head -1`: far more than a pipe's buffer, the reader leaves after a line."""
    proc = subprocess.run(["/bin/bash", "-c", f"{sys.executable} -c '{FLOOD}' | head -1; "
                           "echo rc=${PIPESTATUS[0]}"], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.stdout == "x" * 100 + "\nrc=0\n"
    assert proc.stderr == ""
