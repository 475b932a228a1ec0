"""Helpers shared by the verbs: errors, picking a lab, printing tables."""
from __future__ import annotations

import os
import sys

from ..lab import LabError, State, labs_up

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


def need_root() -> None:
    if os.geteuid() != 0:
        raise CliError("vpclab needs root to make namespaces (run it with sudo)")


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


def table(rows: list[tuple], header: tuple, out=sys.stdout) -> None:
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(header)]
    for r in [tuple(header)] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=out)


__all__ = ["CliError", "LabError", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "need_root",
           "pick_lab", "target", "api_gateway_target", "internet_target", "table"]
