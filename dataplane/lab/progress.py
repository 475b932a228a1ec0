"""Progress of `up`: one line per step on stderr, and the interrupt that stops it.

A signal handler only records the request (`request_interrupt`); `up` raises
`Interrupted` at the next step boundary (`check_interrupt`) and rolls back.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

class Interrupted(Exception):
    """`up` was asked to stop (SIGINT/SIGTERM); raised at the next step boundary."""


_interrupt: str | None = None


def request_interrupt(why: str) -> None:
    """Called from a signal handler: `up` stops and rolls back at its next step.

    Raising from the handler itself would be unsafe: Python drops exceptions raised
    inside some internals (an at-fork hook, a finalizer), and `up` would then finish
    as if nothing happened.
    """
    global _interrupt
    _interrupt = why


def check_interrupt() -> None:
    global _interrupt
    if _interrupt is not None:
        why, _interrupt = _interrupt, None
        raise Interrupted(why)



class Progress:
    """Step lines on stderr when it is a terminal (or when forced), silent otherwise."""

    def __init__(self, total: int, enabled: bool | None = None):
        self.total, self.n = total, 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.current = ""

    def step(self, what: str) -> None:
        check_interrupt()
        self.n += 1
        self.current = what
        if self.enabled:
            print(f"[{self.n}/{self.total}] {what}", file=sys.stderr, flush=True)

    def note(self, line: str) -> None:
        """A line about the current step while it lasts (a wait)."""
        if self.enabled:
            print(f"      {line}", file=sys.stderr, flush=True)


@dataclass
class Step:
    """One step of `up`: the line `Progress` shows, and what it does."""
    what: str
    run: Callable[[], None]


def run_steps(steps: list[Step], progress: Progress) -> None:
    for s in steps:
        progress.step(s.what)
        s.run()
