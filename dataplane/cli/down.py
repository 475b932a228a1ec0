"""`vpclab down [LAB | --all]`: remove a lab using only its state file.

LAB may be left out when one lab is up. `--all` takes down every lab that has state.
`--json` prints `{"version": 1, "labs": {LAB: {"removed": [what, …], "namespaces": N,
"processes": [process, …]}}, "failed": {LAB: why}}` (failed only with --all; without
it a failure is the usual message and exit 1).
"""
from __future__ import annotations

from .. import lab as labmod
from .common import (EXIT_FAILED, EXIT_OK, CliError, EXIT_USAGE, add_lab_option, lab_name,
                     need_root, print_json)


def register(sub) -> None:
    p = sub.add_parser("down", help="remove a lab (needs only its state)")
    add_lab_option(p, positional=True, what="the lab to take down (default: the only one up)")
    p.add_argument("--all", action="store_true", help="every lab with state")
    p.add_argument("--json", action="store_true",
                   help="what was removed, as a JSON object (README: --json shapes)")
    p.set_defaults(func=run)


def run(args) -> int:
    need_root()
    lab = lab_name(args)
    if args.all and lab:
        raise CliError("give a LAB or --all, not both", EXIT_USAGE)
    if args.all:
        todo = labmod.state_labs()
    elif lab:
        todo = [lab]
    else:
        todo = labmod.labs_up()
        if len(todo) != 1:
            raise CliError("no lab is up" if not todo else
                           f"several labs are up ({', '.join(todo)}): name one or use --all",
                           EXIT_USAGE)
    failed: dict[str, str] = {}
    removed: dict[str, dict] = {}
    for name in todo:
        try:
            done = labmod.down(name)
        except labmod.LabError as e:
            if not args.all:
                raise
            failed[name] = str(e)
            continue
        n_ns = sum(1 for d in done if d.startswith("namespace"))
        stopped = [d for d in done if d.startswith("process")]
        removed[name] = {"removed": done, "namespaces": n_ns, "processes": stopped}
        if args.json:
            continue
        print(f"lab {name} is down: removed {n_ns} namespaces, stopped {len(stopped)} "
              f"processes (each seen gone)")
        for d in stopped:
            print(f"  {d}")
    if args.json:
        print_json({"labs": removed, "failed": failed})
        return EXIT_FAILED if failed else EXIT_OK
    if failed:
        raise CliError("; ".join(f"{name}: {why}" for name, why in failed.items()))
    return EXIT_OK
