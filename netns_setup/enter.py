"""Running a piece of Python inside a network namespace without moving the process.

setns(2) moves only the calling thread, so `run_in_netns` does the work in a
short-lived thread that enters the namespace, and hands back the result (or the
exception). Sockets opened there stay in that namespace after the thread ends, which
is how the forwarder's AF_PACKET sockets and ethtool ioctls reach lab interfaces.
"""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

from pyroute2.netns import setns

T = TypeVar("T")


def run_in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Runs `fn()` in a thread that has entered the named namespace (None: this one)."""
    box: list[tuple[bool, object]] = []

    def target() -> None:
        try:
            if netns is not None:
                setns(netns, flags=0)  # flags=0: never create a namespace by accident
            box.append((True, fn()))
        except BaseException as exc:  # handed to the caller below
            box.append((False, exc))

    thread = threading.Thread(target=target, name=f"vpclab-in-{netns}")
    thread.start()
    thread.join()
    ok, value = box[0]
    if not ok:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]
