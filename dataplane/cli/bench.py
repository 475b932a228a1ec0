"""`vpclab bench [e2e|apigw] [the suite's options]`: a benchmark suite of bench/.

* `vpclab bench [e2e] [--quick] [--runs N] [--paths …] [--flows …] [--out DIR] [--cleanup]`:
  the end-to-end benchmark (bench/e2e, the default): the forwarder against the kernel's
  NAT and routing on one topology, as ratios measured in the same run; results.json,
  report.md and plots under bench/results/<timestamp>/. The same as `make bench-e2e`.
* `vpclab bench apigw [--quick] [--scenarios proxy,lab] [--rounds N] [--out DIR] [--cleanup]`:
  API Gateway's front end against haproxy (bench/apigw), alone and in a lab.

The suites live in the source tree (bench/ is not installed), so this verb runs from a
checkout: `python -m bench.<suite>` as a child process with the checkout as its working
directory (vpclab never imports bench/); its arguments are the suite's.
"""
from __future__ import annotations

import pathlib
import subprocess
import sys

from .common import CliError, EXIT_USAGE, need_root

REPO = pathlib.Path(__file__).resolve().parents[2]


def register(sub) -> None:
    p = sub.add_parser("bench", help="a benchmark of bench/: e2e (the forwarder against the kernel, "
                       "the default) or apigw (API Gateway's front end against haproxy)",
                       add_help=False)
    p.add_argument("bench_args", nargs="*", metavar="ARG",
                   help="e2e or apigw, then the suite's own options (--quick, --out DIR, …)")
    p.set_defaults(func=run)


SUITES = ("e2e", "apigw")      # the first is the default


def suite_argv(bench_args: list[str]) -> list[str]:
    """The suite's command line (a first word naming a suite picks it), or a clear
    error when vpclab is not run from a checkout."""
    suite = SUITES[0]
    if bench_args and bench_args[0] in SUITES:
        suite, bench_args = bench_args[0], bench_args[1:]
    if not (REPO / "bench" / suite / "__main__.py").exists():
        raise CliError(f"the benchmark suite is not here ({REPO}/bench/{suite}): "
                       f"vpclab bench runs from a source checkout", EXIT_USAGE)
    return [sys.executable, "-m", f"bench.{suite}", *bench_args]


def run(args) -> int:
    need_root()
    return subprocess.call(suite_argv(list(args.bench_args)), cwd=REPO)
