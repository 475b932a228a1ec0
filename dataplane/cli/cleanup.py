"""`vpclab cleanup [LAB] [--all]`: remove what crashed labs left behind.

Finds leftovers from the state files under /run/vpclab/ and from the ownership marks
(altnames) on namespaces and links, and removes them: processes, namespaces (with
their links and nftables tables), files. Without arguments it takes only labs whose
`up`/`down` never finished and marked namespaces no state mentions; a LAB name takes
that lab whatever its state; `--all` takes every vpclab lab, running ones too. Anything
without a vpclab mark or state entry is left alone. It also removes what killed
benchmark runs left (`vb-<pid>-…`/`vx-<pid>-…`/`vg-<pid>-…`/`bal-<pid>-…` namespaces whose process is
gone, netns_setup/scratch.py), and bench/apigw's labs `bgw-<pid>` whose run is gone.
`--bench` takes only those benchmark leftovers (what a test of them runs: a bare
`cleanup` would also take other people's crashed labs). `--json` prints `{"version": 1, "removed": {LAB: [what, …], "bench": [namespace, …]}}`.
"""
from __future__ import annotations

from netns_setup import scratch

from .. import lab as labmod
from .common import EXIT_OK, CliError, EXIT_USAGE, add_lab_option, lab_name, need_root, print_json


def register(sub) -> None:
    p = sub.add_parser("cleanup", help="remove leftovers of crashed labs")
    add_lab_option(p, positional=True,
                   what="this lab's leftovers, whatever its state (default: every unfinished lab)")
    p.add_argument("--all", action="store_true", help="every vpclab lab, also running ones")
    p.add_argument("--bench", action="store_true",
                   help="only what killed benchmark runs left (their namespaces and labs)")
    p.add_argument("--json", action="store_true",
                   help="what was removed, as a JSON object (README: --json shapes)")
    p.set_defaults(func=run)


def run(args) -> int:
    need_root()
    lab = lab_name(args)
    if sum(map(bool, (lab, args.all, args.bench))) > 1:
        raise CliError("give one of LAB, --all and --bench", EXIT_USAGE)
    report = {} if args.bench else labmod.cleanup(lab, everything=args.all)
    if not lab and not args.all:
        for lab in labmod.state_labs():
            if scratch.dead_bench_lab(lab) and lab not in report:
                report.update(labmod.cleanup(lab))
    stale = scratch.remove_runs(scratch.BENCH_RUN_ROOTS, only_dead=True)
    if stale:
        report["bench"] = [f"namespace {ns}" for ns in stale]
    if args.json:
        print_json({"removed": report})
        return EXIT_OK
    if not report:
        print("nothing to clean up")
    for name, done in report.items():
        what = "killed benchmark runs" if name == "bench" else f"lab {name}"
        print(f"{what}: removed {len(done)} object{'s' * (len(done) != 1)}")
        for d in done:
            print(f"  {d}")
    return EXIT_OK
