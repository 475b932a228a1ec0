"""`vpclab trace [-l LAB] SRC DST[:PORT] [--proto tcp|udp|icmp] [--json]`: why a packet
does or does not arrive, hop by hop (dataplane/trace/).

SRC is an instance (`vpc/instance`); DST an address, a name the source VPC's resolver
answers (an endpoint's private DNS name, an instance's name), or an instance; PORT the
destination port (not for icmp). The text output is an indented tree, one hop a line
with what it did beneath, ending in the verdict and, for a refusal, its AWS Reachability
Analyzer explanation code. The Hyperplane hop is the forwarder's own dry run of the
packet (it changes nothing in the lab).

`--json`: `{"version": 1, "lab": LAB, "source", "destination", "protocol", "port",
"hops": [{"hop", "title", "verdict", "lines", …facts}], "verdict": {"reachable",
"explanation_code", "component", "client_sees", "reason"}}`.
"""
from __future__ import annotations

from .common import EXIT_OK, EXIT_USAGE, CliError, add_lab_option, lab_name, pick_lab, print_json


def register(sub) -> None:
    p = sub.add_parser("trace", help="follow one packet hop by hop: SGs, routers, the "
                                     "Hyperplane engine's dry run, the verdict")
    add_lab_option(p)
    p.add_argument("source", metavar="SRC", help="the sending instance, VPC/INSTANCE")
    p.add_argument("destination", metavar="DST[:PORT]",
                   help="an address, a name the source's resolver answers, or VPC/INSTANCE; "
                        "with :PORT the destination port (tcp and udp need one)")
    p.add_argument("--proto", choices=("tcp", "udp", "icmp"), default="tcp",
                   help="the packet's protocol (default tcp; icmp traces an echo request)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object instead of the tree (the module's docstring)")
    p.set_defaults(func=run)


def split_port(destination: str) -> tuple[str, int | None]:
    """'DST:PORT' → (DST, PORT); 'DST' → (DST, None)."""
    host, sep, port = destination.rpartition(":")
    if not sep:
        return destination, None
    if not port.isdigit():
        raise CliError(f"{destination!r}: the port after ':' must be a number", EXIT_USAGE)
    return host, int(port)


def run(args) -> int:
    from ..model import Lab
    from ..forwarder.control import ControlError
    from ..trace import TraceError, World, live_engine, render, trace
    st = pick_lab(lab_name(args))
    destination, port = split_port(args.destination)
    hp = st.data.get("hyperplane")
    engine = live_engine(hp["socket"]) if hp else None
    try:
        t = trace(World(Lab.from_dict(st.data["topology"])), args.source, destination,
                  args.proto, port, engine)
    except TraceError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    except ControlError as e:
        raise CliError(f"the forwarder could not trace the packet: {e}") from None
    if args.json:
        print_json({"lab": st.lab, **t.to_json()})
    else:
        print(render(t))
    return EXIT_OK
