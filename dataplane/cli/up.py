"""`vpclab up FILE`: build the lab, or do nothing if it is already up from that file.

Shows one line per step on a terminal and ends with a table of what was made. On a
failure everything made so far is removed and the failed step is named (exit 1). A bad
file creates nothing (exit 2). SIGINT/SIGTERM during `up` roll back the same way: the
handler only records the request, and `up` stops at its next step boundary.
"""
from __future__ import annotations

import os
import signal

from .. import lab as labmod
from ..model import TopologyError, load
from ..model.api_gateway import invoke_url
from .common import EXIT_OK, EXIT_USAGE, need_root, table
from .validate import report


def register(sub) -> None:
    p = sub.add_parser("up", help="build a lab from a topology file (idempotent)")
    p.add_argument("file", help="the topology file (YAML)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


_MAIN_PID = os.getpid()


def _interrupt(signum, frame):
    if os.getpid() != _MAIN_PID:     # a forked helper that kept the handler: just die
        os._exit(128 + signum)
    labmod.request_interrupt(signal.Signals(signum).name)


def run(args) -> int:
    try:
        lab = load(args.file)
    except TopologyError as e:
        report(args.file, e)
        return EXIT_USAGE
    need_root()
    old = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        st, created = labmod.up(lab, progress=False if args.quiet else None)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if not created:
        if st.repaired:
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
