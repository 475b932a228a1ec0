"""`vpclab exec [-l LAB] VPC[/INSTANCE] -- CMD…`: run a command inside an instance.
`vpclab exec [-l LAB] apigw [--link LINK] -- CMD…`: run it in API Gateway's VPC.
`vpclab exec [-l LAB] internet -- CMD…`: run it on the lab's internet, where API clients
are: its resolver answers the `*.execute-api` names, and the lab's CA is trusted (as in
every `vpclab exec` of a lab with APIs: a bundle of the host's CAs and the lab's covers
/etc/ssl/certs/ca-certificates.crt in the private mount namespace; nothing in /etc is
written; the same for a lab with an HTTPS ALB listener). Instances in the lab's VPCs have no route to the internet: no internet
gateway is modelled.

The command runs in the instance's network namespace and in a private mount namespace
where the VPC's resolv.conf (under /run/vpclab/<lab>/) covers /etc/resolv.conf, so
`getent hosts web1` and `curl http://web1:8080/` resolve through the VPC's DNS. With
only `VPC` it runs in the VPC router's namespace. `apigw` is API Gateway's own VPC;
with `--link LINK` the command runs in that HTTP-API VPC link's routing domain, where
the link VPC's CIDR is reached over the link (the target sees the link ENI's address),
so a user reaches customer resources over a link before any API exists. vpclab exec's
process *becomes* the command (exec), so its exit status is the command's. It joins the
lab's cgroup first (when the lab has one), so whatever the command leaves running — a
`sleep 300 &`, a server — is ended by `down` like the lab's own processes. Without a
command it opens `$SHELL` there (/bin/sh when SHELL is not set), interactive on a
terminal, reading commands from stdin otherwise (`echo ip addr | vpclab exec …`).
"""
from __future__ import annotations

import os
import sys

from netns_setup import cgroup, nsenter

from dataplane.lab import ca, processes
from dataplane.model.names import APIGW, INTERNET

from .common import (CliError, EXIT_USAGE, add_lab_option, api_gateway_target, internet_target,
                     lab_name, need_root, pick_lab, target)

FALLBACK_SHELL = "/bin/sh"


def register(sub) -> None:
    p = sub.add_parser("exec", help="run a command (or a shell) in an instance or VPC router")
    add_lab_option(p)
    p.add_argument("target", metavar="VPC/INSTANCE|apigw|internet",
                   help="an instance, a VPC (its router), apigw or internet")
    p.add_argument("--link", metavar="LINK",
                   help="with apigw: run in this HTTP-API VPC link's routing domain")
    p.add_argument("cmd", nargs="*", metavar="-- CMD",
                   help="the command and its arguments (default: $SHELL, or /bin/sh)")
    p.set_defaults(func=run)


def command(cmd: list[str]) -> list[str]:
    """What exec runs: the command given, or the user's shell."""
    return list(cmd) or [os.environ.get("SHELL") or FALLBACK_SHELL]


def run(args) -> int:
    need_root()
    cmd = command(args.cmd)
    st = pick_lab(lab_name(args))
    if args.target == APIGW:
        netns, resolv_conf = api_gateway_target(st, args.link), None
    elif args.target == INTERNET and not args.link:
        inet = internet_target(st)
        netns, resolv_conf = inet["netns"], inet["resolv_conf"]
    elif args.link:
        raise CliError(f"--link goes with the target {APIGW} (API Gateway's VPC), "
                       f"not {args.target}", EXIT_USAGE)
    else:
        netns, _inst, vpc = target(st, args.target)
        resolv_conf = vpc["resolv_conf"]
    group = processes.cgroup_path(st)
    if group is not None:
        try:
            cgroup.join(group)
        except cgroup.CgroupError as e:
            raise CliError(f"{e.strerror}; lab {st.lab} may be half taken down "
                           f"(`vpclab status {st.lab}`)") from e
    bundle = os.path.join(st.dir, ca.BUNDLE)       # made by a kind with TLS (lab/ca.py)
    nsenter.enter(netns, resolv_conf=resolv_conf, private=resolv_conf is None,
                  ca_bundle=bundle if os.path.exists(bundle) else None)
    sys.stdout.flush()
    try:
        os.execvp(cmd[0], cmd)
    except FileNotFoundError:
        print(f"vpclab exec: {cmd[0]}: command not found", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"vpclab exec: {cmd[0]}: permission denied", file=sys.stderr)
        return 126
    return 1  # not reached
