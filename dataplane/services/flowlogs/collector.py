"""The flow log collector of one lab: `python -m dataplane.services.flowlogs LAB`.

A lab process like the resolvers (started by `up` when the topology asks for a flow
log, or by `vpclab flowlogs enable`; restarted by the supervisor; ended by `down` by its
PID). Every poll (`poll_s`: a second, or a quarter of the shortest interval) it reads

* per VPC namespace with a covered instance ENI, conntrack's per-flow counters and the
  packets security groups refused (kernel.py says why those two);
* when a covered ENI is the Hyperplane's, the forwarder's `flowlogs` control command
  (dataplane/forwarder/flowlogs.py): the live flows that moved since the last poll
  (all of them every FULL_DUMP_EVERY polls), expired flows, refusals;

turns the counts since the previous poll into `records.Observation`s, and adds them to
each flow log's current `records.Window`. When a window's interval has passed, its
records are appended to `/run/vpclab/<lab>/flowlogs/<fl-id>/<eni-id>.log`: one
directory per flow log (CloudWatch's log group), one file per ENI (its log stream).

The first poll is a baseline: what was counted before the collector started is not
reported, as a flow log on AWS begins with its creation.

Never logged, as on AWS (AWS-FACTS §8): traffic to or from the VPC router's own
addresses (DNS at base+2, the router's .1 in each subnet) and link-local addresses; the
endpoint ENI ↔ NLB ENI leg of PrivateLink, which in vpclab is inside the engine and has
no packets of its own. An endpoint flow is reported on the endpoint ENI as the client
sent it and on the NLB ENI as the target sees it.

Which flow logs exist is the state file's `flow_logs` record ({target: {id, interval,
format}}), read again whenever the state file changes; which ENIs exist is the
topology the state keeps. Records are written only for ENIs a flow log covers.
"""
from __future__ import annotations

import ipaddress
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from dataplane.forwarder import control
from dataplane.forwarder.flowlogs import flows as engine_flows
from dataplane.model import Lab, names
from dataplane.model.enis import account_id
from dataplane.model.flow_logs import az_id, instance_eni_id, instance_id, subnet_id, vpc_id

from . import kernel
from .records import (ACCEPT, EGRESS, ETH_HEADER, INGRESS, REJECT, Eni, Observation, Window,
                      tcp_flags)

LINK_LOCAL = ipaddress.IPv4Network("169.254.0.0/16")
# The forwarder is asked for the flows that moved since the last poll, and every
# FULL_DUMP_EVERY polls for all, so that flows gone without an expiry report (evicted,
# reset) are forgotten.
FULL_DUMP_EVERY = 60
ENGINE_CLOSING = {"FIN_WAIT", "CLOSING"}
ENGINE_ANSWERED = {"SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSING"}


def flowlogs_dir(lab: str) -> str:
    return os.path.join(names.lab_dir(lab), "flowlogs")


@dataclass
class Catalog:
    """The lab's ENIs as flow logs name them, and how to find each from what the kernel
    and the engine report: instances' by VPC and address and by VPC and interface,
    the Hyperplane's by forwarder port."""
    enis: dict[str, Eni] = field(default_factory=dict)
    by_address: dict[str, dict[str, str]] = field(default_factory=dict)
    by_ifname: dict[str, dict[str, str]] = field(default_factory=dict)
    by_port: dict[int, str] = field(default_factory=dict)
    of_vpc: dict[str, list[str]] = field(default_factory=dict)
    of_instance: dict[str, str] = field(default_factory=dict)
    router_addresses: dict[str, set[str]] = field(default_factory=dict)
    netns: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, data: dict[str, Any]) -> "Catalog":
        lab = Lab.from_dict(data["topology"])
        c = cls()
        account = account_id(lab.name)
        for vname, vrec in data["vpcs"].items():
            vpc = lab.vpcs.get(vname)
            if vpc is None:
                continue
            c.netns[vname] = vrec["netns"]
            c.router_addresses[vname] = {str(vpc.dns_address)} | {
                str(s.router) for s in vpc.subnets.values()}
            for iname, irec in vrec["instances"].items():
                sn = vpc.subnets[irec["subnet"]]
                eid = instance_eni_id(lab.name, vname, iname)
                c._add(vname, Eni(eid, irec["ip"], vname, vpc_id(lab.name, vname), vpc.cidr,
                                  subnet_id(lab.name, vname, sn.name),
                                  instance_id(lab.name, vname, iname), account, lab.region,
                                  az_id(lab.region, sn.az)), irec["eni"])
                c.of_instance[f"{vname}/{iname}"] = eid
        for e in (data.get("hyperplane") or {}).get("enis", []):
            vpc = lab.vpcs.get(e["vpc"])
            if vpc is None:
                continue
            c._add(e["vpc"], Eni(e["eni_id"], e["ip"], e["vpc"], vpc_id(lab.name, e["vpc"]),
                                 vpc.cidr, subnet_id(lab.name, e["vpc"], e["subnet"]), "-",
                                 account, lab.region, az_id(lab.region, e["az"])), e["ifname"])
            c.by_port[e["port"]] = e["eni_id"]
        return c

    def _add(self, vpc: str, eni: Eni, ifname: str) -> None:
        self.enis[eni.eni_id] = eni
        if eni.instance_id != "-":
            # An instance's ENI: the kernel's counts are its records. A Hyperplane
            # ENI's are the engine's, even for flows the VPC router's conntrack saw.
            self.by_address.setdefault(vpc, {})[eni.address] = eni.eni_id
            self.by_ifname.setdefault(vpc, {})[ifname] = eni.eni_id
        self.of_vpc.setdefault(vpc, []).append(eni.eni_id)

    def covered(self, target: str) -> list[str]:
        """The ENIs a flow log on `target` (VPC, VPC/instance, ENI ID) covers."""
        if target in self.enis:
            return [target]
        if "/" in target:
            return [self.of_instance[target]] if target in self.of_instance else []
        return list(self.of_vpc.get(target, []))

    def resolve(self, target: str) -> str | None:
        """Why `target` names no ENI of the lab, or None."""
        if self.covered(target):
            return None
        return (f"{target!r} is neither a VPC ({', '.join(self.of_vpc) or 'none'}), an "
                f"instance as VPC/INSTANCE, nor an ENI ID of lab (vpclab flowlogs lists them "
                f"with --json)")

    def never_logged(self, vpc: str, *addresses: str) -> bool:
        own = self.router_addresses.get(vpc, set())
        return any(a in own or ipaddress.IPv4Address(a) in LINK_LOCAL for a in addresses)


class Deltas:
    """Counts since the previous poll, per flow: `seen(key, counts)` returns the
    difference (all of it for a flow first seen after the baseline, none while taking
    the baseline) and whether the flow is new; `sweep()` forgets flows not seen since."""

    def __init__(self) -> None:
        self.last: dict[Any, tuple[int, ...]] = {}
        self.now: set[Any] = set()
        self.baseline = True

    def seen(self, key: Any, counts: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
        self.now.add(key)
        before = self.last.get(key)
        self.last[key] = counts
        if self.baseline:
            return tuple(0 for _ in counts), False
        if before is None:
            return counts, True
        # A counter below what it was: the counter started again (a new forwarder).
        return tuple(c - b if c >= b else c for c, b in zip(counts, before)), False

    def gone(self, key: Any, counts: tuple[int, ...]) -> tuple[int, ...]:
        """The last counts of a flow that ended, and forget it."""
        delta, _ = self.seen(key, counts)
        self.last.pop(key, None)
        self.now.discard(key)
        return delta

    def sweep(self, forget_unseen: bool = True) -> None:
        """End a poll: forget the flows it did not see (unless it saw only those that
        moved, the engine's polls between full ones)."""
        if forget_unseen:
            for key in set(self.last) - self.now:
                del self.last[key]
        self.now = set()
        self.baseline = False


def conntrack_observations(cat: Catalog, vpc: str, entries: list[kernel.Tracked],
                           deltas: Deltas) -> list[Observation]:
    """Each accepted flow's packets since the last poll, on each instance ENI it
    crossed: the opener's direction and the answer (records.py: four records for a
    flow between two instances)."""
    out = []
    own = cat.by_address.get(vpc, {})
    for t in entries:
        if t.counts is None or cat.never_logged(vpc, t.src, t.dst):
            continue
        (op, ob, rp, rb), new = deltas.seen(t.key, t.counts)
        src_eni, dst_eni = own.get(t.src), own.get(t.dst)
        if src_eni is None and dst_eni is None:
            continue
        syn = tcp_flags(new, t.answered, t.closing, t.reset, answering_side=False)
        ack = tcp_flags(new, t.answered, t.closing, t.reset, answering_side=True)
        forth = (t.src, t.dst, t.sport, t.dport, t.protocol, ACCEPT)
        back = (t.dst, t.src, t.dport, t.sport, t.protocol, ACCEPT)
        for eni, direction, tup, p, b, flags in (
                (src_eni, EGRESS, forth, op, ob, syn), (dst_eni, INGRESS, forth, op, ob, syn),
                (dst_eni, EGRESS, back, rp, rb, ack), (src_eni, INGRESS, back, rp, rb, ack)):
            if eni is not None and p:
                out.append(Observation(eni, direction, *tup, p, b, flags))
    return out


def refused_observations(cat: Catalog, vpc: str,
                         refused: list[kernel.Refused]) -> list[Observation]:
    """A refused packet is a REJECT on the ENI whose group refused it; refused on its
    way in to an instance, it had passed the sender's egress rules: an ACCEPT there."""
    out = []
    for r in refused:
        eni = cat.by_ifname.get(vpc, {}).get(r.ifname)
        if eni is None or cat.never_logged(vpc, r.src, r.dst):
            continue
        tup = (r.src, r.dst, r.sport, r.dport, r.protocol)
        out.append(Observation(eni, INGRESS if r.direction == "ingress" else EGRESS, *tup,
                               REJECT, 1, r.length, r.tcp_flags))
        sender = cat.by_address.get(vpc, {}).get(r.src)
        if r.direction == "ingress" and sender is not None:
            out.append(Observation(sender, EGRESS, *tup, ACCEPT, 1, r.length, r.tcp_flags))
    return out


def engine_observations(cat: Catalog, flow: dict, counts: tuple[int, ...],
                        new: bool) -> list[Observation]:
    """One engine flow's packets since the last poll (frames less their Ethernet
    header), on its two ENIs: the client's side (in_port: client → listener) and the
    target's side (out_port: SNAT address → target). The leg between them is the
    engine's own and, as on AWS, never logged."""
    p0, b0, p1, b1 = counts
    proto = {"tcp": 6, "udp": 17, "icmp": 1}.get(flow["protocol"], 0)
    state = flow["tcp_state"]
    answered = state in ENGINE_ANSWERED or flow["packets"][1] > 0
    closing, reset = state in ENGINE_CLOSING, state == "CLOSED"
    opener = tcp_flags(new, answered, closing, reset, answering_side=False)
    answer = tcp_flags(new, answered, closing, reset, answering_side=True)
    (c, cp), (v, vp) = flow["client"], flow["vip"]
    (s, sp), (t, tp) = flow["snat"], flow["backend"]
    if proto == 1:
        cp = vp = sp = tp = 0
    out = []
    for port, direction, tup, p, b, flags in (
            (flow["in_port"], INGRESS, (c, v, cp, vp), p0, b0, opener),
            (flow["in_port"], EGRESS, (v, c, vp, cp), p1, b1, answer),
            (flow["out_port"], EGRESS, (s, t, sp, tp), p0, b0, opener),
            (flow["out_port"], INGRESS, (t, s, tp, sp), p1, b1, answer)):
        eni = cat.by_port.get(port)
        if eni is not None and p:
            out.append(Observation(eni, direction, *tup, proto, ACCEPT, p,
                                   b - ETH_HEADER * p, flags))
    return out


def _flow_key(f: dict) -> tuple:
    return (f["id"], f["created_ns"], tuple(f["client"]), f["service"])


def _counts(f: dict) -> tuple[int, int, int, int]:
    return (f["packets"][0], f["bytes"][0], f["packets"][1], f["bytes"][1])


class Collector:
    """The collector's loop (module docstring)."""

    def __init__(self, lab: str, poll_s: float | None = None):
        self.lab = lab
        self.poll_override = poll_s
        self.stopping = False
        self.state_mtime: int | None = None
        self.data: dict[str, Any] = {}
        self.cat = Catalog()
        self.windows: dict[str, Window] = {}      # flow log ID -> its current window
        self.logs: dict[str, dict] = {}          # flow log ID -> its record (target…)
        self.kernel_deltas: dict[str, Deltas] = {}
        self.reject_logs: dict[str, kernel.RejectLog] = {}
        self.engine_deltas = Deltas()
        self.engine_polls, self.engine_since = 0, 0
        self.engine_refused: dict[int, int] | None = None
        self.engine_lost: int | None = None

    # -- configuration -----------------------------------------------------------------
    def reload(self) -> bool:
        """Read the state again if it changed; False once the lab is gone or not up."""
        path = os.path.join(names.lab_dir(self.lab), "state.json")
        try:
            mtime = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            return False
        if mtime == self.state_mtime:
            return True
        from dataplane.lab.state import State
        st = State.load(self.lab)
        if st is None:
            return False
        self.state_mtime, self.data = mtime, st.data
        if self.data.get("status") not in ("building", "up", "reconciling"):
            return False
        self.cat = Catalog.of(self.data)
        self._configure(self.data.get("flow_logs") or {})
        return True

    def _configure(self, logs: dict[str, dict]) -> None:
        now = time.time()
        wanted = {rec["id"]: {**rec, "target": target} for target, rec in logs.items()}
        for fid in list(self.windows):
            if fid not in wanted or wanted[fid] != self.logs.get(fid):
                self._flush(fid)              # a changed or removed log ends its window
                del self.windows[fid]
        for fid, rec in wanted.items():
            if fid not in self.windows:
                enis = {e: self.cat.enis[e] for e in self.cat.covered(rec["target"])}
                self.windows[fid] = Window.of(rec["format"], enis, now, rec["interval"])
                os.makedirs(os.path.join(flowlogs_dir(self.lab), fid), exist_ok=True)
        self.logs = wanted
        for vpc in self._kernel_vpcs():
            if vpc not in self.reject_logs:
                kernel.enable_accounting(self.cat.netns[vpc])
                self.reject_logs[vpc] = kernel.RejectLog(self.cat.netns[vpc])
                self.kernel_deltas[vpc] = Deltas()
        for vpc in set(self.reject_logs) - self._kernel_vpcs():
            self.reject_logs.pop(vpc).close()
            self.kernel_deltas.pop(vpc)

    def _covered(self) -> set[str]:
        return {e for w in self.windows.values() for e in w.enis}

    def _kernel_vpcs(self) -> set[str]:
        covered = self._covered()
        return {self.cat.enis[e].vpc for e in covered
                if self.cat.enis[e].instance_id != "-"} & set(self.cat.netns)

    def poll_s(self) -> float:
        if self.poll_override:
            return self.poll_override
        shortest = min((w.interval for w in self.windows.values()), default=60)
        return min(1.0, shortest / 4)

    # -- one poll ----------------------------------------------------------------------
    def poll(self) -> list[Observation]:
        obs: list[Observation] = []
        skipped: set[str] = set()
        for vpc, rejects in self.reject_logs.items():
            ns = self.cat.netns[vpc]
            deltas = self.kernel_deltas[vpc]
            refused = rejects.read()
            entries = kernel.conntrack(ns)
            obs += conntrack_observations(self.cat, vpc, entries, deltas)
            deltas.sweep()
            obs += refused_observations(self.cat, vpc, refused)
            if rejects.overruns:
                skipped |= set(self.cat.of_vpc.get(vpc, []))
                rejects.overruns = 0
        covered = self._covered()
        hp = self.data.get("hyperplane")
        if hp and any(self.cat.enis[e].instance_id == "-" for e in covered):
            o, s = self._engine(hp["socket"])
            obs += o
            skipped |= s
        for w in self.windows.values():
            for o in obs:
                w.add(o)
            for e in skipped:
                w.skip(e)
        return obs

    def _engine(self, sock: str) -> tuple[list[Observation], set[str]]:
        full = self.engine_polls % FULL_DUMP_EVERY == 0
        try:
            reply = control.call(sock, "flowlogs", timeout=30,
                                 since_ns=0 if full else self.engine_since)
        except (control.ControlError, OSError):
            return [], set()          # the forwarder is restarting: its flows resume
        self.engine_polls += 1
        self.engine_since = reply["now_ns"]
        obs: list[Observation] = []
        d = self.engine_deltas
        baseline = d.baseline
        for f in reply["expired"]:
            delta = d.gone(_flow_key(f), _counts(f))
            if not baseline:          # else it ended before the collector began
                obs += engine_observations(self.cat, f, delta, False)
        for f in engine_flows(reply):
            delta, new = d.seen(_flow_key(f), _counts(f))
            obs += engine_observations(self.cat, f, delta, new)
        d.sweep(forget_unseen=full)
        skipped: set[str] = set()
        refused = {int(k): v for k, v in reply["refused"].items()}
        if self.engine_refused is not None:
            skipped |= {self.cat.by_port[p] for p, n in refused.items()
                        if p in self.cat.by_port and n > self.engine_refused.get(p, 0)}
        if self.engine_lost is not None and reply["expired_lost"] > self.engine_lost:
            skipped |= set(self.cat.by_port.values())
        self.engine_refused, self.engine_lost = refused, reply["expired_lost"]
        return obs, skipped

    # -- windows -------------------------------------------------------------------------
    def _flush(self, fid: str) -> None:
        w = self.windows[fid]
        for eni_id, lines in w.records().items():
            if lines:
                path = os.path.join(flowlogs_dir(self.lab), fid, f"{eni_id}.log")
                with open(path, "a") as f:
                    f.write("".join(line + "\n" for line in lines))

    def tick(self, now: float) -> None:
        for fid, w in list(self.windows.items()):
            if now >= w.end:
                self._flush(fid)
                self.windows[fid] = Window(w.fields, w.enis, max(w.end, int(now) // w.interval
                                                                 * w.interval), w.interval)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        print(f"flow log collector of lab {self.lab}", flush=True)
        while not self.stopping:
            if not self.reload():
                print(f"flow logs: lab {self.lab} is no longer up; exiting", flush=True)
                break
            self.poll()
            self.tick(time.time())
            # Sleep to the next poll, or to the end of the first window due before it.
            nearest = min((w.end for w in self.windows.values()), default=None)
            pause = self.poll_s()
            if nearest is not None:
                pause = max(0.0, min(pause, nearest - time.time()))
            time.sleep(pause)
        for r in self.reject_logs.values():
            r.close()
        return 0

    def _stop(self, signum, frame) -> None:
        self.stopping = True


def main(argv: list[str] | None = None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m dataplane.services.flowlogs")
    p.add_argument("lab")
    return Collector(p.parse_args(argv).lab).run()


if __name__ == "__main__":
    sys.exit(main())
