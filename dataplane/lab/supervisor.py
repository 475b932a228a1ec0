"""The lab's supervisor: restarts the lab's long-running processes when they die.

`python -m dataplane.lab.supervisor LAB` is started by `up` as its last step, in the
lab's cgroup, and watches every recorded process whose role is in SUPERVISED (the
forwarder with its health checker, the resolvers, API Gateway's front end, the flow
log collector); instances'
`run:` commands are the user's and are left alone, as AWS leaves an instance's processes.

* A dead process is started again, with the same command, namespace, log and resolver,
  within POLL_S of its death plus its start-up time; the forwarder is ready once its
  control socket answers. Each restart is counted in the state file
  (`restarts`, `last_restart`) and `vpclab status` shows it.
* The rate is bounded: after MAX_RESTARTS restarts of one process within
  RESTART_WINDOW_S, it is left dead and marked `gave_up` (a process that dies at once
  every time would otherwise spin); `status` then calls the lab degraded.
* The state file is changed only under its lock (State.locked), and nothing is
  restarted unless the lab's status is still `up`: `down` sets `stopping` under the same
  lock and ends the supervisor before the others (processes.end).

It exits on SIGTERM, when the lab's state is gone, or when its status leaves `up`.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from netns_setup import procs

from dataplane.model import names

from . import processes
from .state import LabError, State

SUPERVISED = ("forwarder", "dns", "apigw", "alb", "cloudmap", "flowlogs")
POLL_S = 0.1
MAX_RESTARTS, RESTART_WINDOW_S = 5, 60.0
READY_S = 15.0


class Supervisor:
    def __init__(self, lab: str):
        self.lab = lab
        self.stopping = False
        self.recent: dict[int, list[float]] = {}    # record index -> restart times

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        print(f"supervisor of lab {self.lab}: watching {', '.join(SUPERVISED)}", flush=True)
        st, seen = None, None
        while not self.stopping:
            # The state is read again only when it changed (a restart, `down`): the
            # loop costs a stat() and a /proc read per process every POLL_S.
            try:
                mtime = os.stat(os.path.join(names.lab_dir(self.lab), "state.json")).st_mtime_ns
            except FileNotFoundError:
                mtime = None
            if mtime != seen or st is None:
                st, seen = State.load(self.lab), mtime
            if st is None or st.data.get("status") != "up":
                print(f"supervisor: lab {self.lab} is no longer up; exiting", flush=True)
                return 0
            for i, p in enumerate(st.data.get("processes", [])):
                if (p["role"] in SUPERVISED and not p.get("gave_up")
                        and not procs.alive(p["pid"], p["start"])):
                    self._restart(i)
            time.sleep(POLL_S)
        return 0

    def _stop(self, signum, frame) -> None:
        self.stopping = True

    def _restart(self, index: int) -> None:
        with State.locked(self.lab) as st:
            if st is None or st.data.get("status") != "up" or self.stopping:
                return
            p = st.data["processes"][index]
            if procs.alive(p["pid"], p["start"]):
                return
            now = time.time()
            times = [t for t in self.recent.get(index, []) if now - t < RESTART_WINDOW_S]
            what = f"{p['role']} {p['vpc']}{'/' + p['instance'] if p.get('instance') else ''}"
            if len(times) >= MAX_RESTARTS:
                p["gave_up"] = True
                st.save()
                print(f"supervisor: {what} died {len(times) + 1} times within "
                      f"{RESTART_WINDOW_S:.0f} s; left stopped ({processes.tail(p['log'])})",
                      flush=True)
                return
            pid = processes.restart(st, p)
            times.append(now)
            self.recent[index] = times
        print(f"supervisor: {what} had died; restarted as pid {pid} "
              f"(restart {p['restarts']})", flush=True)
        for sock in processes.control_sockets(st, p):
            try:
                processes.wait_ready(pid, processes.answers(sock), what, p["log"], READY_S)
            except LabError as e:
                print(f"supervisor: {e}", flush=True)     # its next death is seen above


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dataplane.lab.supervisor")
    p.add_argument("lab")
    return Supervisor(p.parse_args(argv).lab).run()


if __name__ == "__main__":
    sys.exit(main())
