"""The processes a lab runs (dnsmasq, `run:` commands, the forwarder): started in
their namespace and recorded in the state file at once, so teardown finds them."""
from __future__ import annotations

from netns_setup import procs

from .state import State


def start(st: State, role: str, vpc: str, instance: str | None, netns: str,
           argv: list[str], log: str, resolv: str | None) -> int:
    pid, started = procs.spawn(netns, argv, log, resolv)
    st.data["processes"].append({"pid": pid, "start": started, "role": role, "vpc": vpc,
                                 "instance": instance, "netns": netns, "argv": argv,
                                 "log": log})
    st.save()
    return pid


def tail(path: str, n: int = 3) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = f.read().strip().splitlines()
        return " | ".join(lines[-n:]) or "(empty log)"
    except OSError:
        return "(no log)"
