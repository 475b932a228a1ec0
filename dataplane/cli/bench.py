"""`vpclab bench [--quick] [--runs N] [--paths …] [--flows …] [--out DIR] [--cleanup]`:
the end-to-end benchmark (bench/e2e): the forwarder against the kernel's NAT and
routing on one topology, as ratios measured in the same run; results.json, report.md
and plots under bench/results/<timestamp>/. The same as `make bench-e2e`.

The suite lives in the source tree (bench/ is not installed), so this verb runs from a
checkout: `python -m bench.e2e` as a child process with the checkout as its working
directory (vpclab never imports bench/); its arguments are bench.e2e's.
"""
from __future__ import annotations

import pathlib
import subprocess
import sys

from .common import CliError, EXIT_USAGE, need_root

REPO = pathlib.Path(__file__).resolve().parents[2]


def register(sub) -> None:
    p = sub.add_parser("bench", help="the end-to-end benchmark against the kernel (bench/e2e)",
                       add_help=False)
    p.add_argument("bench_args", nargs="*")
    p.set_defaults(func=run)


def suite_argv(bench_args: list[str]) -> list[str]:
    """The suite's command line, or a clear error when vpclab is not run from a checkout."""
    if not (REPO / "bench" / "e2e" / "__main__.py").exists():
        raise CliError(f"the benchmark suite is not here ({REPO}/bench/e2e): "
                       f"vpclab bench runs from a source checkout", EXIT_USAGE)
    return [sys.executable, "-m", "bench.e2e", *bench_args]


def run(args) -> int:
    need_root()
    return subprocess.call(suite_argv(list(args.bench_args)), cwd=REPO)
