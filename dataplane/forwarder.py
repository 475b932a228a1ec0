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
    fwd.stop()

Sockets are opened in the interface's namespace (netns_setup.nsenter.in_netns_thread), so the
caller's own namespace never changes.
"""
from __future__ import annotations

import contextlib
import socket
import threading
from typing import Iterator

from dataplane._native import ffi, lib
from dataplane.engine import Engine, EngineError
from netns_setup.nsenter import in_netns_thread

NS_PER_S = 1_000_000_000


def max_frame(slot_size: int = 0) -> int:
    """The largest frame a receive slot of `slot_size` bytes takes (0: the default size):
    GSO frames from the devices that transmit into the forwarder must not be larger
    (netns_setup/offload.py)."""
    return lib.hp_io_max_frame(slot_size)


class Forwarder:
    """`ring_slots` and `slot_size` set each port's rings (0: hp_io.c's defaults);
    `busy_poll_us` keeps the loop reading the rings that long after the last frame."""

    def __init__(self, engine: Engine, *, ring_slots: int = 0, slot_size: int = 0,
                 busy_poll_us: int = 0) -> None:
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

    @property
    def max_frame(self) -> int:
        return max_frame(self.slot_size)

    # -- running --------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise EngineError("the forwarder is already running")

        def run() -> None:
            if lib.hp_io_run(self._io) < 0:
                self._run_error = ffi.string(lib.hp_io_last_error(self._io)).decode()

        self._thread = threading.Thread(target=run, name="vpclab-forwarder", daemon=True)
        self._thread.start()

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
