"""`vpclab endpoint accept|reject [-l LAB] VPC/ENDPOINT`: the provider's decision.

An endpoint whose service requires acceptance starts `pendingAcceptance`: it has its
ENIs and DNS names but passes no packet. `accept` makes it `available`; `reject` makes
a pending or available endpoint `rejected`, and its flows stop at once (vpclab drops
their packets silently; AWS does not say what happens). ENDPOINT is `<vpc>/<name>` or
the endpoint's `vpce-…` id. `--json` prints `{"version": 1, "lab": LAB, "endpoint":
ENDPOINT, "state": NEW-STATE}`.
"""
from __future__ import annotations

from .. import lab as labmod
from .common import (EXIT_OK, EXIT_USAGE, CliError, add_lab_option, lab_name, need_root,
                     pick_lab, print_json)


def register(sub) -> None:
    p = sub.add_parser("endpoint", help="accept or reject an interface endpoint")
    p.add_argument("action", choices=sorted(labmod.ENDPOINT_TRANSITIONS),
                   help="the endpoint service provider's decision")
    p.add_argument("endpoint", metavar="VPC/ENDPOINT",
                   help="the endpoint as VPC/NAME, or its vpce- ID")
    add_lab_option(p)
    p.add_argument("--json", action="store_true", help="the new state as a JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    need_root()
    st = pick_lab(lab_name(args))
    endpoints = labmod.hyperplane_of(st)["endpoints"]
    if not any(args.endpoint in (key, e["id"]) for key, e in endpoints.items()):
        raise CliError(f"lab {st.lab} has no endpoint {args.endpoint} "
                       f"(endpoints: {', '.join(endpoints) or 'none'})", EXIT_USAGE)
    new = labmod.set_endpoint_state(st, args.endpoint, args.action)
    if args.json:
        print_json({"lab": st.lab, "endpoint": args.endpoint, "state": new})
    else:
        print(f"endpoint {args.endpoint}: {new}")
    return EXIT_OK
