"""The forwarder process of one lab: `python -m dataplane.forwarder.daemon --spec FILE --socket PATH`.

It reads the spec (dataplane/compile/spec.py: the `--spec` file, then each `apply` on
the control socket, refused whole with the field's path when it is wrong), builds an
Engine from it (spec.py), opens every port's interface in the
hyperplane namespace, runs the C poll loop in a thread (the GIL released: Python never
sees a packet), and answers the control socket (control.py) in the main thread. Table
changes from `apply` are made with the loop held between two batches. An `apply` may add and remove ports while the loop runs:
a port that goes is closed first (its socket and rings, hp_io_port_close), then the
tables change, then a new port's interface is opened; a changed set of NLB health checks
goes to the running health checker (a target it checked before keeps its state).

SIGTERM or the `stop` command end it cleanly: the loop stops, sockets and rings close,
the control socket file is removed. After SIGKILL the lab's cleanup removes the file.
With `--flow-state FILE` the flow table's slots live in FILE (a lab's is
/run/vpclab/<lab>/flows, on tmpfs), so a forwarder restarted after a crash takes over
its predecessor's flows, SNAT ports included (native/hp_flow_state.c).
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import replace
import json
import os
import signal
import socketserver
import sys
import threading

from dataplane.compile.spec import Backend, ForwarderSpec, PrivateLinkService, Service
from dataplane.forwarder import control, flowlogs, tap
from dataplane.forwarder.engine import COUNTERS, Engine, EngineError
from dataplane.forwarder.io import Forwarder
from dataplane.forwarder.spec import Applied, apply_spec
from dataplane.forwarder.healthd import HealthRunner, choose_backends
from dataplane.trace import dryrun


class Daemon:
    def __init__(self, spec: ForwarderSpec, netns: str | None, health_netns: str | None = None,
                 flow_state: str | None = None) -> None:
        self.netns = netns
        self.engine = Engine(flow_capacity=spec.flow_capacity)
        self.applied = Applied()
        self.flow_state: str | None = None
        self.flow_state_report: dict | None = None
        self.forwarder = Forwarder(self.engine, **spec.io.given())
        self.health: HealthRunner | None = None
        if spec.health_checks:
            if not health_netns:
                raise EngineError("the spec has health checks but no --health-netns was given")
            self.health = HealthRunner(health_netns, spec.health_checks, self.on_health_change)
        self.apply(spec)
        if flow_state:
            self.keep_flows(flow_state)
        self.forwarder.start()
        if self.health:
            self.health.start()

    def keep_flows(self, path: str) -> None:
        """The flow table lives in `path` from now on, with the flows a killed forwarder
        of this lab left there (native/hp_flow_state.c); `path`.services.json records
        which service each id is, rewritten after every change of services."""
        try:
            with open(path + ".services.json") as f:
                old = json.load(f)
            generation = int(old["generation"])
            remap = {int(sid): self.applied.services[name][0]
                     for name, sid in old["services"].items() if name in self.applied.services}
        except (OSError, ValueError, KeyError, TypeError):
            generation, remap = None, {}
        self.flow_state_report = self.engine.keep_flows_in(path, remap, generation)
        self.flow_state = path
        self._record_services()
        r = self.flow_state_report
        if r["fresh"]:
            print(f"flow state {path}: started empty ({r['reason']})", flush=True)
        else:
            print(f"flow state {path}: resumed {r['resumed']} flows, dropped {r['dropped']} "
                  f"(generation {r['generation']})", flush=True)

    def _record_services(self) -> None:
        if self.flow_state is None:
            return
        record = {"generation": self.engine.service_generation,
                  "services": {name: sid for name, (sid, _) in self.applied.services.items()}}
        tmp = self.flow_state + ".services.json.tmp"
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.replace(tmp, self.flow_state + ".services.json")

    def _usable(self, svc: PrivateLinkService) -> tuple[Backend, ...]:
        group = svc.health_group
        healthy = (lambda b: self.health.is_healthy(group, b)) if self.health else (lambda b: True)
        return tuple(choose_backends(svc.backends, svc.preferred, healthy))

    def _with_health(self, spec: ForwarderSpec) -> ForwarderSpec:
        """The spec with each listener's backends cut to those its NLB node may use now
        (services without backends, such as VPC links, are left as they are)."""
        return replace(spec, services=tuple(
            replace(s, backends=self._usable(s)) if isinstance(s, PrivateLinkService) else s
            for s in spec.services))

    def on_health_change(self, group: str, target: tuple[str, int], state: str) -> None:
        """A target of `group` changed state: new flows follow (fail open when none is
        healthy), and a target that turned unhealthy has its flows reset, as NLB does."""
        with self.forwarder.locked():
            for name, (sid, svc) in list(self.applied.services.items()):
                if not isinstance(svc, PrivateLinkService) or svc.health_group != group:
                    continue
                usable = self._usable(self.full_specs[name])
                self.engine.set_backends(sid, usable)
                self.applied.services[name] = (sid, replace(svc, backends=usable))
                if state == "unhealthy":
                    self.engine.reset_backend(sid, Backend(target[0], target[1]))
        print(f"health: {group} {target[0]}:{target[1]} is {state}", flush=True)

    def apply(self, spec: ForwarderSpec) -> dict:
        nameless = [p.label for p in spec.ports if p.ifname is None]
        if nameless:
            raise EngineError(f"port(s) {', '.join(nameless)}: no 'ifname' to open")
        if spec.health_checks and not self.health:
            raise EngineError("the spec has health checks but this forwarder has no health "
                              "checker (it was started without --health-netns)")
        wanted = {p.id: p for p in spec.ports}
        # a port that goes, or moves to another interface, closes before the engine
        # forgets it (and before the lab deletes its veth, after this apply)
        for pid, (ifname, _) in list(self.forwarder.ports.items()):
            if pid not in wanted or wanted[pid].ifname != ifname:
                self.forwarder.close_port(pid)
        with self.forwarder.locked():
            self.full_specs: dict[str, Service] = {s.name: s for s in spec.services}
            try:
                changes = apply_spec(self.engine, self.applied, self._with_health(spec))
            finally:
                self._record_services()
        for port in spec.ports:
            if port.id not in self.forwarder.ports:
                self.forwarder.open_port(port.id, port.ifname, self.netns)
        if self.health and spec.health_checks != self.health.spec_checks:
            self.health.reconfigure(spec.health_checks)
        return changes

    def port_name(self, pid: int) -> str:
        port = self.applied.ports.get(pid)
        return port.label if port else str(pid)

    def stats(self) -> dict:
        ports = {}
        for pid in sorted(self.applied.ports):
            with self.forwarder.locked():
                counters = self.engine.counters(pid)
                drops = {k: v for k, v in self.engine.drops(pid).items() if v}
            io = self.forwarder.port_stats(pid) if pid in self.forwarder.ports else {}
            ports[self.port_name(pid)] = {"id": pid, "counters": counters, "drops": drops, "io": io}
        return {"ports": ports, "flows": self.engine.flow_count, "capacity": self.engine.capacity,
                "half_open": self.engine.half_open_count,
                "loop": self.forwarder.scheduling,
                "memory_bytes": self.engine.memory_bytes, "counter_names": list(COUNTERS),
                "flow_state": self.flow_state_report}

    def flows(self) -> list[dict]:
        with self.forwarder.locked():
            flows = self.engine.flows()
            now = self.forwarder.now_ns()
            names = {sid: name for name, (sid, _) in self.applied.services.items()}
        out = []
        for f in flows:
            d = dataclasses.asdict(f)
            d["service_name"] = names.get(f.service, str(f.service))
            d["in_port_name"], d["out_port_name"] = self.port_name(f.in_port), self.port_name(f.out_port)
            d["idle_s"] = max(0, (now - f.last_seen_ns) // 1_000_000_000)
            out.append(d)
        return out

    def handle(self, request: dict) -> dict:
        cmd = request.get("cmd")
        if cmd == "ping":
            return {"pid": os.getpid()}
        if cmd == "stats":
            return self.stats()
        if cmd == "flows":
            return {"flows": self.flows()}
        if cmd == "apply":
            return {"changes": self.apply(ForwarderSpec.from_json(request["spec"]))}
        if cmd == "health":
            return {"health": self.health.report() if self.health else {},
                    "error": self.health.error if self.health else None}
        if cmd == "tap":
            return tap.command(self, request)
        if cmd == "trace":
            return dryrun.answer(self, request)
        if cmd == "flowlogs":      # VPC Flow Logs' collector, its one caller
            return flowlogs.report(self, request)
        if cmd == "clock":
            self.forwarder.set_clock_offset(float(request["offset_s"]))
            return {}
        raise EngineError(f"unknown command {cmd!r}")


def serve(daemon: Daemon, path: str) -> None:
    stopping = threading.Event()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                reply, stop = control.answer(line, daemon.handle, (EngineError,))
                if stop:
                    stopping.set()
                self.wfile.write(reply)
                if stopping.is_set():
                    threading.Thread(target=server.shutdown).start()
                    return

    if os.path.exists(path):
        os.unlink(path)  # a stale socket of a killed forwarder of this lab
    server = socketserver.UnixStreamServer(path, Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        print(f"forwarder {os.getpid()}: listening on {path}", flush=True)
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        os.unlink(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="forwarderd", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="JSON file with the forwarder's tables")
    parser.add_argument("--socket", required=True, help="control socket path")
    parser.add_argument("--netns", help="namespace of the ports' interfaces (the hyperplane)")
    parser.add_argument("--health-netns", help="namespace the health checks are sent from")
    parser.add_argument("--flow-state", metavar="FILE",
                        help="keep the flow table in FILE (tmpfs), resuming the flows a "
                             "killed forwarder left there")
    args = parser.parse_args(argv)
    try:
        with open(args.spec) as f:
            spec = ForwarderSpec.from_json(json.load(f))
        daemon = Daemon(spec, args.netns, args.health_netns, args.flow_state)
    except (OSError, ValueError, EngineError) as exc:
        print(f"forwarder: {exc}", file=sys.stderr)
        return 2
    try:
        serve(daemon, args.socket)
    finally:
        if daemon.health:
            daemon.health.stop()
        daemon.forwarder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
