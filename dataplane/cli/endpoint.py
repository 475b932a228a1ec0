"""`vpclab endpoint accept|reject [-l LAB] VPC/ENDPOINT`: the provider's decision.

An endpoint whose service requires acceptance starts `pendingAcceptance`: it has its
ENIs and DNS names but passes no packet. `accept` makes it `available`; `reject` makes
a pending or available endpoint `rejected`, and its flows stop at once (vpclab drops
their packets silently; AWS does not say what happens). ENDPOINT is `<vpc>/<name>` or
the endpoint's `vpce-…` id.
"""
from __future__ import annotations

from .. import lab as labmod
from .common import EXIT_OK, need_root, pick_lab


def register(sub) -> None:
    p = sub.add_parser("endpoint", help="accept or reject an interface endpoint")
    p.add_argument("action", choices=sorted(labmod.ENDPOINT_TRANSITIONS))
    p.add_argument("endpoint", metavar="VPC/ENDPOINT")
    p.add_argument("-l", "--lab")
    p.set_defaults(func=run)


def run(args) -> int:
    need_root()
    st = pick_lab(args.lab)
    new = labmod.set_endpoint_state(st, args.endpoint, args.action)
    print(f"endpoint {args.endpoint}: {new}")
    return EXIT_OK
