"""`vpclab capture [-l LAB] VPC[/INSTANCE] [-w FILE] [tcpdump args…]`: watch an ENI.

Runs tcpdump on the instance's `eth0` (with only `VPC`: on every interface of the VPC
router, `-i any`), numeric, line-buffered. `-w FILE` and any other arguments go to
tcpdump as they are (a filter, `-c 10`, …); its exit status is passed through.
"""
from __future__ import annotations

import os
import shutil
import sys

from netns_setup import nsenter

from .common import CliError, need_root, pick_lab, target


def register(sub) -> None:
    p = sub.add_parser("capture", help="tcpdump on an instance's ENI (or the VPC router)")
    p.add_argument("-l", "--lab")
    p.add_argument("target", metavar="VPC/INSTANCE")
    p.add_argument("-w", dest="write", metavar="FILE", help="write packets to a pcap file")
    p.add_argument("tcpdump_args", nargs="*", metavar="TCPDUMP-ARG")
    p.set_defaults(func=run)


def run(args) -> int:
    need_root()
    st = pick_lab(args.lab)
    netns, inst, _vpc = target(st, args.target)
    tcpdump = shutil.which("tcpdump") or "/usr/bin/tcpdump"
    if not os.path.exists(tcpdump):
        raise CliError("tcpdump is not installed (apt-get install tcpdump)")
    argv = [tcpdump, "-n", "-l", "-i", "eth0" if inst else "any"]
    if args.write:
        argv += ["-w", os.path.abspath(args.write)]
    argv += args.tcpdump_args
    nsenter.enter(netns, private=True)
    sys.stdout.flush()
    os.execv(tcpdump, argv)
    return 1  # not reached
