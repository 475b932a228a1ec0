"""Runs a benchmark suite of bench/ as the user does (`python -m bench.<suite> …` from the
checkout), bounded in time and killed by its PID if it overruns."""
from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]


def run_suite(module: str, args: list[str], timeout: float) -> tuple[int, int, str]:
    """(PID, exit code, output) of `python -m module args` (the PID names its namespaces)."""
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.pid, proc.returncode, out
