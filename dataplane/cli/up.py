"""`vpclab up FILE [--name LAB]`: build the lab; on a lab already up, restart what stopped
(the same file) or reconcile it (another version: the plan printed, then applied in place,
or refused with exit 2 naming each field; `--diff` prints the plan only,
lab/reconcile.py). `--name` makes the file's lab under another name, beside the first.

Shows one line per step on a terminal and ends with a table of what was made. On a
failure everything made so far is removed and the failed step is named (exit 1). A bad
file creates nothing (exit 2). SIGINT/SIGTERM during `up` roll back the same way: the
handler only records the request, and `up` stops at its next step boundary.
"""
from __future__ import annotations

import sys

from .. import lab as labmod
from ..lab.progress import held_signals
from ..model import TopologyError
from ..model.api_gateway import invoke_url
from .common import EXIT_OK, EXIT_USAGE, need_root, table
from .validate import add_name_option, load_named, report


def register(sub) -> None:
    p = sub.add_parser("up", help="build a lab from a topology file, or bring a running "
                       "one to it (reconcile)")
    p.add_argument("file", help="the topology file (YAML)")
    add_name_option(p)
    p.add_argument("--diff", action="store_true",
                   help="on a running lab: print what up would change, change nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        lab = load_named(args.file, args.name)
    except TopologyError as e:
        report(args.file, e)
        return EXIT_USAGE
    need_root()
    try:
        with held_signals(labmod.request_interrupt):
            st, created = labmod.up(lab, progress=False if args.quiet else None,
                                    show=print, plan_only=args.diff)
    except labmod.Refused as e:
        print(f"vpclab up: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not created:
        if args.diff or st.reconciled:
            print(f"lab {lab.name}: {len(st.reconciled)} change(s) "
                  f"{'planned, none made (--diff)' if args.diff else 'made in place'}")
        elif st.repaired:
            print(f"lab {lab.name} was degraded; restarted: {', '.join(st.repaired)}")
        else:
            print(f"lab {lab.name} is already up from this topology: nothing to do")
        return EXIT_OK
    table(labmod.interfaces_table(st), ("NAMESPACE", "INTERFACE", "ADDRESS", "WHAT"))
    for p in st.data["processes"]:
        where = p["vpc"] + (f"/{p['instance']}" if p["instance"] else "")
        print(f"{p['role']:>4} {where}: pid {p['pid']}, log {p['log']}")
    for key, alb in (st.data.get("albs") or {}).items():
        print(f"ALB {key}: {alb['dns_name']} ({', '.join(alb['listeners'])}), nodes "
              f"{', '.join(n['address'] for n in alb['nodes'])}")
    for name, api in lab.apis.items():
        for stage in api.stages:
            print(f"API {name} ({api.type}) {stage}: "
                  f"{invoke_url(lab.name, lab.region, name, stage)}")
    if lab.apis:
        print(f"call them from the lab's internet: vpclab exec -l {lab.name} internet -- "
              f"curl https://…")
    print(f"lab {lab.name} is up; state in {st.dir}; `vpclab down {lab.name}` removes it")
    return EXIT_OK
