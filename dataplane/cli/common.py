"""Helpers shared by the verbs: errors, exit statuses, the `-l LAB` option, picking a lab,
printing tables and JSON documents."""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..lab import LabError, State, labs_up

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
JSON_VERSION = 1        # the "version" of every --json document; bumped when a shape changes


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


def need_root() -> None:
    if os.geteuid() != 0:
        raise CliError("needs root: it enters or changes the lab's namespaces (run it with sudo)")


def add_lab_option(p: argparse.ArgumentParser, positional: bool = False,
                   what: str = "the lab (default: the only one up)") -> None:
    """`-l/--lab LAB` on a verb; with `positional`, the older `VERB [LAB]` form as well
    (`lab_name(args)` reconciles the two)."""
    if positional:
        p.add_argument("lab_positional", nargs="?", metavar="LAB",
                       help=f"{what}; the same as -l LAB")
    # SUPPRESS: a subcommand's parser (cloudmap's actions) keeps a -l given before it.
    p.add_argument("-l", "--lab", default=argparse.SUPPRESS, metavar="LAB", help=what)


def lab_name(args) -> str | None:
    """The lab named by `-l LAB` or by the positional LAB (both: the same name)."""
    flag, positional = getattr(args, "lab", None), getattr(args, "lab_positional", None)
    if flag and positional and flag != positional:
        raise CliError(f"two labs named: {positional} and -l {flag}", EXIT_USAGE)
    return flag or positional


def print_json(doc: dict) -> None:
    """One --json document: an object whose first key is "version" (JSON_VERSION)."""
    print(json.dumps({"version": JSON_VERSION, **doc}, indent=1))


def pick_lab(lab: str | None) -> State:
    """The lab named with -l, or the only one that is up."""
    if lab is None:
        up = labs_up()
        if not up:
            raise CliError("no lab is up")
        if len(up) > 1:
            raise CliError(f"several labs are up ({', '.join(up)}): name one with -l LAB",
                           EXIT_USAGE)
        lab = up[0]
    st = State.load(lab)
    if st is None or st.data.get("status") != "up":
        raise CliError(f"lab {lab} is not up")
    return st


def target(st: State, spec: str) -> tuple[str, dict | None, dict]:
    """'VPC/INSTANCE' → (netns, instance record, vpc record); 'VPC' → the VPC router."""
    vpc_name, _, inst_name = spec.partition("/")
    vpc = st.data["vpcs"].get(vpc_name)
    if vpc is None:
        raise CliError(f"lab {st.lab} has no VPC {vpc_name!r} "
                       f"(VPCs: {', '.join(st.data['vpcs'])})", EXIT_USAGE)
    if not inst_name:
        return vpc["netns"], None, vpc
    inst = vpc["instances"].get(inst_name)
    if inst is None:
        raise CliError(f"VPC {vpc_name} of lab {st.lab} has no instance {inst_name!r} "
                       f"(instances: {', '.join(vpc['instances']) or 'none'})", EXIT_USAGE)
    return inst["netns"], inst, vpc


def api_gateway_target(st: State, link: str | None) -> str:
    """The namespace of API Gateway's VPC, or of one of its VPC links' routing domains."""
    apigw = st.data.get("hyperplane", {}).get("api_gateway")
    gateway = st.data.get("api_gateway")
    if apigw is None and gateway is None:
        raise CliError(f"lab {st.lab} has no API Gateway VPC (it has no APIs or VPC links)",
                       EXIT_USAGE)
    if link is None:
        return (apigw or gateway)["netns"]
    rest = st.data["topology"].get("api_gateway", {}).get("vpc_links", {}).get(link, {})
    if rest.get("type") == "REST":
        raise CliError(f"{link} is a REST VPC link: API Gateway reaches it from its own VPC "
                       f"(vpclab exec apigw, without --link)", EXIT_USAGE)
    if apigw is None or link not in apigw["vpc_links"]:
        raise CliError(f"lab {st.lab} has no VPC link {link!r} "
                       f"(HTTP VPC links: {', '.join(apigw['vpc_links']) if apigw else 'none'})",
                       EXIT_USAGE)
    return apigw["vpc_links"][link]["netns"]


def internet_target(st: State) -> dict:
    """The lab's internet namespace's record (netns, resolv_conf)."""
    gateway = st.data.get("api_gateway")
    if gateway is None:
        raise CliError(f"lab {st.lab} has no internet namespace (it has no APIs)", EXIT_USAGE)
    return gateway["internet"]


def table(rows: list[tuple], header: tuple, out=None) -> None:
    out = out or sys.stdout         # at call time: a redirected stdout is honoured
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(header)]
    for r in [tuple(header)] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=out)


__all__ = ["CliError", "LabError", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED",
           "JSON_VERSION", "need_root", "add_lab_option", "lab_name", "print_json", "pick_lab",
           "target", "api_gateway_target", "internet_target", "table"]
