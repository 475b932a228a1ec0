"""`vpclab capture [-l LAB] TARGET [-w FILE] [tcpdump args…]`: watch an ENI.

TARGET is
* `VPC/INSTANCE`: the instance's `eth0`;
* `VPC`: every interface of the VPC router (`-i any`); `apigw` is API Gateway's VPC;
* `internet`: the lab's internet (API clients), its `eth0`;
* `eni-<id>` (an NLB node's or endpoint's ENI, from `vpclab status`), or `VPC/NAME` of an
  endpoint or NLB with a single ENI: the VPC router's end of that ENI, so the packets
  are seen as the VPC sees them — before translation on an endpoint ENI, after it on an
  NLB ENI.
With `--hyperplane [ENI]` it is not tcpdump but the forwarder's own tap: each frame as
the engine saw it arrive and as it sent it after translation, with its ENI, verdict and
drop reason (capture_hyperplane.py; `--stage`, `-s`, `--duration`, `-c`, `-w`).
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

from . import capture_hyperplane
from .common import (EXIT_USAGE, CliError, add_lab_option, internet_target, lab_name, need_root,
                     pick_lab, target)

STDOUT = "-"


def register(sub) -> None:
    p = sub.add_parser("capture", help="tcpdump on an ENI: an instance's, an endpoint's, an NLB's")
    add_lab_option(p)
    p.add_argument("target", metavar="VPC/INSTANCE|ENI|internet", nargs="?",
                   help="an instance, a VPC (its router), internet, an eni- ID or "
                        "VPC/ENDPOINT-or-NLB with one ENI; with --hyperplane, the ENI to keep "
                        "(all of them if none is named)")
    p.add_argument("-w", dest="write", metavar="FILE",
                   help="write packets to a pcap file (pcapng with --hyperplane), "
                        "packet-buffered; - streams it to stdout")
    p.add_argument("--hyperplane", action="store_true",
                   help="the forwarder's tap instead of tcpdump: frames as the engine saw "
                        "them and sent them, with ENI, verdict and drop reason (-c COUNT "
                        "stops after COUNT frames, as tcpdump's)")
    p.add_argument("--stage", choices=("in", "out", "both"),
                   help="--hyperplane: frames as they arrived (in), as they were sent after "
                        "translation (out), or both (the default)")
    p.add_argument("--duration", type=float, metavar="S",
                   help="--hyperplane: stop after S seconds")
    p.add_argument("-s", dest="snaplen", type=int, metavar="SNAPLEN",
                   help="bytes kept of each frame (with --hyperplane 64-262144, default 2048)")
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


HYPERPLANE_ONLY = (("stage", "--stage"), ("duration", "--duration"))


def count_of(words: list[str]) -> int | None:
    """--hyperplane's `-c COUNT` (tcpdump's spelling, so it arrives among tcpdump's
    arguments); any other word is refused."""
    if len(words) == 2 and words[0] == "-c" or len(words) == 1 and words[0].startswith("-c"):
        text = words[-1] if len(words) == 2 else words[0][2:]
        try:
            count = int(text)
        except ValueError:
            raise CliError(f"-c wants a number of frames, not {text!r}", EXIT_USAGE) from None
        if count <= 0:
            raise CliError(f"-c must be positive, not {count}", EXIT_USAGE)
        return count
    if words:
        raise CliError(f"--hyperplane takes -c COUNT but no other tcpdump arguments "
                       f"({' '.join(words)}); filter the pcapng afterwards (tshark -Y)", EXIT_USAGE)
    return None


def run_hyperplane(args, st) -> int:
    count = count_of(list(args.tcpdump_args))
    if args.duration is not None and args.duration <= 0:
        raise CliError(f"--duration must be positive, not {args.duration}", EXIT_USAGE)
    eni = None
    if args.target is not None:
        record = hyperplane_eni(st, args.target)
        eni = record["eni_id"] if record else args.target
    return capture_hyperplane.capture(st, eni, args.stage or "both", args.write, count,
                                      args.duration, args.snaplen or 0)


def run(args) -> int:
    need_root()
    st = pick_lab(lab_name(args))
    if args.hyperplane:
        return run_hyperplane(args, st)
    given = [flag for name, flag in HYPERPLANE_ONLY if getattr(args, name) is not None]
    if given:
        raise CliError(f"{', '.join(given)}: only with --hyperplane", EXIT_USAGE)
    if args.target is None:
        raise CliError("name what to capture: VPC/INSTANCE, a VPC, internet or an ENI "
                       "(or --hyperplane)", EXIT_USAGE)
    if args.snaplen is not None:     # tcpdump's own -s, the same meaning
        args.tcpdump_args = ["-s", str(args.snaplen)] + list(args.tcpdump_args)
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
