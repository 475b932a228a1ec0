"""`vpclab cleanup [LAB] [--all]`: remove what crashed labs left behind.

Finds leftovers from the state files under /run/vpclab/ and from the ownership marks
(altnames) on namespaces and links, and removes them: processes, namespaces (with
their links and nftables tables), files. Without arguments it takes only labs whose
`up`/`down` never finished and marked namespaces no state mentions; a LAB name takes
that lab whatever its state; `--all` takes every vpclab lab, running ones too. Anything
without a vpclab mark or state entry is left alone. It also removes what killed
benchmark runs left (`vb-<pid>-…`/`vx-<pid>-…`/`vg-<pid>-…`/`bal-<pid>-…` namespaces whose process is
gone, netns_setup/scratch.py), and bench/apigw's labs `bgw-<pid>` whose run is gone.
"""
from __future__ import annotations

from netns_setup import scratch

from .. import lab as labmod
from .common import EXIT_OK, CliError, EXIT_USAGE, need_root


def register(sub) -> None:
    p = sub.add_parser("cleanup", help="remove leftovers of crashed labs")
    p.add_argument("lab", nargs="?")
    p.add_argument("--all", action="store_true", help="every vpclab lab, also running ones")
    p.set_defaults(func=run)


def run(args) -> int:
    need_root()
    if args.all and args.lab:
        raise CliError("give a LAB or --all, not both", EXIT_USAGE)
    report = labmod.cleanup(args.lab, everything=args.all)
    if not args.lab and not args.all:
        for lab in labmod.state_labs():
            if scratch.dead_bench_lab(lab) and lab not in report:
                report.update(labmod.cleanup(lab))
    stale = scratch.remove_runs(scratch.BENCH_RUN_ROOTS, only_dead=True)
    if stale:
        report["bench"] = [f"namespace {ns}" for ns in stale]
    if not report:
        print("nothing to clean up")
    for name, done in report.items():
        what = "killed benchmark runs" if name == "bench" else f"lab {name}"
        print(f"{what}: removed {len(done)} object{'s' * (len(done) != 1)}")
        for d in done:
            print(f"  {d}")
    return EXIT_OK
