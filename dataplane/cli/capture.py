"""`vpclab capture [-l LAB] TARGET [-w FILE] [tcpdump args…]`: watch an ENI.

TARGET is
* `VPC/INSTANCE`: the instance's `eth0`;
* `VPC`: every interface of the VPC router (`-i any`); `apigw` is API Gateway's VPC;
* `internet`: the lab's internet (API clients), its `eth0`;
* `eni-<id>` (an NLB node's or endpoint's ENI, from `vpclab status`), or `VPC/NAME` of an
  endpoint or NLB with a single ENI: the VPC router's end of that ENI, so the packets
  are seen as the VPC sees them — before translation on an endpoint ENI, after it on an
  NLB ENI.
tcpdump runs numeric and line-buffered; `-w FILE` and any other arguments go to it as
they are (a filter, `-c 10`, …); its exit status is passed through.
"""
from __future__ import annotations

import os
import shutil
import sys

from netns_setup import nsenter

from dataplane.model.names import INTERNET

from .common import EXIT_USAGE, CliError, internet_target, need_root, pick_lab, target


def register(sub) -> None:
    p = sub.add_parser("capture", help="tcpdump on an ENI: an instance's, an endpoint's, an NLB's")
    p.add_argument("-l", "--lab")
    p.add_argument("target", metavar="VPC/INSTANCE|ENI|internet")
    p.add_argument("-w", dest="write", metavar="FILE", help="write packets to a pcap file")
    p.add_argument("tcpdump_args", nargs="*", metavar="TCPDUMP-ARG")
    p.set_defaults(func=run)


def hyperplane_eni(st, spec: str) -> dict | None:
    """The Hyperplane ENI record `spec` names (an eni- id, or VPC/endpoint-or-NLB), or
    None when `spec` is not one (an instance or a VPC)."""
    enis = st.data.get("hyperplane", {}).get("enis", [])
    match = [e for e in enis if spec == e["eni_id"]]
    if match:
        return match[0]
    vpc, _, owner = spec.partition("/")
    match = [e for e in enis if e["vpc"] == vpc and e["owner"] == owner]
    if len(match) > 1:
        listing = ", ".join(f"{e['eni_id']} ({e['subnet']})" for e in match)
        raise CliError(f"{spec} has {len(match)} ENIs; capture one of them: {listing}", EXIT_USAGE)
    return match[0] if match else None


def run(args) -> int:
    need_root()
    st = pick_lab(args.lab)
    eni = hyperplane_eni(st, args.target)
    if eni is not None:
        netns, ifname = st.data["vpcs"][eni["vpc"]]["netns"], eni["ifname"]
    elif args.target == INTERNET:
        netns, ifname = internet_target(st)["netns"], "eth0"
    else:
        netns, inst, _vpc = target(st, args.target)
        ifname = "eth0" if inst else "any"
    tcpdump = shutil.which("tcpdump") or "/usr/bin/tcpdump"
    if not os.path.exists(tcpdump):
        raise CliError("tcpdump is not installed (apt-get install tcpdump)")
    argv = [tcpdump, "-n", "-l", "-i", ifname]
    if args.write:
        argv += ["-w", os.path.abspath(args.write)]
    argv += args.tcpdump_args
    nsenter.enter(netns, private=True)
    sys.stdout.flush()
    os.execv(tcpdump, argv)
    return 1  # not reached
