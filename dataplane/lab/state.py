"""The lab's record: /run/vpclab/<lab>/state.json, and the error every lab step raises.

The state file is written *before* anything is made (the full list of planned
namespaces, after checking that none exists yet) and updated as each process starts, so
`down`, `status` and `cleanup` need nothing but it, even after a `kill -9` half-way.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from typing import Any, Iterator

from netns_setup import procs

from dataplane.model import names

STATE_VERSION = 1
_saving = threading.Lock()


class LabError(RuntimeError):
    """Bringing a lab up or down failed; the message says what and what was done."""



class State:
    """The lab's record in /run/vpclab/<lab>/state.json (see the module docstring)."""

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.repaired: list[str] = []      # what `up` restarted on a degraded lab
        self.reconciled: list[str] = []    # the plan `up` applied to a running lab

    @property
    def lab(self) -> str:
        return self.data["lab"]

    @property
    def dir(self) -> str:
        return names.lab_dir(self.lab)

    @property
    def path(self) -> str:
        return os.path.join(self.dir, "state.json")

    @classmethod
    def load(cls, lab: str) -> "State | None":
        try:
            with open(os.path.join(names.lab_dir(lab), "state.json")) as f:
                return cls(json.load(f))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise LabError(f"state of lab {lab} is unreadable: {e}") from e

    def save(self) -> None:
        """Write the state (atomically: a new file renamed over the old one). `up`'s
        worker threads save as they start processes, one at a time; the file is compact
        JSON, as the C encoder writes it in a fraction of the indenting one's time."""
        with _saving:
            os.makedirs(self.dir, mode=0o755, exist_ok=True)
            tmp = self.path + ".tmp"
            text = json.dumps(self.data, separators=(",", ":"))
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, self.path)

    @classmethod
    @contextlib.contextmanager
    def locked(cls, lab: str) -> Iterator["State | None"]:
        """The lab's state read under its lock (None when the lab has none), for a
        read-change-save that must not interleave with another (the supervisor's
        restarts and `down`'s `stopping`)."""
        d = names.lab_dir(lab)
        try:
            fd = os.open(os.path.join(d, "state.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            yield None
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield cls.load(lab)
        finally:
            os.close(fd)

    def owner_alive(self) -> bool:
        return procs.alive(self.data.get("owner_pid", 0), self.data.get("owner_start"))


def state_labs() -> list[str]:
    try:
        return sorted(d for d in os.listdir(names.RUN_DIR)
                      if os.path.isdir(os.path.join(names.RUN_DIR, d)))
    except FileNotFoundError:
        return []


def labs_up() -> list[str]:
    out = []
    for lab in state_labs():
        st = State.load(lab)
        if st and st.data.get("status") == "up":
            out.append(lab)
    return out
