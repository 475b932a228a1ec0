"""Progress of `up`: one line per step on stderr, the interrupt that stops it, and the
steps that run side by side.

A signal handler only records the request (`request_interrupt`); `up` raises
`Interrupted` at the next step boundary (`check_interrupt`) and rolls back.
`held_signals` is that handler for SIGINT and SIGTERM, set around `up` and `down` by
`vpclab up` and by the Python API.

`up` is a list of steps run in order, except a `Parallel` item: lanes of steps (one per
VPC) that touch nothing of each other's, run by a few worker threads. Each lane's steps
run in order; a worker takes the next lane when its lane is done. The rules that make
the rollback of a failed `up` safe hold for lanes too:

* the first failure — an exception in a step, or `Interrupted` raised at a step boundary
  of any worker — stops every lane at its next step boundary; `run_steps` returns to
  its caller (which rolls back) only once every worker has stopped, so nothing is made
  while the rollback runs;
* the failure raised is the first one, and `Progress.current` names the step it
  happened in (the line `up`'s error message quotes);
* a Ctrl-C that reaches the main thread as KeyboardInterrupt while it waits for the
  workers stops them the same way and is raised once they have;
* each worker thread holds its own rtnetlink connections (netns_setup/kernel.py
  `connections()`), one block per lane, closed when the lane ends or fails.

Steps are safe to run side by side because each lane makes only its own VPC's
namespaces and processes, and the state file is saved under a lock (lab/state.py).
Threads win by overlapping what waits, not by computing at once (pyroute2's Python holds
the GIL): most of a VPC's time is the kernel making namespaces and veths (which waits
for RCU grace periods without using a CPU), forks and execs, and resolvers getting
ready. So there are more workers than CPUs: `WORKERS` = 8. A 50-VPC `up` on the 2-core
VM, loaded by other work (load 9–11), took 13.5 s with 3 workers, 9.5 s with 6,
7.7 s with 8 or 10, 8.1 s with 16 (medians of 2; CPU time 4.5–5.7 s in every case).
"""
from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator, Union

from netns_setup import kernel


class Interrupted(Exception):
    """`up` was asked to stop (SIGINT/SIGTERM); raised at the next step boundary."""


_interrupt: str | None = None
WORKERS = 8
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def request_interrupt(why: str) -> None:
    """Called from a signal handler: `up` stops and rolls back at its next step.

    Raising from the handler itself would be unsafe: Python drops exceptions raised
    inside some internals (an at-fork hook, a finalizer), and `up` would then finish
    as if nothing happened.
    """
    global _interrupt
    _interrupt = why


@contextlib.contextmanager
def held_signals(on_signal: Callable[[str], None] | None = None) -> Iterator[list[str]]:
    """SIGINT and SIGTERM only recorded (and passed to `on_signal(name)`, e.g.
    `request_interrupt`) inside the block; yields the list of those caught. Outside the
    main thread, where handlers cannot be set, nothing is held. A forked child that
    still has the handler before its exec just dies."""
    caught: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    me = os.getpid()

    def hold(signum, frame):
        if os.getpid() != me:
            os._exit(128 + signum)
        caught.append(signal.Signals(signum).name)
        if on_signal is not None:
            on_signal(caught[-1])

    old = {sig: signal.signal(sig, hold) for sig in HELD_SIGNALS}
    try:
        yield caught
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


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
        self._lock = threading.Lock()

    def step(self, what: str) -> None:
        check_interrupt()
        with self._lock:
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


@dataclass
class Parallel:
    """Lanes of steps run side by side by `workers` threads (see the module docstring)."""
    lanes: list[list[Step]]
    workers: int = field(default=WORKERS)


Item = Union[Step, Parallel]


def each_step(items: list[Item]) -> list[Step]:
    """Every step of `items`, lanes' included, in file order (not the order they run)."""
    return [s for i in items for lane in (i.lanes if isinstance(i, Parallel) else [[i]])
            for s in lane]


def count_steps(items: list[Item]) -> int:
    return len(each_step(items))


def run_steps(items: list[Item], progress: Progress) -> None:
    """Run `items` in order (a `Parallel` one's lanes side by side); `progress.total`
    becomes the number of steps, lanes' included."""
    progress.total = count_steps(items)
    for item in items:
        if isinstance(item, Parallel):
            _run_lanes(item, progress)
        else:
            progress.step(item.what)
            item.run()


class _Lanes:
    """What the workers of one `Parallel` share: the lanes left, the first failure."""

    def __init__(self, lanes: list[list[Step]]):
        self.todo: queue.SimpleQueue[list[Step]] = queue.SimpleQueue()
        for lane in lanes:
            self.todo.put(lane)
        self.stop = threading.Event()
        self.failure: tuple[str, BaseException] | None = None
        self._lock = threading.Lock()

    def fail(self, what: str, e: BaseException) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = (what, e)
        self.stop.set()

    def work(self, progress: Progress) -> None:
        while not self.stop.is_set():
            try:
                lane = self.todo.get_nowait()
            except queue.Empty:
                return
            what = ""
            try:
                with kernel.connections():
                    for s in lane:
                        if self.stop.is_set():
                            return
                        what = s.what
                        progress.step(what)
                        s.run()
            except BaseException as e:  # noqa: BLE001 - handed to run_steps' thread
                self.fail(what, e)


def _run_lanes(item: Parallel, progress: Progress) -> None:
    lanes = _Lanes(item.lanes)
    threads = [threading.Thread(target=lanes.work, args=(progress,), daemon=True,
                                name=f"vpclab-up-{k}")
               for k in range(max(1, min(item.workers, len(item.lanes))))]
    for t in threads:
        t.start()
    interrupted: BaseException | None = None
    for t in threads:
        while t.is_alive():
            try:
                t.join()
            except BaseException as e:  # noqa: BLE001 - Ctrl-C: stop the workers first
                interrupted = interrupted or e
                lanes.fail(progress.current, e)
    if lanes.failure is not None:
        what, e = lanes.failure
        progress.current = what or progress.current
        raise e
    if interrupted is not None:
        raise interrupted
