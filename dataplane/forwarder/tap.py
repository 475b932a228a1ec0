"""The forwarder's side of `vpclab capture --hyperplane`: one tap session at a time, polled.

The engine's tap (native/hp_tap.c) records each frame as it arrived and as it left after
translation, in a bounded ring. The control socket's `tap` command drives it, as three
actions on one-shot requests like every other command (control.py):

    {"cmd": "tap", "action": "start", "eni": NAME|null, "stage": "in"|"out"|"both",
     "snaplen": N}  → {"session": ID, "ports": {id: name}, "snaplen": N}
    {"cmd": "tap", "action": "read", "session": ID}
                    → {"records": [{ts_ns, stage, port, eni, verdict, drop_reason,
                                     orig_len, frame (base64)}], "kept": N, "dropped": N}
    {"cmd": "tap", "action": "stop", "session": ID}  → {"kept": N, "dropped": N}

Polled, not streamed: the control server answers one connection at a time, so a reply
that never ended would hold `stats`, `apply` and the health checks' changes behind it.
A reader that stops reading — killed, its terminal closed — must not leave the engine
filling a ring nobody reads: the session is a lease, renewed by every `read`, and a
watchdog thread turns the tap off once LEASE_S pass without one. Each read takes at most
READ_MAX records with the loop held between two batches (the copy of a few hundred KB).

Timestamps leave as wall-clock nanoseconds: the engine's clock is CLOCK_MONOTONIC plus
the test offset (hp_io.h), converted with the offset between the two measured at the read.
"""
from __future__ import annotations

import base64
import secrets
import threading
import time
import weakref
from typing import Any

LEASE_S = 3.0          # a reader that has not read for this long is gone
READ_MAX = 512         # records per read
STAGES = ("in", "out", "both")


class TapError(ValueError):
    """A tap request the forwarder refuses; the message says why."""


class TapSession:
    """The one tap of a daemon: who holds it, which port it watches, when it was read."""

    def __init__(self, daemon, eni: str | None, stage: str, snaplen: int) -> None:
        self.daemon = daemon
        self.id = secrets.token_hex(8)
        self.eni = eni
        self.port = None if eni is None else _port_of(daemon, eni)
        self.last_read = time.monotonic()
        self.ended: str | None = None
        with daemon.forwarder.locked() as engine:
            engine.tap_enable(self.port, stage, snaplen=snaplen)
            self.snaplen = engine.tap_stats()["snaplen"]
        self._watchdog = threading.Thread(target=self._watch, name="vpclab-tap-lease", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        while self.ended is None:
            time.sleep(LEASE_S / 6)
            if self.ended is None and time.monotonic() - self.last_read > LEASE_S:
                self.stop(f"no read for {LEASE_S:g} s (the reader went away)")
                print(f"tap {self.id}: turned off, {self.ended}", flush=True)

    def read(self) -> dict[str, Any]:
        self.last_read = time.monotonic()
        names = {pid: self.daemon.port_name(pid) for pid in self.daemon.applied.ports}
        with self.daemon.forwarder.locked() as engine:
            records = engine.tap_read(READ_MAX)
            stats = engine.tap_stats()
            offset = time.time_ns() - self.daemon.forwarder.now_ns()
        return {"records": [{"ts_ns": r.ts_ns + offset, "stage": r.stage, "port": r.port,
                             "eni": names.get(r.port, str(r.port)), "verdict": r.verdict,
                             "drop_reason": r.drop_reason, "orig_len": r.orig_len,
                             "frame": base64.b64encode(r.frame).decode()} for r in records],
                "kept": stats["kept"], "dropped": stats["dropped"], "pending": stats["pending"]}

    def stop(self, why: str) -> dict[str, Any]:
        """Turns the tap off (once); what it kept and dropped."""
        with self.daemon.forwarder.locked() as engine:
            if self.ended is not None:
                return {"kept": 0, "dropped": 0}
            stats = engine.tap_stats()
            engine.tap_disable()
            self.ended = why
        return {"kept": stats["kept"], "dropped": stats["dropped"]}


def _port_of(daemon, eni: str) -> int:
    for pid, port in daemon.applied.ports.items():
        if eni in (port.label, str(pid)):
            return pid
    names = ", ".join(sorted(p.label for p in daemon.applied.ports.values()))
    raise TapError(f"the forwarder has no port {eni!r} (its ports: {names})")


_sessions: "weakref.WeakKeyDictionary[Any, TapSession]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def command(daemon, request: dict) -> dict[str, Any]:
    """Answers one `tap` request of the control socket (see the module's docstring)."""
    action = request.get("action")
    with _lock:
        session = _sessions.get(daemon)
        if action == "start":
            if session is not None and session.ended is None:
                raise TapError("a capture of the Hyperplane is already running (one at a time; "
                               f"it ends when its reader stops or within {LEASE_S:g} s of "
                               "its reader going away)")
            stage = request.get("stage", "both")
            if stage not in STAGES:
                raise TapError(f"stage must be one of {', '.join(STAGES)}, not {stage!r}")
            session = _sessions[daemon] = TapSession(daemon, request.get("eni"), stage,
                                                     int(request.get("snaplen") or 0))
            return {"session": session.id, "snaplen": session.snaplen,
                    "ports": {str(pid): daemon.port_name(pid) for pid in daemon.applied.ports}}
        if action not in ("read", "stop"):
            raise TapError(f"tap action must be start, read or stop, not {action!r}")
        if session is None or session.id != request.get("session"):
            raise TapError(f"no tap session {request.get('session')!r} (another capture "
                           "started since, or the forwarder restarted)")
    if action == "stop":
        return session.stop("stopped by its reader")
    if session.ended is not None:
        raise TapError(f"the tap was turned off: {session.ended}")
    return session.read()
