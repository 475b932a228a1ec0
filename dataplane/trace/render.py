"""A trace as text: an indented tree, one hop a branch, as `ovs-appctl ofproto/trace`
prints a flow's way through its tables. Each hop's title, what it did beneath it, and a
mark at the start of the line: `+` passed, `x` dropped, `-` information only."""
from __future__ import annotations

from .path import Trace

MARKS = {"pass": "+", "drop": "x", "info": "-"}


def render(t: Trace) -> str:
    head = f"trace {t.source} → {t.destination}" + (f":{t.port}" if t.protocol != "icmp" else "") \
        + f" ({t.protocol})"
    out = [head]
    for n, hop in enumerate(t.hops, 1):
        out.append(f"{n:>2}. {MARKS[hop.verdict]} {hop.title}")
        out += [f"        {line}" for line in hop.lines]
    if t.reachable:
        out.append(f"verdict: reachable — {t.reason} (the client sees: {t.client_sees})")
    else:
        out.append(f"verdict: not reachable — {t.code} at {t.component}: {t.reason} "
                   f"(the client sees: {t.client_sees})")
    return "\n".join(out)
