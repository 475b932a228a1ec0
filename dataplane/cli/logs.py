"""`vpclab logs [-l LAB] API [--stage S] [-f]`: an API's access log, one line a request.
`vpclab logs [-l LAB] VPC/ALB [-f]`: an Application Load Balancer's.

REST APIs log AWS's CLF-like line, HTTP APIs its JSON line (dataplane/services/apigw/accesslog.py
has the variables), ALBs AWS's ALB access-log line (each node writes its own file; with
several nodes each line is prefixed with the node's subnet). Without `--stage` the API's
only stage is read, or all of its stages (each line prefixed with the stage) when it has
several. `-f` follows the files as `tail -f` does until interrupted.

`--json` writes JSON Lines — one object per log line, followed or not, so a script reads
the same stream either way and `-f --json | jq` works line by line:
`{"version": 1, "lab": LAB, "log": "api"|"alb", "name": API|VPC/ALB, "part": STAGE|SUBNET,
"line": the line as written, "record": {field: value}}`. The record's fields are AWS's
names: an HTTP API's JSON line as it is; a REST API's CLF line as `sourceIp`, `caller`,
`user`, `requestTime`, `httpMethod`, `resourcePath`, `protocol`, `status`,
`responseLength`, `requestId`, `extendedRequestId`; an ALB's line as ALB_FIELDS (the
names of AWS's ALB access-log page). A line that does not parse has `"record": null`.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time

from .common import (EXIT_OK, EXIT_USAGE, JSON_VERSION, CliError, add_lab_option, lab_name,
                     pick_lab)

FOLLOW_POLL_S = 0.2

REST_FIELDS = ("sourceIp", "caller", "user", "requestTime", "httpMethod", "resourcePath",
               "protocol", "status", "responseLength", "requestId", "extendedRequestId")
REST_LINE = re.compile(r'(\S+) (\S+) (\S+) \[([^\]]*)\] "(\S+) (.*) (\S+)" (\S+) (\S+) (\S+) (\S+)')
# dataplane/services/alb/accesslog.py writes them, in this order.
ALB_FIELDS = ("type", "time", "elb", "client:port", "target:port", "request_processing_time",
              "target_processing_time", "response_processing_time", "elb_status_code",
              "target_status_code", "received_bytes", "sent_bytes", "request", "user_agent",
              "ssl_cipher", "ssl_protocol", "target_group_arn", "trace_id", "domain_name",
              "chosen_cert_arn", "matched_rule_priority", "request_creation_time",
              "actions_executed", "redirect_url", "error_reason", "target:port_list",
              "target_status_code_list", "classification", "classification_reason")


def register(sub) -> None:
    p = sub.add_parser("logs", help="read or follow an API's or an ALB's access log")
    add_lab_option(p)
    p.add_argument("api", metavar="API|VPC/ALB",
                   help="an API's name in the topology file, or an ALB as VPC/NAME")
    p.add_argument("--stage", help="one stage of an API (default: every stage)")
    p.add_argument("-f", "--follow", action="store_true", help="keep reading new lines")
    p.add_argument("--json", action="store_true",
                   help="JSON Lines: one object per log line, with its fields parsed")
    p.set_defaults(func=run)


def parse_line(kind: str, line: str) -> dict | None:
    """The fields of one access-log line by AWS's names (the module's docstring), or
    None when the line is not in the format."""
    text = line.rstrip("\n")
    if kind == "alb":
        try:
            values = shlex.split(text, posix=True)
        except ValueError:
            return None
        return dict(zip(ALB_FIELDS, values)) if len(values) == len(ALB_FIELDS) else None
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None
    m = REST_LINE.fullmatch(text)
    return dict(zip(REST_FIELDS, m.groups())) if m else None


def json_line(lab: str, kind: str, name: str, part: str, line: str) -> str:
    """One line of `vpclab logs --json`."""
    return json.dumps({"version": JSON_VERSION, "lab": lab, "log": kind, "name": name,
                       "part": part, "line": line.rstrip("\n"),
                       "record": parse_line(kind, line)}) + "\n"


def alb_log_paths(st, ref: str, stage: str | None) -> dict[str, str]:
    albs = st.data.get("albs") or {}
    if ref not in albs:
        raise CliError(f"lab {st.lab} has no ALB {ref!r} (ALBs: {', '.join(albs) or 'none'})",
                       EXIT_USAGE)
    if stage is not None:
        raise CliError("--stage is for an API's log; an ALB has none", EXIT_USAGE)
    return {n["subnet"]: n["access_log"] for n in albs[ref]["nodes"]}


def log_paths(st, api: str, stage: str | None) -> dict[str, str]:
    if "/" in api:
        return alb_log_paths(st, api, stage)
    gateway = st.data.get("api_gateway")
    apis = st.data["topology"].get("api_gateway", {}).get("apis", {})
    if gateway is None or api not in apis:
        raise CliError(f"lab {st.lab} has no API {api!r} (APIs: {', '.join(apis) or 'none'})",
                       EXIT_USAGE)
    stages = apis[api]["stages"]
    if stage is not None and stage not in stages:
        raise CliError(f"API {api} has no stage {stage!r} (stages: {', '.join(stages)})",
                       EXIT_USAGE)
    d = os.path.join(gateway["front_end"]["access_logs"], api)
    return {s: os.path.join(d, f"{s}.log") for s in ([stage] if stage else stages)}


def run(args) -> int:
    st = pick_lab(lab_name(args))
    paths = log_paths(st, args.api, args.stage)
    prefix = len(paths) > 1
    kind = "alb" if "/" in args.api else "api"
    files = {}
    for stage, path in paths.items():
        try:
            files[stage] = open(path, "r", encoding="utf-8", errors="replace")
        except FileNotFoundError:
            files[stage] = None         # no request yet: the front end makes it on the first
    try:
        while True:
            wrote = False
            for stage, f in list(files.items()):
                if f is None and os.path.exists(paths[stage]):
                    f = files[stage] = open(paths[stage], "r", encoding="utf-8", errors="replace")
                if f is None:
                    continue
                for line in f:
                    if args.json:
                        sys.stdout.write(json_line(st.lab, kind, args.api, stage, line))
                    else:
                        sys.stdout.write(f"{stage} {line}" if prefix else line)
                    wrote = True
            if wrote:
                sys.stdout.flush()
            if not args.follow:
                return EXIT_OK
            time.sleep(FOLLOW_POLL_S)
    finally:
        for f in files.values():
            if f is not None:
                f.close()
