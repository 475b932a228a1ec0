"""Validation of a topology document: every problem, each with its field path and reason.

Two passes over the plain document (the dict YAML gives, or `Lab.to_dict()`):

1. structure, against the JSON schema shipped beside this file (`schema.json`): unknown
   keys, missing keys, wrong types, malformed names, CIDRs and ports;
2. meaning, in Python: CIDRs that parse and sit where they must (a subnet inside its
   VPC, no two subnets overlapping), references that resolve (an instance's subnet and
   groups, `sg:` peers), addresses inside their subnet and not among the five AWS
   reserves nor taken twice, subnets with room for their instances, and names short
   enough for the interface names they become (see `names.py`).

The second pass is written defensively: it looks only at the parts the first pass left
well-formed, so one run reports everything at once and never raises. Paths are dotted
(`vpcs.shop.subnets.web-b.cidr`), list items indexed (`…ingress[1].source`).
"""
from __future__ import annotations

import ipaddress
import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from dataplane import kinds

from . import names
from .checks import mapping as _mapping
from .checks import parse_net as _net
from .constants import (DEFAULT_SG, FIRST_FREE_OFFSET, MAX_FORWARDER_PORTS, MAX_PREFIX,
                        MIN_PREFIX, RESERVED)
from .problems import Problem, join

JSON_TYPES = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
              int: "a whole number", float: "a decimal number", type(None): "nothing (null)"}

# JSON Schema counts 80.0 as an integer; the engine, the kernel and every port field
# take whole numbers only, so here an integer is a Python int (and never a bool).
_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda checker, v: isinstance(v, int) and not isinstance(v, bool))
Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_TYPES)

# Ranges the kernel does not route as unicast, and AWS does not allow in a VPC.
SPECIAL_RANGES = {ipaddress.IPv4Network(n): what for n, what in (
    ("0.0.0.0/8", "'this network' (0.0.0.0/8)"), ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
    ("169.254.0.0/16", "link-local (169.254.0.0/16)"),
    ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
    ("240.0.0.0/4", "reserved and broadcast (240.0.0.0/4)"))}


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The JSON schema of a topology file (package data)."""
    text = resources.files(__package__).joinpath("schema.json").read_text()
    return json.loads(text)


def _json_type(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number"}.get(type(v), "null")


def _kind(v: Any) -> str:
    return JSON_TYPES.get(type(v), type(v).__name__)


def _reason(err: jsonschema.ValidationError) -> str | None:
    """A sentence for one schema error (None when another error says it better)."""
    v, inst, sch = err.validator, err.instance, err.schema
    if v == "pattern":
        return f"{inst!r} is not valid: {sch.get('x-reason', 'must match ' + sch['pattern'])}"
    if v == "maxLength":
        why = f": {sch['x-reason']}" if "x-reason" in sch else ""
        return f"{len(inst)} characters, at most {sch['maxLength']}{why}"
    if v == "type":
        want = sch["type"] if isinstance(sch["type"], list) else [sch["type"]]
        kinds = " or ".join({"object": "a mapping", "array": "a list", "string": "a string",
                             "integer": "a whole number", "number": "a number",
                             "boolean": "a boolean"}.get(t, t) for t in want)
        return f"expected {kinds}, got {_kind(inst)}"
    if v == "enum":
        return f"{inst!r} is not one of {', '.join(map(str, sch['enum']))}"
    if v == "oneOf":
        # The reason of the alternative of the value's own type (a string, a mapping…).
        subs = sorted(sch["oneOf"], key=lambda sub: sub.get("type") != _json_type(inst))
        for sub in subs:
            if "x-reason" in sub:
                return f"{inst!r} is not valid: {sub['x-reason']}"
        return f"{inst!r} is not valid"
    if v == "exclusiveMinimum":
        return f"{inst!r} must be more than {sch['exclusiveMinimum']}"
    if v in ("minimum", "maximum"):
        return f"{inst!r} is out of range ({sch.get('minimum', '')}..{sch.get('maximum', '')})"
    if v == "minProperties":
        return "must not be empty"
    if v == "minLength" or (v == "minItems" and sch["minItems"] == 1):
        return "must not be empty"
    if v == "maxItems":
        return f"at most {sch['maxItems']} entries (AWS: security groups per ENI)"
    return err.message


def check_schema(doc: Any) -> list[Problem]:
    problems: list[Problem] = []
    validator = Validator(schema())
    for err in validator.iter_errors(doc):
        path = list(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = sorted(err.schema.get("properties", {}))
            for key in err.instance:
                if key not in allowed:
                    problems.append(Problem(join(path + [key]),
                                            f"unknown key (allowed: {', '.join(allowed)})"))
            continue
        if err.validator == "required":
            for key in err.validator_value:
                if isinstance(err.instance, dict) and key not in err.instance:
                    problems.append(Problem(join(path + [key]), "required key is missing"))
            continue
        if "propertyNames" in list(err.absolute_schema_path):
            # A bad key: jsonschema reports it at the mapping; report it at the key.
            problems.append(Problem(join(path + [err.instance]), f"bad name: {_reason(err)}"))
            continue
        reason = _reason(err)
        if reason:
            problems.append(Problem(join(path), reason))
    return problems


def check_semantics(doc: Any) -> list[Problem]:
    problems: list[Problem] = []
    if not isinstance(doc, dict):
        return problems
    lab = doc.get("lab") if isinstance(doc.get("lab"), str) else None
    region = doc.get("region") if isinstance(doc.get("region"), str) else None
    for vname, vpc in _mapping(doc.get("vpcs")).items():
        if not isinstance(vpc, dict):
            continue
        vp = f"vpcs.{vname}"
        if vname in names.RESERVED_VPC_NAMES:
            what = {names.HYPERPLANE: "Hyperplane", names.APIGW: "API Gateway VPC",
                    names.INTERNET: "internet"}[vname]
            problems.append(Problem(vp, f"{vname!r} is the name of the lab's {what} "
                                    f"namespace; choose another VPC name"))
        problems += _check_vpc(lab, region, str(vname), vpc, vp)
    for kind in kinds.models():
        problems += kind.check(doc)
    return problems


def check_port_count(n_enis: int, n_attachments: int = 0) -> list[Problem]:
    """Every Hyperplane ENI (NLB node, endpoint, VPC link) is a forwarder port, health
    checks take one more and each VPC link's attachment on API Gateway's side one more:
    at most MAX_FORWARDER_PORTS in one lab."""
    if n_enis + 1 + n_attachments <= MAX_FORWARDER_PORTS:
        return []
    return [Problem("", f"the lab asks for {n_enis} Hyperplane ENIs (NLB nodes, endpoints, "
                        f"VPC links) and {n_attachments} VPC link attachments; the "
                        f"forwarder has {MAX_FORWARDER_PORTS} ports, one for health "
                        f"checks, so at most {MAX_FORWARDER_PORTS - 1} together")]


def _check_vpc(lab: str | None, region: str | None, vname: str, vpc: dict,
               vp: str) -> list[Problem]:
    problems: list[Problem] = []
    vnet = _net(vpc.get("cidr"), f"{vp}.cidr", problems)
    if vnet is not None and not MIN_PREFIX <= vnet.prefixlen <= MAX_PREFIX:
        problems.append(Problem(f"{vp}.cidr", f"a VPC CIDR must be /{MIN_PREFIX} to "
                                f"/{MAX_PREFIX}, not /{vnet.prefixlen}"))
        vnet = None
    special = next((what for net, what in SPECIAL_RANGES.items()
                    if vnet is not None and vnet.overlaps(net)), None)
    if special:
        problems.append(Problem(f"{vp}.cidr", f"{vnet} is in the {special} range, which "
                                f"is not unicast: a VPC CIDR cannot be there"))
        vnet = None

    # Subnets: inside the VPC, no overlap, sane size, AZ in the lab's region.
    subnets: dict[str, ipaddress.IPv4Network] = {}
    for sname, sn in _mapping(vpc.get("subnets")).items():
        if not isinstance(sn, dict):
            continue
        sp = f"{vp}.subnets.{sname}"
        snet = _net(sn.get("cidr"), f"{sp}.cidr", problems)
        if snet is None:
            continue
        if not MIN_PREFIX <= snet.prefixlen <= MAX_PREFIX:
            problems.append(Problem(f"{sp}.cidr", f"a subnet CIDR must be /{MIN_PREFIX} to "
                                    f"/{MAX_PREFIX}, not /{snet.prefixlen}"))
            continue
        if vnet is not None and not snet.subnet_of(vnet):
            problems.append(Problem(f"{sp}.cidr",
                                    f"{snet} is outside the VPC CIDR {vnet}"))
            continue
        for other, onet in subnets.items():
            if snet.overlaps(onet):
                problems.append(Problem(f"{sp}.cidr",
                                        f"{snet} overlaps subnet {other} ({onet})"))
                break
        else:
            subnets[str(sname)] = snet
        az = sn.get("az")
        if region and isinstance(az, str) and not (az.startswith(region) and
                                                     len(az) == len(region) + 1):
            problems.append(Problem(f"{sp}.az", f"{az} is not an availability zone of "
                                    f"the lab's region {region}"))

    # Security groups: rules well-formed, `sg:` references known.
    groups = set(_mapping(vpc.get("security_groups"))) | {DEFAULT_SG}
    for gname, g in _mapping(vpc.get("security_groups")).items():
        if not isinstance(g, dict):
            continue
        for direction, peer_key in (("ingress", "source"), ("egress", "destination")):
            rules = g.get(direction)
            if not isinstance(rules, list):
                continue
            for i, r in enumerate(rules):
                if isinstance(r, dict):
                    problems += _check_rule(r, peer_key, groups,
                                            f"{vp}.security_groups.{gname}.{direction}[{i}]")

    # Instances: name fits an interface, subnet and groups exist, address valid and free.
    taken: dict[str, dict[ipaddress.IPv4Address, str]] = {s: {} for s in subnets}
    wanting: dict[str, int] = {s: 0 for s in subnets}
    for iname, inst in _mapping(vpc.get("instances")).items():
        if not isinstance(inst, dict):
            continue
        ip_ = f"{vp}.instances.{iname}"
        if isinstance(iname, str) and len(iname) > names.MAX_INSTANCE_NAME:
            problems.append(Problem(ip_, f"instance name is {len(iname)} characters; its ENI "
                                    f"{names.eni_ifname(iname)!r} must fit an interface name "
                                    f"({names.IFNAMSIZ} characters), so at most "
                                    f"{names.MAX_INSTANCE_NAME}"))
        sname = inst.get("subnet")
        known_subnet = isinstance(sname, str) and sname in _mapping(vpc.get("subnets"))
        if isinstance(sname, str) and not known_subnet:
            have = ", ".join(_mapping(vpc.get("subnets"))) or "none"
            problems.append(Problem(f"{ip_}.subnet", f"unknown subnet {sname!r} in VPC "
                                    f"{vname} (subnets: {have})"))
        problems += _check_ready(inst, ip_)
        sgs = inst.get("security_groups")
        if isinstance(sgs, list):
            seen: set[str] = set()
            for k, gn in enumerate(sgs):
                if not isinstance(gn, str):
                    continue
                if gn in seen:
                    problems.append(Problem(f"{ip_}.security_groups[{k}]",
                                            f"security group {gn!r} is listed twice"))
                seen.add(gn)
                if gn not in groups:
                    problems.append(Problem(f"{ip_}.security_groups[{k}]",
                                            f"unknown security group {gn!r} in VPC {vname}"))
        if not known_subnet or sname not in subnets:
            continue
        snet = subnets[sname]
        ip = inst.get("ip")
        if ip is None:
            wanting[sname] += 1
            continue
        if not isinstance(ip, str):
            continue
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            problems.append(Problem(f"{ip_}.ip", f"{ip} is not a valid IPv4 address"))
            continue
        if addr not in snet:
            problems.append(Problem(f"{ip_}.ip", f"{ip} is outside subnet {sname} ({snet})"))
            continue
        offset = int(addr) - int(snet.network_address)
        reserved = RESERVED[-1] if addr == snet.broadcast_address else RESERVED.get(offset)
        if reserved:
            problems.append(Problem(f"{ip_}.ip", f"{ip} is {reserved} of subnet {sname} "
                                    f"(AWS reserves the first four and the last address)"))
            continue
        if addr in taken[sname]:
            problems.append(Problem(f"{ip_}.ip", f"{ip} is already the address of instance "
                                    f"{taken[sname][addr]}"))
            continue
        taken[sname][addr] = str(iname)
    for sname, n in wanting.items():
        snet = subnets[sname]
        room = snet.num_addresses - FIRST_FREE_OFFSET - 1 - len(taken[sname])
        if n > room:
            problems.append(Problem(f"{vp}.subnets.{sname}", f"{n} instances need an address "
                                    f"but only {room} are free in {snet}"))
    return problems


def _check_ready(inst: dict, path: str) -> list[Problem]:
    """An instance's `ready:`: for its `run:` command, one check, TCP or HTTP."""
    ready = inst.get("ready")
    if not isinstance(ready, dict):
        return []
    problems = []
    if "run" not in inst:
        problems.append(Problem(f"{path}.ready", "ready: says when a `run:` command is "
                                "ready, and this instance has no run:"))
    checks = [k for k in ("tcp", "http") if k in ready]
    if len(checks) != 1:
        problems.append(Problem(f"{path}.ready", "give exactly one check: tcp: PORT or "
                                f"http: /PATH (got {' and '.join(checks) or 'neither'})"))
    if "port" in ready and "http" not in ready:
        problems.append(Problem(f"{path}.ready.port", "port: goes with http: (tcp: is "
                                "itself the port)"))
    return problems


def _check_rule(r: dict, peer_key: str, groups: set[str], path: str) -> list[Problem]:
    problems: list[Problem] = []
    proto, ports, peer = r.get("protocol"), r.get("ports"), r.get(peer_key)
    if ports is not None and proto in ("icmp", "all"):
        problems.append(Problem(f"{path}.ports", f"ports apply to tcp and udp only, "
                                f"not to {proto}"))
    m = re.fullmatch(r"([0-9]{1,5})(?:-([0-9]{1,5}))?", ports) if isinstance(ports, str) else None
    if m and m.group(2) is not None:
        lo, hi = int(m.group(1)), int(m.group(2))
        if hi > 65535 or lo > hi:
            problems.append(Problem(f"{path}.ports", f"{ports} is not a port range "
                                    f"(lo-hi with lo <= hi <= 65535)"))
    elif m and int(m.group(1)) > 65535:
        problems.append(Problem(f"{path}.ports", f"{ports} is not a port (0..65535)"))
    if isinstance(peer, str):
        if peer.startswith("sg:"):
            if peer[3:] not in groups:
                problems.append(Problem(f"{path}.{peer_key}", f"unknown security group "
                                        f"{peer[3:]!r} (sg: refers to a group of the same VPC)"))
        else:
            _net(peer, f"{path}.{peer_key}", problems)
    return problems


def check_document(doc: Any) -> list[Problem]:
    """Every problem with a topology document, structure first; [] when it is good."""
    if not isinstance(doc, dict):
        return [Problem("", f"a topology file is a mapping with keys lab and vpcs, "
                            f"not {_kind(doc)}")]
    return list(dict.fromkeys(check_schema(doc) + check_semantics(doc)))
