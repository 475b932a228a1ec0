"""`vpclab down [LAB | --all]`: remove a lab using only its state file.

LAB may be left out when one lab is up. `--all` takes down every lab that has state.
"""
from __future__ import annotations

from .. import lab as labmod
from .common import EXIT_OK, CliError, EXIT_USAGE, need_root


def register(sub) -> None:
    p = sub.add_parser("down", help="remove a lab (needs only its state)")
    p.add_argument("lab", nargs="?")
    p.add_argument("--all", action="store_true", help="every lab with state")
    p.set_defaults(func=run)


def run(args) -> int:
    need_root()
    if args.all and args.lab:
        raise CliError("give a LAB or --all, not both", EXIT_USAGE)
    if args.all:
        todo = labmod.state_labs()
    elif args.lab:
        todo = [args.lab]
    else:
        todo = labmod.labs_up()
        if len(todo) != 1:
            raise CliError("no lab is up" if not todo else
                           f"several labs are up ({', '.join(todo)}): name one or use --all",
                           EXIT_USAGE)
    failed = []
    for name in todo:
        try:
            done = labmod.down(name)
        except labmod.LabError as e:
            if not args.all:
                raise
            failed.append(f"{name}: {e}")
            continue
        n_ns = sum(1 for d in done if d.startswith("namespace"))
        stopped = [d for d in done if d.startswith("process")]
        print(f"lab {name} is down: removed {n_ns} namespaces, stopped {len(stopped)} "
              f"processes (each seen gone)")
        for d in stopped:
            print(f"  {d}")
    if failed:
        raise CliError("; ".join(failed))
    return EXIT_OK
