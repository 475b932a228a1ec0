"""`vpclab flows [-l LAB]` and `vpclab stats [-l LAB]`: what the lab's forwarder holds.

flows: every flow like `conntrack -L`, client → endpoint ⇒ NLB address → target, its TCP
state, idle time, packets and bytes each way; the NLBs' own health checks only with
`--health`. stats: each ENI's counters, then every drop reason that is not zero (all of
them with `--all`), with its meaning. Both ask the forwarder's control socket.
"""
from __future__ import annotations

from .. import lab as labmod
from ..forwarder import control
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
    hp = labmod.hyperplane_of(pick_lab(args.lab))
    try:
        reply = control.call(hp["socket"], args.what)
    except control.ControlError as e:
        raise labmod.LabError(str(e)) from None
    if args.what == "flows":
        flows = [f for f in reply["flows"] if args.health or f["in_port_name"] != "health"]
        # The forwarder knows a VPC link by its ID; the lab knows its name too.
        links = {l["id"]: name for name, l in
                 hp.get("api_gateway", {}).get("vpc_links", {}).items()}
        for f in flows:
            if f["service_name"] in links:
                f["service_name"] = f"{links[f['service_name']]} {f['service_name']}"
        print(format_flows(flows))
    else:
        print(format_stats(reply, every_reason=args.all))
    return EXIT_OK
