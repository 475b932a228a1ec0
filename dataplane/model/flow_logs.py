"""VPC Flow Logs (AWS-FACTS §8): which ENIs log, how often, and in which format.

A flow log is asked for on a VPC (every ENI in it: instances' and the Hyperplane's —
endpoint, NLB and VPC link ENIs) or on one instance, in the topology file:

    vpcs:
      shop:
        cidr: 10.0.0.0/16
        flow_logs: {interval: 60, format: default}
        instances:
          web1:
            subnet: a
            flow_logs:
              interval: 600
              format: "${interface-id} ${srcaddr} ${pkt-srcaddr} ${tcp-flags} ${action}"

or on a running lab with `vpclab flowlogs -l LAB enable [--interval 60|600] [--format F]
VPC|VPC/INSTANCE|ENI-ID` (an ENI ID names any ENI, a Hyperplane one too). From Python:
`lab.add_flow_log("shop", interval=60)` or `lab.add_flow_log("shop/web1")`.

`interval` is AWS's aggregation interval, 60 or 600 seconds (600 when omitted, as on
AWS). Tests need shorter windows: with the environment variable
`VPCLAB_FLOWLOGS_TEST_INTERVALS=1` set (where validation and `enable` run), 1 to 59
seconds are accepted too; without it such an interval is refused, naming the field.

`format` is `default` (version 2, the 14 fields of AWS's default format) or a custom
format in AWS's syntax, `${field}` tokens separated by single spaces, from the fields
of versions 2 to 5 in `FIELDS`. The records' `${version}` is the highest version
among the fields a format uses (2 for the default), as on AWS.

Derived IDs, stable across `down` and `up` like every ID of the model: an instance's
ENI `eni-<17 hex>` and the instance `i-<17 hex>`, subnets `subnet-<17 hex>`, VPCs
`vpc-<17 hex>` (model/execute_api.py's).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from .checks import mapping
from .enis import stable_hex
from .problems import Problem, add_unique

INTERVALS = (60, 600)
DEFAULT_INTERVAL = 600
TEST_INTERVALS_ENV = "VPCLAB_FLOWLOGS_TEST_INTERVALS"
MAX_TEST_INTERVAL = 59
DEFAULT_FORMAT = "default"

# Every field a custom format may name, with the flow log version that brought it.
FIELDS: dict[str, int] = {
    "version": 2, "account-id": 2, "interface-id": 2, "srcaddr": 2, "dstaddr": 2,
    "srcport": 2, "dstport": 2, "protocol": 2, "packets": 2, "bytes": 2, "start": 2,
    "end": 2, "action": 2, "log-status": 2,
    "vpc-id": 3, "subnet-id": 3, "instance-id": 3, "tcp-flags": 3, "type": 3,
    "pkt-srcaddr": 3, "pkt-dstaddr": 3,
    "region": 4, "az-id": 4, "sublocation-type": 4, "sublocation-id": 4,
    "pkt-src-aws-service": 5, "pkt-dst-aws-service": 5, "flow-direction": 5,
    "traffic-path": 5,
}
DEFAULT_FIELDS: tuple[str, ...] = (
    "version", "account-id", "interface-id", "srcaddr", "dstaddr", "srcport", "dstport",
    "protocol", "packets", "bytes", "start", "end", "action", "log-status")
_TOKEN = re.compile(r"\$\{([^}]*)\}")


def parse_format(text: str) -> tuple[str, ...]:
    """The fields of a format: `default`, or `${field}` tokens separated by single
    spaces. Raises ValueError saying what is wrong (an unknown field names the known)."""
    if text == DEFAULT_FORMAT:
        return DEFAULT_FIELDS
    if not text.strip():
        raise ValueError("a format is `default` or ${field} tokens, and this one is empty")
    fields = []
    for word in text.split(" "):
        m = _TOKEN.fullmatch(word)
        if m is None:
            raise ValueError(f"{word!r} is not a ${{field}} token (a custom format is "
                             f"${{field}} tokens separated by single spaces)")
        name = m.group(1)
        if name not in FIELDS:
            raise ValueError(f"unknown field {name!r} (fields: {', '.join(FIELDS)})")
        if name in fields:
            raise ValueError(f"field {name!r} is named twice")
        fields.append(name)
    return tuple(fields)


def format_version(fields: tuple[str, ...]) -> int:
    """`${version}` of a format's records: the highest version of its fields."""
    return max(FIELDS[f] for f in fields)


def interval_problem(value: Any) -> str | None:
    """Why `value` is not an aggregation interval, or None (module docstring)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return f"expected a whole number of seconds, got {value!r}"
    if value in INTERVALS:
        return None
    if os.environ.get(TEST_INTERVALS_ENV) == "1" and 1 <= value <= MAX_TEST_INTERVAL:
        return None
    return (f"{value} is not an aggregation interval: AWS takes 60 or 600 seconds "
            f"(1-{MAX_TEST_INTERVAL} only for tests, with {TEST_INTERVALS_ENV}=1)")


def config_problems(value: Any, path: str) -> list[Problem]:
    """The problems of one `flow_logs:` mapping at `path` that its shape (the schema's
    `flow_logs`) does not show: an interval AWS refuses, a format that does not parse."""
    if not isinstance(value, dict):
        return []
    problems = []
    interval = value.get("interval")
    if isinstance(interval, int) and (why := interval_problem(interval)):
        problems.append(Problem(f"{path}.interval", why))
    fmt = value.get("format", DEFAULT_FORMAT)
    if isinstance(fmt, str):
        try:
            parse_format(fmt)
        except ValueError as e:
            problems.append(Problem(f"{path}.format", str(e)))
    return problems


@dataclass
class FlowLog:
    """One flow log: `target` is a VPC (`shop`), an instance (`shop/web1`) or, made on a
    running lab only, an ENI ID."""
    target: str
    interval: int = DEFAULT_INTERVAL
    format: str = DEFAULT_FORMAT

    @property
    def fields(self) -> tuple[str, ...]:
        return parse_format(self.format)

    def to_dict(self) -> dict[str, Any]:
        return {"interval": self.interval, "format": self.format}


def flow_log_id(lab: str, target: str) -> str:
    return "fl-" + stable_hex(lab, "flow-log", target)


def vpc_id(lab: str, vpc: str) -> str:
    from .execute_api import vpc_id as of_vpc      # the one definition of a VPC's ID
    return of_vpc(lab, vpc)


def subnet_id(lab: str, vpc: str, subnet: str) -> str:
    return "subnet-" + stable_hex(lab, vpc, "subnet", subnet)


def instance_id(lab: str, vpc: str, instance: str) -> str:
    return "i-" + stable_hex(lab, vpc, "instance", instance)


def instance_eni_id(lab: str, vpc: str, instance: str) -> str:
    return "eni-" + stable_hex(lab, vpc, "instance-eni", instance)


def az_id(region: str, az: str | None) -> str:
    """AWS's zone ID for a zone name: us-east-1a → use1-az1 (AWS maps names to IDs per
    account; vpclab maps them in letter order)."""
    if not az or len(az) != len(region) + 1:
        return "-"
    country, *where, number = region.split("-")
    short = country + "".join(_DIRECTIONS.get(w, w[:1]) for w in where) + number
    return f"{short}-az{ord(az[-1]) - ord('a') + 1}"


# How AWS's zone IDs shorten a region's direction: us-east-1 → use1, ap-southeast-1 → apse1.
_DIRECTIONS = {"southeast": "se", "northeast": "ne", "southwest": "sw", "northwest": "nw"}


@dataclass(kw_only=True)
class LabBuilder:
    """The flow logs' part of `Lab` (`Lab` inherits it): target → FlowLog."""
    flow_logs: dict[str, FlowLog] = field(default_factory=dict)

    def add_flow_log(self, target: str, interval: int = DEFAULT_INTERVAL,
                     format: str = DEFAULT_FORMAT) -> FlowLog:
        """A flow log on VPC `target` or instance `vpc/instance` (checked with the rest
        of the lab by `Lab.check()`)."""
        return add_unique(self.flow_logs, target, FlowLog(target, interval, format),
                          "flow log", _path(target).rsplit(".", 1)[0])


def _path(target: str) -> str:
    vpc, _, inst = target.partition("/")
    return f"vpcs.{vpc}.instances.{inst}.flow_logs" if inst else f"vpcs.{vpc}.flow_logs"


def eni_requests(lab, vpc) -> list:
    return []


def read(lab, doc: dict) -> None:
    for vname, v in mapping(doc.get("vpcs")).items():
        if "flow_logs" in mapping(v):
            lab.add_flow_log(vname, **v["flow_logs"])
        for iname, i in mapping(mapping(v).get("instances")).items():
            if "flow_logs" in mapping(i):
                lab.add_flow_log(f"{vname}/{iname}", **i["flow_logs"])


def write(lab, doc: dict) -> None:
    for target, fl in lab.flow_logs.items():
        vpc, _, inst = target.partition("/")
        where = doc["vpcs"].get(vpc)
        if where is None:
            continue
        if inst:
            where = where.get("instances", {}).get(inst)
            if where is None:
                continue
        where["flow_logs"] = fl.to_dict()


def check(doc: Any) -> list[Problem]:
    """Each `flow_logs:`'s interval and format (the schema checks its shape)."""
    problems: list[Problem] = []
    for vname, v in mapping(mapping(doc).get("vpcs")).items():
        v = mapping(v)
        if "flow_logs" in v:
            problems += config_problems(v["flow_logs"], f"vpcs.{vname}.flow_logs")
        for iname, i in mapping(v.get("instances")).items():
            if "flow_logs" in mapping(i):
                problems += config_problems(i["flow_logs"],
                                            f"vpcs.{vname}.instances.{iname}.flow_logs")
    return problems


def lab_problems(lab) -> list[Problem]:
    """A flow log built from Python names a VPC or instance the lab has."""
    problems = []
    for target in lab.flow_logs:
        vpc, _, inst = target.partition("/")
        if vpc not in lab.vpcs or (inst and inst not in lab.vpcs[vpc].instances):
            problems.append(Problem(_path(target), f"flow log on {target}: no such "
                                    f"{'instance' if inst else 'VPC'} in the lab"))
    return problems
