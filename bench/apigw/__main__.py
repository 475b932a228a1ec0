"""`python -m bench.apigw [--quick] [--scenarios …] [--rounds N] [--seconds S] [--no-profile]
[--baseline DIR] [--out DIR] [--cleanup]` — see bench/apigw/__init__.py."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

from bench.e2e import topo
from dataplane.lab import state_labs
from netns_setup import kernel, scratch

from . import alb, lab, proxy, report
from .measure import Timing
from .tools import MAX_RUN_S, BenchError, write_wrk_script

SCENARIOS = ("proxy", "lab", "alb")


def settings(args: argparse.Namespace) -> tuple[Timing, int]:
    """(rounds and run lengths, profile seconds) from the options."""
    timing = Timing(rounds=1, warmup_s=1, seconds=1) if args.quick else Timing(rounds=3, warmup_s=2, seconds=10)
    if args.rounds:
        timing.rounds = args.rounds
    if args.seconds:
        timing.seconds = args.seconds
    profile_s = 0 if args.no_profile else (1 if args.quick else 5)
    return timing, profile_s


def cleanup() -> list[str]:
    """The namespaces and labs of runs that are gone."""
    removed = scratch.remove_runs((proxy.RUN_ROOT, alb.RUN_ROOT), only_dead=True)
    for name in state_labs():
        if scratch.dead_bench_lab(name):
            lab.take_down(name)
            removed.append(f"lab {name}")
    return removed


def leftovers() -> list[str]:
    mine = tuple(scratch.Scratch(root).prefix for root in (proxy.RUN_ROOT, alb.RUN_ROOT))
    return ([ns for ns in kernel.list_netns() if ns.startswith(mine)] +
            [f"lab {name}" for name in state_labs() if name == lab.lab_name()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.apigw", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of 1-second runs (a smoke test)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    parser.add_argument("--seconds", type=int, help=f"each measured run, 1-{MAX_RUN_S} (default 10, quick 1)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--baseline", metavar="DIR",
                        help="alb scenario: also measure a node running DIR's code (another checkout, "
                             "e.g. `git archive <commit> | tar -x -C DIR`), in the same rounds")
    parser.add_argument("--out", help="results directory (default bench/results/apigw-<timestamp>)")
    parser.add_argument("--cleanup", action="store_true",
                        help="remove what killed runs left (vg-/bal-<pid>-* namespaces, bgw-<pid> labs) and exit")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.apigw: needs root (it creates network namespaces and a lab)", file=sys.stderr)
        return 2
    if args.cleanup:
        print(f"removed: {', '.join(cleanup()) or 'nothing'}")
        return 0
    chosen = tuple(filter(None, args.scenarios.split(",")))
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown or not chosen:
        parser.error(f"--scenarios: unknown {', '.join(unknown) or '(none given)'}; use some of {','.join(SCENARIOS)}")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds: at least 1")
    if args.seconds is not None and not 1 <= args.seconds <= MAX_RUN_S:
        parser.error(f"--seconds: 1 to {MAX_RUN_S}")
    if args.baseline is not None and not os.path.isfile(
            os.path.join(args.baseline, "dataplane", "services", "alb", "__main__.py")):
        parser.error(f"--baseline: {args.baseline} holds no vpclab checkout "
                     "(no dataplane/services/alb/__main__.py)")
    timing, profile_s = settings(args)
    stale = cleanup()
    if stale:
        print(f"removed the leftovers of killed runs: {', '.join(stale)}")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = args.out or os.path.join(here, "results", time.strftime("apigw-%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(out, exist_ok=True)
    topo.install_handlers()
    started = time.time()
    workdir = tempfile.mkdtemp(prefix=f"{scratch.Scratch(proxy.RUN_ROOT).prefix}work-")
    results, errors = {}, []
    try:
        script = write_wrk_script(workdir)
        for name in chosen:
            try:
                if name == "proxy":
                    results[name] = proxy.run(workdir, out, timing, script, profile_s)
                elif name == "alb":
                    results[name] = alb.run(workdir, out, timing, script, profile_s,
                                            baseline=args.baseline)
                else:
                    results[name] = lab.run(workdir, timing, script)
            except BenchError as exc:
                errors.append(f"{name} scenario: {exc}")
                print(f"bench.apigw: {name} scenario failed: {exc}", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    res = report.build(results, {"scenarios": list(chosen), "rounds": timing.rounds,
                                 "warmup_s": timing.warmup_s, "seconds": timing.seconds,
                                 "profile_s": profile_s, "quick": args.quick}, started, errors)
    report.write(res, out)
    print(report.markdown(res).split("## Numbers")[0])
    print(f"bench.apigw: results in {out}")
    left = leftovers()
    if left:
        print(f"bench.apigw: left behind: {left}", file=sys.stderr)
        return 1
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
