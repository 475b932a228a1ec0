"""Entry point of the `vpclab` console script (see __init__.py for the verbs).

Every verb runs inside `main()`, which is the one place that turns what went wrong into a
message on stderr and an exit status (the table in __init__.py and the README): no
traceback ever reaches a user. A reader that goes away (`vpclab flows --json | head -1`)
ends the command quietly with 0; a permission refused to a user who is not root is
"needs root", exit 1; anything unexpected is one line naming the exception, exit 1, and
`VPCLAB_DEBUG=1` shows its traceback instead.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
from importlib import metadata

from ..lab import LabError
from ..model import TopologyError
from . import (  # one module per verb; `bench` runs bench/e2e as a child process
    bench, capture, cleanup, cloudmap, down, endpoint, exec_, flows, logs, status, up, validate)
from . import flowlogs, graph, trace
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CliError

VERBS = (validate, up, down, status, exec_, capture, flows, logs, endpoint, cloudmap, bench,
         cleanup, graph, trace, flowlogs)
DEBUG_ENV = "VPCLAB_DEBUG"      # =1: an unexpected exception shows its traceback


def version() -> str:
    """The installed package's version (pyproject.toml), or a note when vpclab runs from a
    source tree that was never installed."""
    try:
        return metadata.version("vpclab")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: run make setup)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vpclab", description="AWS VPC private connectivity, emulated in namespaces")
    p.add_argument("--version", action="version", version=f"vpclab {version()}",
                   help="print vpclab's version and exit")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        verb.register(sub)
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    """The verb's arguments. `exec`/`capture`: everything after `--` (or after the target)
    belongs to the command, even words that look like vpclab options; `bench`: every
    option is the suite's own."""
    rest: list[str] = []
    if argv and argv[0] in ("exec", "capture") and "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    p = parser()
    if argv and argv[0] == "capture":
        args, extra = p.parse_known_args(argv)
        args.tcpdump_args = list(args.tcpdump_args) + extra + rest
    elif argv and argv[0] == "bench":
        args, extra = p.parse_known_args(argv[:1])
        args.bench_args = argv[1:] + rest
    else:
        args = p.parse_args(argv)
        if rest:
            args.cmd = list(getattr(args, "cmd", []) or []) + rest
    return args


def _refused_for_want_of_root(exc: BaseException) -> bool:
    """A permission the kernel refuses to a user who is not root: EPERM/EACCES from a
    system call, a netlink request (pyroute2's NetlinkError carries the errno as `code`)
    or a file under /run/vpclab."""
    if os.geteuid() == 0:
        return False
    code = getattr(exc, "errno", None) or getattr(exc, "code", None)
    return isinstance(exc, PermissionError) or code in (errno.EPERM, errno.EACCES)


def _reader_gone() -> int:
    """stdout's reader has closed it (`| head`): point stdout at /dev/null so that the
    interpreter's final flush does not fail again, and end as a finished command."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = "vpclab"
    try:
        args = parse(argv)
        verb = f"vpclab {args.verb}"
        code = args.func(args)
        sys.stdout.flush()      # a reader that is gone shows here, inside the try
        return code
    except BrokenPipeError:
        return _reader_gone()
    except CliError as e:
        print(f"{verb}: {e}", file=sys.stderr)
        return e.code
    except TopologyError as e:
        print(f"{verb}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except LabError as e:
        print(f"{verb}: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{verb}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 — the last line of defence, named below
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        if _refused_for_want_of_root(e):
            print(f"{verb}: needs root ({e}); run it with sudo", file=sys.stderr)
            return EXIT_FAILED
        print(f"{verb}: unexpected {type(e).__name__}: {e} "
              f"({DEBUG_ENV}=1 shows the traceback)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
