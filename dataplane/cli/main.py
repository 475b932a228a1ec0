"""Entry point of the `vpclab` console script (see __init__.py for the verbs)."""
from __future__ import annotations

import argparse
import sys

from ..lab import LabError
from ..model import TopologyError
from . import (  # one module per verb; `bench` runs bench/e2e as a child process
    bench, capture, cleanup, cloudmap, down, endpoint, exec_, flows, logs, status, up, validate)
from . import graph
from .common import EXIT_FAILED, EXIT_USAGE, CliError

VERBS = (validate, up, down, status, exec_, capture, flows, logs, endpoint, cloudmap, bench,
         cleanup, graph)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vpclab", description="AWS VPC private connectivity, emulated in namespaces")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        verb.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `exec`/`capture`: everything after `--` (or after the target) belongs to the
    # command, even words that look like vpclab options.
    rest: list[str] = []
    if argv and argv[0] in ("exec", "capture") and "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    p = parser()
    if argv and argv[0] == "capture":
        args, extra = p.parse_known_args(argv)
        args.tcpdump_args = list(args.tcpdump_args) + extra + rest
    elif argv and argv[0] == "bench":    # every option is the suite's own
        args, extra = p.parse_known_args(argv[:1])
        args.bench_args = argv[1:] + rest
    else:
        args = p.parse_args(argv)
        if rest:
            args.cmd = list(getattr(args, "cmd", []) or []) + rest
    try:
        return args.func(args)
    except CliError as e:
        print(f"vpclab {args.verb}: {e}", file=sys.stderr)
        return e.code
    except TopologyError as e:
        print(f"vpclab {args.verb}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except LabError as e:
        print(f"vpclab {args.verb}: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"vpclab {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
