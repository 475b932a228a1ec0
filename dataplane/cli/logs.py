"""`vpclab logs [-l LAB] API [--stage S] [-f]`: an API's access log, one line a request.
`vpclab logs [-l LAB] VPC/ALB [-f]`: an Application Load Balancer's.

REST APIs log AWS's CLF-like line, HTTP APIs its JSON line (dataplane/services/apigw/accesslog.py
has the variables), ALBs AWS's ALB access-log line (each node writes its own file; with
several nodes each line is prefixed with the node's subnet). Without `--stage` the API's
only stage is read, or all of its stages (each line prefixed with the stage) when it has
several. `-f` follows the files as `tail -f` does until interrupted.
"""
from __future__ import annotations

import os
import sys
import time

from .common import EXIT_OK, EXIT_USAGE, CliError, pick_lab

FOLLOW_POLL_S = 0.2


def register(sub) -> None:
    p = sub.add_parser("logs", help="read or follow an API's or an ALB's access log")
    p.add_argument("-l", "--lab", help="the lab (default: the only one up)")
    p.add_argument("api", metavar="API|VPC/ALB",
                   help="an API's name in the topology file, or an ALB as VPC/NAME")
    p.add_argument("--stage", help="one stage of an API (default: every stage)")
    p.add_argument("-f", "--follow", action="store_true", help="keep reading new lines")
    p.set_defaults(func=run)


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
    st = pick_lab(args.lab)
    paths = log_paths(st, args.api, args.stage)
    prefix = len(paths) > 1
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
                    sys.stdout.write(f"{stage} {line}" if prefix else line)
                    wrote = True
            if wrote:
                sys.stdout.flush()
            if not args.follow:
                return EXIT_OK
            time.sleep(FOLLOW_POLL_S)
    except BrokenPipeError:
        return EXIT_OK
    finally:
        for f in files.values():
            if f is not None:
                f.close()
