"""`up`'s steps side by side (lab/progress.py, `Parallel`): each lane in order, the first
failure stops every lane and is raised only once every worker has stopped, naming its
step; an interrupt stops them the same way. No root needed: the steps are plain
functions."""
from __future__ import annotations

import threading
import time

import pytest

from dataplane.lab import progress
from dataplane.lab.progress import Interrupted, Parallel, Progress, Step, run_steps
from netns_setup import kernel


def recorder(log: list[str], lock: threading.Lock, name: str, pause: float = 0.0):
    def run() -> None:
        time.sleep(pause)
        with lock:
            log.append(name)
    return Step(f"step {name}", run)


def test_each_lane_runs_in_order_and_every_step_once():
    log: list[str] = []
    lock = threading.Lock()
    lanes = [[recorder(log, lock, f"{v}.{k}", 0.001 * ((v + k) % 3)) for k in range(4)]
             for v in range(6)]
    prog = Progress(0, enabled=False)
    run_steps([Step("first", lambda: log.append("first")), Parallel(lanes, workers=3),
               Step("last", lambda: log.append("last"))], prog)
    assert prog.total == prog.n == 26
    assert log[0] == "first" and log[-1] == "last" and sorted(log[1:-1]) == sorted(
        f"{v}.{k}" for v in range(6) for k in range(4))
    for v in range(6):
        assert [x for x in log if x.startswith(f"{v}.")] == [f"{v}.{k}" for k in range(4)]


def test_a_failure_stops_every_lane_and_is_raised_after_all_have_stopped():
    log: list[str] = []
    lock = threading.Lock()
    running = threading.Event()
    still_running: list[bool] = []

    def slow() -> None:                 # another lane, busy while the failure happens
        running.set()
        time.sleep(0.2)
        with lock:
            log.append("slow done")

    def fail() -> None:
        running.wait(5)
        raise RuntimeError("injected")

    lanes = [[Step("slow", slow), recorder(log, lock, "after slow")],
             [Step("failing step", fail), recorder(log, lock, "after fail")]]
    prog = Progress(0, enabled=False)
    with pytest.raises(RuntimeError, match="injected"):
        try:
            run_steps([Parallel(lanes, workers=2),
                       Step("never", lambda: log.append("never"))], prog)
        finally:
            still_running.append(any(t.name.startswith("vpclab-up-")
                                     for t in threading.enumerate()))
    assert prog.current == "failing step"
    assert log == ["slow done"]          # the busy step finished; nothing started after it
    assert still_running == [False]      # every worker had stopped when it was raised


def test_an_interrupt_request_stops_the_lanes_at_their_next_step():
    log: list[str] = []
    lock = threading.Lock()

    def interrupt() -> None:
        progress.request_interrupt("SIGTERM")

    lanes = [[Step("asks to stop", interrupt)] + [recorder(log, lock, f"a{k}", 0.01)
                                                   for k in range(20)],
             [recorder(log, lock, f"b{k}", 0.01) for k in range(20)]]
    with pytest.raises(Interrupted, match="SIGTERM"):
        run_steps([Parallel(lanes, workers=2)], Progress(0, enabled=False))
    assert len(log) < 40
    progress.check_interrupt()           # the request was used up by the lane that stopped


def test_each_lane_has_its_own_connections_closed_when_it_ends():
    seen: list[list[str]] = []

    def look() -> None:
        with kernel.ipr(None) as s:      # this process's own namespace: nothing is changed
            s.link("get", index=1)
        seen.append(kernel.open_connections())

    before = kernel.counters()
    run_steps([Parallel([[Step("a", look), Step("b", look)], [Step("c", look)]], workers=2)],
              Progress(0, enabled=False))
    after = kernel.counters()
    assert sorted(seen) == [[""], [""], [""]]       # one connection held within each lane
    assert after["connections"] - before["connections"] == 2    # one per lane, reused
    assert after["open"] == before["open"]          # and each closed when its lane ended
