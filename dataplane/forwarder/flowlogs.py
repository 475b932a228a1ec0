"""The forwarder's side of VPC Flow Logs: the `flowlogs` control command.

It answers, in one reply, what the flow log collector (dataplane/services/flowlogs)
needs of the engine each poll: every live flow seen at or after the request's
`since_ns` (0: all; the reply's `now_ns` is the next call's) with its packets and bytes
each way, as the engine's records in base64 (`flows(reply)` reads them), the flows expired since the last call with their final counts, how many
expired flows the engine could not keep for lack of room (`expired_lost`), and each
port's security-group drops (`sg_ingress`, `sg_egress`), which the engine counts but
does not keep per 5-tuple.

Reading expired flows empties the engine's ring (hp_expired_read): this command is
their one reader, and the lab's one collector its one caller.
"""
from __future__ import annotations

import base64

from .engine import flows_from_raw, flows_raw_page

REFUSALS = ("sg_ingress", "sg_egress")


def report(daemon, request: dict) -> dict:
    """The reply to `flowlogs` (module docstring). The flow table is read a page at a
    time, the forwarder's loop held for each page only, as the engine's own records in
    base64 (`flows_raw`, read with `flows`): the forwarder spends no Python per flow, the
    cost bench/test_flow_logs_cost.py measures."""
    since = int(request.get("since_ns", 0))
    now = daemon.forwarder.now_ns()
    pages, cursor = [], 0
    while True:
        with daemon.forwarder.locked():
            page, cursor = flows_raw_page(daemon.engine, cursor, since)
        pages.append(page)
        if not cursor:
            break
    with daemon.forwarder.locked():
        expired = daemon.engine.expired()
        lost = daemon.engine.expired_lost
        refused = {pid: sum(daemon.engine.drops(pid)[r] for r in REFUSALS)
                   for pid in sorted(daemon.applied.ports)}
    return {"flows_raw": base64.b64encode(b"".join(pages)).decode("ascii"),
            "expired": [flow_dict(f) for f in expired], "expired_lost": lost,
            "refused": refused, "now_ns": now}


def flows(reply: dict) -> list[dict]:
    """The live flows of a `flowlogs` reply, each as `flow_dict` gives it."""
    return [flow_dict(f) for f in flows_from_raw(base64.b64decode(reply["flows_raw"]))]


def flow_dict(f) -> dict:
    """A flow as the collector reads it (the fields of `flows`' that it needs)."""
    return {"id": f.id, "service": f.service, "in_port": f.in_port, "out_port": f.out_port,
            "protocol": f.protocol, "tcp_state": f.tcp_state, "client": f.client, "vip": f.vip,
            "snat": f.snat, "backend": f.backend, "packets": f.packets, "bytes": f.bytes,
            "created_ns": f.created_ns}
