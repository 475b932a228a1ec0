"""`vpclab bench [--quick] [--runs N] [--paths …] [--flows …] [--out DIR] [--cleanup]`:
the end-to-end benchmark (bench/e2e): the forwarder against the kernel's NAT and
routing on one topology, as ratios measured in the same run; results.json, report.md
and plots under bench/results/<timestamp>/. The same as `make bench-e2e`.

The suite lives in the source tree (bench/ is not installed), so this verb runs from a
checkout; its arguments are bench.e2e's.
"""
from __future__ import annotations

import pathlib
import sys

from .common import CliError, EXIT_USAGE, need_root

REPO = pathlib.Path(__file__).resolve().parents[2]


def register(sub) -> None:
    p = sub.add_parser("bench", help="the end-to-end benchmark against the kernel (bench/e2e)",
                       add_help=False)
    p.add_argument("bench_args", nargs="*")
    p.set_defaults(func=run)


def load_suite():
    """bench.e2e from the checkout vpclab runs from, or a clear error."""
    if not (REPO / "bench" / "e2e" / "__main__.py").exists():
        raise CliError(f"the benchmark suite is not here ({REPO}/bench/e2e): "
                       f"vpclab bench runs from a source checkout", EXIT_USAGE)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bench.e2e import __main__ as suite
    return suite


def run(args) -> int:
    need_root()
    return load_suite().main(list(args.bench_args))
