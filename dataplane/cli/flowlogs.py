"""`vpclab flowlogs`: VPC Flow Logs of a running lab.

    vpclab flowlogs -l LAB [-f] [--json]                  the records, every flow log's
    vpclab flowlogs -l LAB enable [--interval 60|600] [--format F] VPC|VPC/INSTANCE|ENI-ID
    vpclab flowlogs -l LAB disable VPC|VPC/INSTANCE|ENI-ID

Records are read from /run/vpclab/<lab>/flowlogs/<fl-id>/<eni-id>.log (one directory
per flow log, one file per ENI; dataplane/services/flowlogs/collector.py writes them);
with several flow logs each line is prefixed with the flow log's target. `-f` follows
them, new ENIs' files included, until interrupted. `--json` writes JSON Lines:
`{"version": 1, "lab": LAB, "flow_log": FL-ID, "target": TARGET, "interface_id": ENI-ID,
"line": the record, "record": {field: value}}`, fields by AWS's names.

`enable` on a target that has a flow log changes its interval and format. `--interval`
takes 60 or 600 (1-59 only with VPCLAB_FLOWLOGS_TEST_INTERVALS=1, for tests);
`--format` is `default` or AWS's `${field} ${field} …` (model/flow_logs.py's FIELDS).
"""
from __future__ import annotations

import json
import os
import sys
import time

from dataplane.model.flow_logs import DEFAULT_FORMAT, DEFAULT_INTERVAL, parse_format

from ..lab import State
from .common import EXIT_OK, JSON_VERSION, add_lab_option, lab_name, need_root, pick_lab

FOLLOW_POLL_S = 0.2


def register(sub) -> None:
    p = sub.add_parser("flowlogs", help="VPC Flow Logs: read, enable, disable")
    add_lab_option(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep reading new records")
    p.add_argument("--json", action="store_true",
                   help="JSON Lines: one object per record, its fields parsed")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    e = actions.add_parser("enable", help="a flow log on a VPC, an instance or an ENI")
    add_lab_option(e)
    e.add_argument("--interval", type=int, default=DEFAULT_INTERVAL,
                   help="aggregation interval, seconds: 60 or 600 (default 600)")
    e.add_argument("--format", default=DEFAULT_FORMAT,
                   help="default, or AWS's custom format: '${version} ${srcaddr} …'")
    e.add_argument("target", metavar="VPC|VPC/INSTANCE|ENI-ID",
                   help="a VPC (its every ENI), an instance, or any ENI by its ID")
    d = actions.add_parser("disable", help="remove a flow log (its records stay)")
    add_lab_option(d)
    d.add_argument("target", metavar="VPC|VPC/INSTANCE|ENI-ID",
                   help="the target the flow log was enabled on")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..lab import realise_flow_logs as fl
    if args.action in ("enable", "disable"):
        need_root()
        st = pick_lab(lab_name(args))
        if args.action == "enable":
            rec = fl.enable(st.lab, args.target, args.interval, args.format)
            print(f"flow log {rec['id']} on {args.target}: every {rec['interval']} s, format "
                  f"{rec['format']}; records in {st.dir}/flowlogs/{rec['id']}/")
        else:
            fl.disable(st.lab, args.target)
            print(f"flow log on {args.target} removed (its records stay)")
        return EXIT_OK
    st = pick_lab(lab_name(args))
    return read(st, args.follow, args.json)


def read(st, follow: bool, as_json: bool) -> int:
    """Print every flow log's records; with `follow`, then the new ones as they come."""
    root = os.path.join(st.dir, "flowlogs")
    files: dict[str, object] = {}
    try:
        while True:
            st = (State.load(st.lab) or st) if follow else st
            logs = st.data.get("flow_logs") or {}
            prefix = len(logs) > 1
            wrote = False
            for target, rec in sorted(logs.items()):
                d = os.path.join(root, rec["id"])
                fields = parse_format(rec["format"])
                for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                    path = os.path.join(d, name)
                    if path not in files:
                        files[path] = open(path, encoding="utf-8", errors="replace")
                    for line in files[path]:
                        wrote = True
                        sys.stdout.write(_out(st.lab, target, rec["id"], name[:-4], fields,
                                              line, prefix, as_json))
            if wrote:
                sys.stdout.flush()
            if not follow:
                return EXIT_OK
            time.sleep(FOLLOW_POLL_S)
    finally:
        for f in files.values():
            f.close()


def _out(lab: str, target: str, fid: str, eni: str, fields, line: str, prefix: bool,
         as_json: bool) -> str:
    from ..services.flowlogs.records import parse_line
    text = line.rstrip("\n")
    if not as_json:
        return f"{target} {text}\n" if prefix else text + "\n"
    try:
        record = parse_line(fields, text)
    except ValueError:
        record = None
    return json.dumps({"version": JSON_VERSION, "lab": lab, "flow_log": fid, "target": target,
                       "interface_id": eni, "line": text, "record": record}) + "\n"
