"""Small checks that the validation of several kinds shares.

They read the plain topology document defensively (a part that the schema pass found
malformed is skipped, never raised on), and return `Problem`s naming the field.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from .constants import DEFAULT_SG
from .problems import Problem


def mapping(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def parse_net(value: Any, path: str, problems: list[Problem]) -> ipaddress.IPv4Network | None:
    """`value` as a CIDR, or None after adding why it is not one."""
    if not isinstance(value, str):
        return None
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as e:
        if "host bits set" in str(e):
            fixed = ipaddress.IPv4Network(value, strict=False)
            problems.append(Problem(path, f"{value} has host bits set (did you mean {fixed}?)"))
        else:
            problems.append(Problem(path, f"{value} is not a valid IPv4 CIDR"))
        return None
    return net


def one_subnet_per_az(subnet_names: Any, vpc: dict, path: str, what: str,
                      vpc_name: str | None = None) -> list[Problem]:
    """Subnets that exist in `vpc`, carry an AZ, and are at most one per AZ (AWS's rule
    for NLB nodes, endpoint ENIs and VPC link ENIs)."""
    problems: list[Problem] = []
    if not isinstance(subnet_names, list):
        return problems
    subnets = mapping(vpc.get("subnets"))
    seen: dict[str, str] = {}
    for k, sname in enumerate(subnet_names):
        sp = f"{path}[{k}]"
        if not isinstance(sname, str):
            continue
        if sname not in subnets:
            where = f" in VPC {vpc_name}" if vpc_name else ""
            problems.append(Problem(sp, f"unknown subnet {sname!r}{where} (subnets: "
                                    f"{', '.join(subnets) or 'none'})"))
            continue
        az = mapping(subnets[sname]).get("az")
        if not isinstance(az, str):
            problems.append(Problem(sp, f"subnet {sname} has no az; {what} needs the "
                                    f"availability zone of each of its subnets"))
            continue
        if az in seen:
            problems.append(Problem(sp, f"subnets {seen[az]} and {sname} are both in {az}: "
                                    f"{what} takes at most one subnet per availability zone"))
        seen[az] = sname
    return problems


def subnet_azs(subnet_names: Any, vpc: dict) -> set[str]:
    subnets = mapping(vpc.get("subnets"))
    return {mapping(subnets.get(s)).get("az") for s in subnet_names or []
            if isinstance(s, str) and s in subnets} - {None}


def known_groups(group_names: Any, vpc: dict, vpc_name: str, path: str) -> list[Problem]:
    """Every named security group exists in the VPC (`default` always does)."""
    groups = set(mapping(vpc.get("security_groups"))) | {DEFAULT_SG}
    return [Problem(f"{path}[{k}]", f"unknown security group {g!r} in VPC {vpc_name}")
            for k, g in enumerate(group_names if isinstance(group_names, list) else [])
            if isinstance(g, str) and g not in groups]
