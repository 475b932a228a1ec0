"""`vpclab flows [-l LAB]` and `vpclab stats [-l LAB]`: what the lab's forwarder holds.

flows: every flow like `conntrack -L`, client → endpoint ⇒ NLB address → target, its TCP
state, idle time, packets and bytes each way; the NLBs' own health checks only with
`--health`. stats: each ENI's counters, then every drop reason that is not zero (all of
them with `--all`), with its meaning. Both ask the forwarder's control socket.

`--json`: flows print `{"version": 1, "lab": LAB, "flows": [flow, …]}`, each flow as the
forwarder reports it (a VPC link's also with `"vpc_link"`, its name in the lab); stats
print `{"version": 1, "lab": LAB, …the forwarder's counters…, "drop_reasons": {reason:
meaning}}`. The README's "--json shapes" lists the keys.
"""
from __future__ import annotations

from .. import lab as labmod
from .common import EXIT_OK, add_lab_option, lab_name, pick_lab, print_json


def register(sub) -> None:
    for verb, helptext in (("flows", "the forwarder's flow table"),
                           ("stats", "the forwarder's counters and drop reasons")):
        p = sub.add_parser(verb, help=helptext)
        add_lab_option(p)
        p.add_argument("--json", action="store_true",
                       help="one JSON object instead of the table (README: --json shapes)")
        if verb == "flows":
            p.add_argument("--health", action="store_true", help="include the health checks' flows")
        else:
            p.add_argument("--all", action="store_true", help="every drop reason, zeros included")
        p.set_defaults(func=run, what=verb)


def run(args) -> int:
    # The drop reasons' sentences are the engine's: loaded here, not when vpclab starts,
    # so that every other verb runs without the compiled engine.
    from ..forwarder.engine import DROP_REASON_TEXT
    from ..forwarder.show import format_flows, format_stats
    st = pick_lab(lab_name(args))
    if args.what == "flows":
        flows = labmod.flows(st, health=args.health)
        if args.json:
            print_json({"lab": st.lab, "flows": flows})
            return EXIT_OK
        for f in flows:
            if "vpc_link" in f:
                f["service_name"] = f"{f['vpc_link']} {f['service_name']}"
        print(format_flows(flows))
        return EXIT_OK
    reply = labmod.stats(st)
    reply.pop("ok", None)
    if args.json:
        shown = set(list(DROP_REASON_TEXT)[1:]) if args.all else {
            reason for port in reply["ports"].values() for reason in port["drops"]}
        print_json({"lab": st.lab, **reply,
                    "drop_reasons": {r: t for r, t in DROP_REASON_TEXT.items()
                                     if r in shown}})
    else:
        print(format_stats(reply, every_reason=args.all))
    return EXIT_OK
