"""The forwarder's side of VPC Flow Logs: the `flowlogs` control command.

It answers, in one reply, what the flow log collector (dataplane/services/flowlogs)
needs of the engine each poll: every live flow with its packets and bytes each way (as
`flows`), the flows expired since the last call with their final counts, how many
expired flows the engine could not keep for lack of room (`expired_lost`), and each
port's security-group drops (`sg_ingress`, `sg_egress`), which the engine counts but
does not keep per 5-tuple.

Reading expired flows empties the engine's ring (hp_expired_read): this command is
their one reader, and the lab's one collector its one caller.
"""
from __future__ import annotations

import dataclasses

REFUSALS = ("sg_ingress", "sg_egress")


def report(daemon) -> dict:
    """The reply to `flowlogs` (module docstring)."""
    flows = daemon.flows()
    with daemon.forwarder.locked():
        expired = daemon.engine.expired()
        lost = daemon.engine.expired_lost
        refused = {pid: sum(daemon.engine.drops(pid)[r] for r in REFUSALS)
                   for pid in sorted(daemon.applied.ports)}
    return {"flows": flows, "expired": [dataclasses.asdict(f) for f in expired],
            "expired_lost": lost, "refused": refused}
