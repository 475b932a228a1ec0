"""`vpclab flows [-l LAB]` and `vpclab stats [-l LAB]`: what the lab's forwarder holds.

flows: every flow like `conntrack -L`, client → endpoint ⇒ NLB address → target, its TCP
state, idle time, packets and bytes each way; the NLBs' own health checks only with
`--health`. stats: each ENI's counters, then every drop reason that is not zero (all of
them with `--all`), with its meaning. Both ask the forwarder's control socket.
"""
from __future__ import annotations

from .. import lab as labmod
from .common import EXIT_OK, pick_lab


def register(sub) -> None:
    for verb, helptext in (("flows", "the forwarder's flow table"),
                           ("stats", "the forwarder's counters and drop reasons")):
        p = sub.add_parser(verb, help=helptext)
        p.add_argument("-l", "--lab")
        if verb == "flows":
            p.add_argument("--health", action="store_true", help="include the health checks' flows")
        else:
            p.add_argument("--all", action="store_true", help="every drop reason, zeros included")
        p.set_defaults(func=run, what=verb)


def run(args) -> int:
    # The drop reasons' sentences are the engine's: loaded here, not when vpclab starts,
    # so that every other verb runs without the compiled engine.
    from ..forwarder.show import format_flows, format_stats
    st = pick_lab(args.lab)
    if args.what == "flows":
        print(format_flows(labmod.flows(st, health=args.health)))
        return EXIT_OK
    print(format_stats(labmod.stats(st), every_reason=args.all))
    return EXIT_OK
