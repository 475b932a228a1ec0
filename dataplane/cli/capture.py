"""`vpclab capture [-l LAB] TARGET [-w FILE] [tcpdump args…]`: watch an ENI.

TARGET is
* `VPC/INSTANCE`: the instance's `eth0`;
* `VPC`: every interface of the VPC router (`-i any`); `apigw` is API Gateway's VPC;
* `internet`: the lab's internet (API clients), its `eth0`;
* `eni-<id>` (an NLB node's or endpoint's ENI, from `vpclab status`), or `VPC/NAME` of an
  endpoint or NLB with a single ENI: the VPC router's end of that ENI, so the packets
  are seen as the VPC sees them — before translation on an endpoint ENI, after it on an
  NLB ENI.
tcpdump runs numeric and line-buffered; any other arguments go to it as they are (a
filter, `-c 10`, …); its exit status is passed through. `-w FILE` writes a pcap file
packet by packet (tcpdump `-U`), and `-w -` streams the pcap to stdout, where nothing else
is written (tcpdump's messages go to stderr), for a reader at the other end of a pipe:
`vpclab capture -l LAB consumer/client -w - | wireshark -k -i -`.
"""
from __future__ import annotations

import os
import shutil
import sys

from netns_setup import nsenter

from dataplane.model.names import INTERNET

from .common import (EXIT_USAGE, CliError, add_lab_option, internet_target, lab_name, need_root,
                     pick_lab, target)

STDOUT = "-"


def register(sub) -> None:
    p = sub.add_parser("capture", help="tcpdump on an ENI: an instance's, an endpoint's, an NLB's")
    add_lab_option(p)
    p.add_argument("target", metavar="VPC/INSTANCE|ENI|internet",
                   help="an instance, a VPC (its router), internet, an eni- ID or "
                        "VPC/ENDPOINT-or-NLB with one ENI")
    p.add_argument("-w", dest="write", metavar="FILE",
                   help="write packets to a pcap file, packet-buffered; - streams it to stdout")
    p.add_argument("tcpdump_args", nargs="*", metavar="TCPDUMP-ARG",
                   help="tcpdump's own arguments: a filter, -c N, …")
    p.set_defaults(func=run)


def tcpdump_argv(tcpdump: str, ifname: str, write: str | None, extra: list[str]) -> list[str]:
    """tcpdump's command line: numeric, on `ifname`; line-buffered text, or with `write` a
    pcap written packet by packet (`-U`) to a file or, for `-`, to stdout."""
    argv = [tcpdump, "-n", "-i", ifname]
    if write is None:
        argv.append("-l")
    else:
        argv += ["-U", "-w", write if write == STDOUT else os.path.abspath(write)]
    return argv + list(extra)


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
    st = pick_lab(lab_name(args))
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
    argv = tcpdump_argv(tcpdump, ifname, args.write, args.tcpdump_args)
    nsenter.enter(netns, private=True)
    sys.stdout.flush()
    os.execv(tcpdump, argv)
    return 1  # not reached
