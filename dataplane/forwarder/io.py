"""The Hyperplane forwarder's data path: an Engine on real interfaces.

`Forwarder` binds engine ports to the hyperplane ends of ENI veths (AF_PACKET rings,
native/hp_io.h) and runs the C poll loop in a thread of its own. cffi releases the GIL
for the whole call, so Python never sees a packet and keeps serving the control plane
(health checks, the control socket) in the meantime. Table changes go through
`with forwarder.locked():`, which holds the loop between two batches.

    fwd = Forwarder(engine)
    fwd.open_port(0, "eni-0a1b2c", netns="demo-hyperplane")
    fwd.start()
    with fwd.locked():
        engine.set_backends(svc, healthy_targets)
    fwd.close_port(0)          # while it runs: the interface may go once this returns
    fwd.stop()

Sockets are opened in the interface's namespace (netns_setup.nsenter.in_netns_thread), so the
caller's own namespace never changes.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Iterator

from dataplane._native import ffi, lib
from dataplane.forwarder.engine import Engine, EngineError
from netns_setup.nsenter import in_netns_thread

NS_PER_S = 1_000_000_000


def max_frame(slot_size: int = 0) -> int:
    """The largest frame a receive slot of `slot_size` bytes takes (0: the default size):
    GSO frames from the devices that transmit into the forwarder must not be larger
    (netns_setup/offload.py)."""
    return lib.hp_io_max_frame(slot_size)


# The loop thread's real-time priority (SCHED_FIFO). With ordinary scheduling, any other
# process on its CPU can keep it waiting for a time slice while frames arrive; its
# 256-slot receive rings then overflow even at 20,000 packets/s (measured in bench/).
# As SCHED_FIFO it runs as soon as frames arrive, like the kernel's own packet
# processing; it sleeps in poll() when there are none, and the kernel's real-time
# throttling (95 % of a CPU by default) bounds it under a flood. Below the kernel's
# threaded interrupt handlers (50).
RT_PRIORITY = 10


class Forwarder:
    """`ring_slots` and `slot_size` set each port's rings (0: hp_io_afpacket.c's defaults);
    `busy_poll_us` keeps the loop reading the rings that long after the last frame;
    `rt_priority` is the loop thread's SCHED_FIFO priority (0: ordinary scheduling)."""

    def __init__(self, engine: Engine, *, ring_slots: int = 0, slot_size: int = 0,
                 busy_poll_us: int = 0, rt_priority: int = RT_PRIORITY) -> None:
        if not 0 <= rt_priority <= 99:
            raise EngineError(f"real-time priority {rt_priority} is outside 0-99")
        self.engine = engine
        ptr = lib.hp_io_create(engine._e)
        if ptr == ffi.NULL:
            raise EngineError("could not create the forwarder (out of memory or eventfds)")
        cfg = ffi.new("struct hp_io_config *", {"ring_slots": ring_slots, "slot_size": slot_size,
                                                "busy_poll_us": busy_poll_us})
        if lib.hp_io_configure(ptr, cfg) < 0:
            error = ffi.string(lib.hp_io_last_error(ptr)).decode()
            lib.hp_io_destroy(ptr)
            raise EngineError(f"forwarder rings: {error}")
        self._io = ptr
        self.slot_size = slot_size
        self.busy_poll_us = busy_poll_us
        self.rt_priority = rt_priority
        self.scheduling = "not started"   # how the loop thread is scheduled, once it runs
        self._thread: threading.Thread | None = None
        self._run_error: str | None = None
        self.ports: dict[int, tuple[str, str | None]] = {}

    # -- set-up ---------------------------------------------------------------------------

    def open_port(self, port: int, ifname: str, netns: str | None = None) -> None:
        """Attaches engine port `port` to interface `ifname` in namespace `netns`."""
        where = f"{ifname} in namespace {netns}" if netns else ifname
        try:
            rc = in_netns_thread(netns, lambda: lib.hp_io_port_open(
                self._io, port, socket.if_nametoindex(ifname)))
        except OSError as exc:
            raise EngineError(f"cannot open {where}: {exc.strerror or exc}") from None
        if rc < 0:
            raise EngineError(f"cannot open {where}: {ffi.string(lib.hp_io_last_error(self._io)).decode()}")
        self.ports[port] = (ifname, netns)

    def close_port(self, port: int) -> None:
        """Detaches engine port `port` from its interface, also while the loop runs
        (hp_io_port_close: once this returns, the interface may be deleted). Not with the
        loop held (`locked()`): the close takes the same lock."""
        if lib.hp_io_port_close(self._io, port) < 0:
            raise EngineError(f"cannot close port {port}: "
                              f"{ffi.string(lib.hp_io_last_error(self._io)).decode()}")
        del self.ports[port]

    @property
    def max_frame(self) -> int:
        return max_frame(self.slot_size)

    # -- running --------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise EngineError("the forwarder is already running")

        def run() -> None:
            self.scheduling = self._set_scheduling()
            if lib.hp_io_run(self._io) < 0:
                self._run_error = ffi.string(lib.hp_io_last_error(self._io)).decode()

        self._thread = threading.Thread(target=run, name="vpclab-forwarder", daemon=True)
        self._thread.start()

    def _set_scheduling(self) -> str:
        """Makes the calling thread (the loop's) SCHED_FIFO at rt_priority, if asked and
        allowed; says what it got. A refusal (no CAP_SYS_NICE, or a container without
        real-time budget) leaves ordinary scheduling: slower to react, never wrong."""
        if not self.rt_priority:
            return "ordinary"
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.rt_priority))
        except OSError as exc:
            return f"ordinary (SCHED_FIFO {self.rt_priority} refused: {exc.strerror})"
        return f"SCHED_FIFO {self.rt_priority}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stops the loop (it wakes at once) and waits for its thread."""
        if self._thread is None:
            return
        lib.hp_io_stop(self._io)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise EngineError(f"the forwarder loop did not stop within {timeout} s")
        self._thread = None
        if self._run_error:
            raise EngineError(f"the forwarder loop failed: {self._run_error}")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @contextlib.contextmanager
    def locked(self) -> Iterator[Engine]:
        """Holds the loop between batches while the engine's tables are changed."""
        lib.hp_io_lock(self._io)
        try:
            yield self.engine
        finally:
            lib.hp_io_unlock(self._io)

    def set_clock_offset(self, seconds: float) -> None:
        """Moves the engine's clock: tests age flows by this instead of sleeping."""
        lib.hp_io_set_clock_offset(self._io, int(seconds * NS_PER_S))

    def now_ns(self) -> int:
        return lib.hp_io_now_ns(self._io)

    def port_stats(self, port: int) -> dict[str, int]:
        out = ffi.new("struct hp_io_port_stats *")
        if lib.hp_io_port_stats(self._io, port, out) < 0:
            raise EngineError(f"port {port} is not open")
        return {name: getattr(out, name) for name in dir(out)}

    def close(self) -> None:
        """Stops the loop if needed, then closes every socket and ring."""
        if self._io is None:
            return
        self.stop()
        lib.hp_io_destroy(self._io)
        self._io = None

    def __enter__(self) -> "Forwarder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
