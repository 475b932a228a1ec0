"""`python -m bench.e2e [--quick] [--out DIR] [--cleanup]` — see bench/e2e/__init__.py."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

from bench.e2e import report, suite, topo
from bench.e2e.paths import FIGURES, PATHS


def parse_io(text: str) -> dict[str, int]:
    """"busy_poll_us=50,slot_size=65536" → {"busy_poll_us": 50, "slot_size": 65536}."""
    from dataplane.forwarder.daemon import IO_SETTINGS
    out = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in IO_SETTINGS or not value.isdigit():
            raise ValueError(f"{item!r} is not NAME=INTEGER with NAME one of {', '.join(IO_SETTINGS)}")
        out[key] = int(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few seconds per figure, one run each")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3, quick 1)")
    parser.add_argument("--paths", help=f"comma-separated subset of {','.join(PATHS)}")
    parser.add_argument("--flows", help="comma-separated flow counts for the pps figure")
    parser.add_argument("--figures", help=f"comma-separated subset of {','.join(FIGURES)} "
                                          "(each path measures those of them it has)")
    parser.add_argument("--forwarder-io", metavar="K=V,...",
                        help="the vpclab forwarder's rings and polling, e.g. "
                             "busy_poll_us=50,slot_size=65536,ring_slots=512")
    parser.add_argument("--out", help="results directory (default bench/results/<timestamp>)")
    parser.add_argument("--cleanup", action="store_true",
                        help="remove every vb-* namespace (and the processes in it) and exit")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.e2e: needs root (it creates network namespaces)", file=sys.stderr)
        return 2
    if args.cleanup:
        removed = topo.cleanup()
        print(f"removed: {', '.join(removed) or 'nothing'}")
        return 0
    stale = topo.cleanup(only_dead=True)
    if stale:
        print(f"removed the leftovers of killed runs: {', '.join(stale)}")
    settings = suite.Settings.quick() if args.quick else suite.Settings()
    if args.runs:
        settings.runs = args.runs
    if args.paths:
        settings.paths = tuple(args.paths.split(","))
        unknown = [p for p in settings.paths if p not in PATHS]
        if unknown:
            parser.error(f"--paths: unknown {', '.join(unknown)}; use some of {', '.join(PATHS)}")
    if args.figures:
        settings.figures = tuple(args.figures.split(","))
        unknown = [f for f in settings.figures if f not in FIGURES]
        if unknown:
            parser.error(f"--figures: unknown {', '.join(unknown)}; use some of {', '.join(FIGURES)}")
    if args.flows:
        settings.pps_flows = tuple(int(x) for x in args.flows.split(","))
    if args.forwarder_io:
        try:
            settings.forwarder_io = parse_io(args.forwarder_io)
        except ValueError as exc:
            parser.error(f"--forwarder-io: {exc}")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = args.out or os.path.join(here, "results", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(out, exist_ok=True)
    topo.install_handlers()
    started = time.time()
    raw = suite.run(settings)
    results = report.build(raw, dataclasses.asdict(settings), started, quick=args.quick)
    report.write(results, out)
    print(f"bench.e2e: results in {out}")
    left = topo.leftovers()
    left = [n for n in left if n.startswith(f"vb-{os.getpid()}-") or n.startswith(f"link:vb-{os.getpid()}-")]
    if left:
        print(f"bench.e2e: left behind: {left}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
