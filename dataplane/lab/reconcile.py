"""`vpclab up FILE` on a running lab: the difference between the lab's running topology
(the one in its state file) and the file, shown as a plan, then applied in place.

`diff(old, new)` is pure: two models in, a list of `Change`s out, each one line of the plan
(`+ vpc x`, `- instance shop/web2`, `~ security group shop/web-sg`), and each either made
in place or refused with the reason and the field that asks for it. One refused change
refuses the whole plan: the lab is left as it is and `up` raises `Refused` (the CLI's
exit 2), naming every refused field. What is made in place, and what is refused:

| change | in place? |
|---|---|
| `+`/`-` VPC, subnet, security group, instance; an instance's `security_groups`, `source_dest_check`, `run` | yes |
| endpoints, NLBs, listeners, target groups, endpoint services, added, changed or removed | yes: new Hyperplane ENIs made, a new forwarder spec, removed ENIs deleted |
| an ALB's listeners, rules, idle timeout…; HTTP target groups | yes: each ALB node whose configuration changed restarts with the new one |
| the region; a VPC's `cidr`; a subnet's `cidr` or `az`; an instance's `subnet` or address | refused: everything made from them would be remade |
| a Hyperplane ENI moved (another address); the lab's first or last Hyperplane ENI (the forwarder comes and goes with them); the NLB health checker's namespace (the first NLB) | refused: not reconciled in place yet |
| an ALB added, removed or moved to other subnets (its nodes are instances) | refused: not reconciled in place yet |
| API Gateway (APIs, VPC links), Cloud Map | refused: not reconciled in place yet |

Addresses are allocated in file order, so an instance added before others in its subnet
moves them (and the Hyperplane ENIs after them): that is refused as a move, naming the
instance whose address would change; an explicit `ip:` or adding it last avoids it.

`reconcile(st, new)` applies a plan with the realise code `up` uses, in this order: the
supervisor is stopped and the status set to `reconciling` (so nothing else writes the
state meanwhile); new namespaces, instances and Hyperplane ENIs are recorded in the state
*before* they are made, removed ones taken out of it only once gone, so that a `kill -9`
half-way leaves a state from which `down` and `cleanup` remove everything, and from
which the next `up FILE` resumes (lab/up.py); removed instances and VPCs go first (their
processes ended, their namespaces deleted: lab/down.py), then new VPCs (all of
lab/realise_vpc.py's steps) and instances (the same `instance_step` as `up`, then the
router), changed `run:` commands restarted, each VPC's security-group table rewritten in
one nftables transaction when it changed (established connections stay: conntrack),
hosts files rewritten and dnsmasq told to read them again (SIGHUP). Then the Hyperplane:
new ENIs get port ids no other port holds (compile/hyperplane.py: ids are kept in the
state's `hyperplane.port_ids`, so no port is renumbered), their veths are made, the
forwarder gets the new spec through its control socket (forwarder/daemon.py: it closes
the removed ports, applies the tables — a service whose listener is unchanged keeps its
flows — opens the new ports, and gives its health checker the new checks), and only then
are the removed ENIs' veths deleted. ALB nodes whose configuration changed restart
(lab/realise_alb.py), and the `ready:` checks of the `run:` commands started run as in
`up` (blueprint.ready_step). Then the state takes the new topology and the supervisor
starts again. If a step fails, what was applied and what was not are named; the state
still describes what runs (its topology stays the old one, so `up FILE` again finishes
the job, and `down` removes everything).
"""
from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, replace
from typing import Any, Callable

from netns_setup import kernel, nft, procs

from dataplane import kinds
from dataplane.compile import hyperplane as compiled
from dataplane.compile import privatelink
from dataplane.model import Lab, names
from dataplane.model.privatelink import SECTIONS as PRIVATELINK_SECTIONS

from . import actions, blueprint, hyperplane, processes, realise_alb, realise_vpc
from .down import _remove
from .plan import InstancePlan, VpcPlan, digest, plan
from .progress import Progress, Step, run_steps
from .state import LabError, State

NOT_YET = "not reconciled in place yet; `vpclab down` and `vpclab up` it"
ALB_NODES = ("an ALB's nodes are instances of its subnets, made with it: an ALB added, "
             "removed or moved to other subnets is not reconciled in place yet")
ALB_RESTART = "its nodes restart with the new configuration"
RECONCILING = "reconciling"


class Refused(LabError):
    """The file asks for changes that cannot be made in place; nothing was changed."""


@dataclass(frozen=True)
class Change:
    """One line of the plan: `op` is +, - or ~; `refused` says why it cannot be made in
    place (None: it can), `field` the file's field that asks for it."""
    op: str
    what: str
    name: str
    detail: str = ""
    refused: str | None = None
    field: str | None = None

    def line(self) -> str:
        text = f"{self.op} {self.what} {self.name}"
        if self.detail:
            text += f": {self.detail}"
        if self.refused:
            text += f"  (refused, {self.field}: {self.refused})"
        return text


def _op(old: Any, new: Any) -> str:
    return "+" if old is None else "-" if new is None else "~"


def _fields(old: dict, new: dict) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def diff(old: Lab, new: Lab) -> list[Change]:
    """Every difference between the running lab `old` and the file's `new` (see the
    module docstring for what is in place and what is refused)."""
    out: list[Change] = []
    if old.region != new.region:
        out.append(Change("~", "region", new.region, f"{old.region} → {new.region}",
                          "every DNS name and ENI ID carries it", "region"))
    od, nd = old.to_dict(), new.to_dict()
    for key in sorted((set(od) | set(nd)) - {"lab", "region", "vpcs"}):
        if od.get(key) != nd.get(key):
            out.append(Change(_op(od.get(key), nd.get(key)), key.replace("_", " "), key,
                              refused=NOT_YET, field=key))
    oplans, nplans = {p.name: p for p in plan(old)}, {p.name: p for p in plan(new)}
    for v in nd["vpcs"]:
        if v not in od["vpcs"]:
            out.append(Change("+", "vpc", v, nd["vpcs"][v]["cidr"]))
    for v in od["vpcs"]:
        if v not in nd["vpcs"]:
            out.append(Change("-", "vpc", v))
    for v in [v for v in nd["vpcs"] if v in od["vpcs"]]:
        out += _vpc(old, new, v, od["vpcs"][v], nd["vpcs"][v], oplans[v], nplans[v])
    out += _hyperplane(old, new)
    return out


def _vpc(old: Lab, new: Lab, v: str, ov: dict, nv: dict, op: VpcPlan,
         np: VpcPlan) -> list[Change]:
    out: list[Change] = []
    if ov["cidr"] != nv["cidr"]:
        out.append(Change("~", "vpc", v, f"cidr {ov['cidr']} → {nv['cidr']}",
                          "every address in the VPC depends on it", f"vpcs.{v}.cidr"))
    osn, nsn = ov.get("subnets", {}), nv.get("subnets", {})
    for s in sorted(set(osn) | set(nsn)):
        a, b = osn.get(s), nsn.get(s)
        if a == b:
            continue
        if a is None or b is None:
            out.append(Change(_op(a, b), "subnet", f"{v}/{s}", (b or a)["cidr"]))
            continue
        for f in _fields(a, b):
            out.append(Change("~", "subnet", f"{v}/{s}", f"{f} {a.get(f)} → {b.get(f)}",
                              "its instances' and ENIs' addresses and zones depend on it",
                              f"vpcs.{v}.subnets.{s}.{f}"))
    osg, nsg = ov.get("security_groups", {}), nv.get("security_groups", {})
    for g in sorted(set(osg) | set(nsg)):
        if osg.get(g) != nsg.get(g):
            out.append(Change(_op(osg.get(g), nsg.get(g)), "security group", f"{v}/{g}"))
    out += _instances(v, op, np)
    oalb, nalb = old.vpcs[v].albs, new.vpcs[v].albs
    http_groups = set(old.vpcs[v].http_target_groups) | set(new.vpcs[v].http_target_groups)
    known = {"cidr", "subnets", "security_groups", "instances"}
    for key in sorted((set(ov) | set(nv)) - known):
        a, b = ov.get(key) or {}, nv.get(key) or {}
        for n in sorted(set(a) | set(b)):
            if a.get(n) == b.get(n):
                continue
            what = key.rstrip("s").replace("_", " ")
            change = Change(_op(a.get(n), b.get(n)), what, f"{v}/{n}")
            where = f"vpcs.{v}.{key}.{n}"
            if key not in PRIVATELINK_SECTIONS:
                out.append(replace(change, refused=NOT_YET, field=where))
            elif n in oalb or n in nalb:
                if n not in oalb or n not in nalb:
                    out.append(replace(change, refused=ALB_NODES, field=where))
                elif oalb[n].subnets != nalb[n].subnets:
                    out.append(replace(change, detail=f"subnets {oalb[n].subnets} → "
                                       f"{nalb[n].subnets}", refused=ALB_NODES,
                                       field=f"{where}.subnets"))
                else:
                    out.append(replace(change, detail=ALB_RESTART))
            elif n in http_groups:
                out.append(replace(change, detail="the ALB nodes whose configuration it "
                                                  "changes restart"))
            else:
                out.append(replace(change, detail="the forwarder's tables"))
    return out


def _instances(v: str, op: VpcPlan, np: VpcPlan) -> list[Change]:
    out: list[Change] = []
    oi = {i.name: i for i in op.instances}
    ni = {i.name: i for i in np.instances}
    for n in ni:
        if n not in oi and ni[n].managed_by is None:
            out.append(Change("+", "instance", f"{v}/{n}", f"{ni[n].ip} in {ni[n].subnet}"))
    for n in oi:
        if n not in ni and oi[n].managed_by is None:
            out.append(Change("-", "instance", f"{v}/{n}"))
    for n in [n for n in ni if n in oi]:
        a, b = oi[n], ni[n]
        where = f"vpcs.{v}.instances.{n}"
        if a.subnet != b.subnet:
            out.append(Change("~", "instance", f"{v}/{n}", f"subnet {a.subnet} → {b.subnet}",
                              "an ENI stays in its subnet", f"{where}.subnet"))
        elif a.ip != b.ip:
            out.append(Change("~", "instance", f"{v}/{n}", f"address {a.ip} → {b.ip}",
                              "an ENI keeps its primary address (addresses are given in file "
                              "order: add new instances last in their subnet, or give `ip:`)",
                              f"{where}.ip"))
        for f in ("security_groups", "source_dest_check", "run"):
            if getattr(a, f) != getattr(b, f):
                out.append(Change("~", "instance", f"{v}/{n}",
                                  f"{f} {getattr(a, f)} → {getattr(b, f)}"))
    return out


def _eni_key(p: compiled.Port) -> tuple:
    e = p.eni
    return (e.vpc, e.kind, e.owner, e.subnet, e.ip, e.ifname)


def _hyperplane(old: Lab, new: Lab) -> list[Change]:
    """Hyperplane ENIs added or removed are new or closed forwarder ports (their ids
    stay: compile/hyperplane.py); an ENI keeps its address, and the Hyperplane itself
    and the kinds' extra namespaces stay as they are."""
    out: list[Change] = []
    oports = {p.eni.eni_id: p for p in compiled.ports(old)}
    nports = {p.eni.eni_id: p for p in compiled.ports(new)}
    if bool(oports) != bool(nports):
        out.append(Change("+" if nports else "-", "hyperplane", names.hyperplane_netns(new.name),
                          refused="the Hyperplane (its namespace and forwarder) comes with "
                                  "a lab's first endpoint, NLB or VPC link and goes with its "
                                  "last; not reconciled in place yet",
                          field="endpoints, load_balancers, vpc_links"))
    for eid in sorted(set(oports) | set(nports)):
        a, b = oports.get(eid), nports.get(eid)
        if a is not None and b is not None and _eni_key(a) == _eni_key(b):
            continue
        e = (b or a).eni
        where = ({"vpce": f"vpcs.{e.vpc}.endpoints.{e.owner}",
                  "nlb": f"vpcs.{e.vpc}.load_balancers.{e.owner}"}.get(e.kind)
                 or f"api_gateway.vpc_links.{e.owner}")
        if a is not None and b is not None:
            out.append(Change("~", "hyperplane ENI", eid,
                              f"{e.kind} ENI of {e.owner}: {a.eni.ip} → {b.eni.ip}",
                              "an ENI keeps its primary address (addresses are given in file "
                              "order: add new instances last in their subnet, or give `ip:`)",
                              where))
        elif b is not None:
            out.append(Change("+", "hyperplane ENI", eid, f"{e.kind} ENI of {e.owner} in "
                              f"{e.subnet} {e.ip}: a new forwarder port"))
        else:
            out.append(Change("-", "hyperplane ENI", eid, f"{e.kind} ENI of {e.owner} in "
                              f"{e.subnet} {e.ip}: its forwarder port closes"))
    ons, nns = _kind_namespaces(old), _kind_namespaces(new)
    for ns in sorted(ons ^ nns):
        out.append(Change("+" if ns in nns else "-", "namespace", ns,
                          refused="a kind's own namespace (the NLB health checker's, made "
                                  "with the lab's first NLB)", field="load_balancers"))
    return out


def _kind_namespaces(lab: Lab) -> set[str]:
    return {n for kind in kinds.realisers() if hasattr(kind, "namespaces")
            for n in kind.namespaces(lab)}


def refused(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.refused]


# -- applying ------------------------------------------------------------------------

def reconcile(st: State, new: Lab, progress: bool | None = None,
              show: Callable[[str], None] | None = None, plan_only: bool = False) -> State:
    """Bring the running lab `st` to `new` in place (module docstring); `show` gets the
    plan's lines first. Raises Refused (nothing changed) or LabError (what was applied
    and what not)."""
    old = Lab.from_dict(st.data["topology"])
    changes = diff(old, new)
    for c in changes:
        if show:
            show(c.line())
    no = refused(changes)
    if no:
        raise Refused(f"lab {st.lab} cannot be changed in place: " + "; ".join(
            f"{c.field} ({c.op} {c.what} {c.name}: {c.refused})" for c in no)
            + "; nothing was changed")
    st.reconciled = [c.line() for c in changes]
    resuming = st.data.get("status") == RECONCILING
    if plan_only or not changes and st.data.get("digest") == digest(new) and not resuming:
        return st
    taken = [n for n in _new_namespaces(st, new) if kernel.netns_exists(n)
             and n not in st.data["namespaces"]]
    if taken:
        raise Refused(f"namespace(s) {', '.join(taken)} already exist and were not made by "
                      f"lab {st.lab}; nothing was changed")
    _begin(st)
    prog = Progress(0, progress)       # run_steps counts the steps
    steps = _steps(st, old, new, prog.note)
    try:
        run_steps(steps, prog)
    except BaseException as e:
        done = [s.what for s in steps[:max(prog.n - 1, 0)]]
        left = [s.what for s in steps[prog.n:]]
        try:
            _end(st)
        except Exception:       # noqa: BLE001 (the step's error is the one to report)
            pass
        raise LabError(f"reconcile of lab {st.lab} failed during: {prog.current}: {e}; "
                       f"applied: {'; '.join(done) or 'nothing'}; not applied: "
                       f"{'; '.join(left) or 'nothing'}; the state describes what runs: "
                       f"`vpclab up` again to finish, `vpclab down {st.lab}` to remove "
                       f"it") from e
    st.data["topology"] = new.to_dict()
    st.data["digest"] = digest(new)
    st.data["vpcs"] = {p.name: realise_vpc.record(p, new) for p in plan(new)}
    if st.data.get("hyperplane"):
        _settle_hyperplane(st, new)
    _end(st)
    return st


def _new_namespaces(st: State, new: Lab) -> list[str]:
    return [n for p in plan(new) for n in [p.netns] + [i.netns for i in p.instances]]


def _begin(st: State) -> None:
    """The lab is being changed: status `reconciling` (the supervisor restarts nothing
    and exits), the supervisor stopped and its record dropped."""
    with State.locked(st.lab) as fresh:
        if fresh is not None:
            st.data = fresh.data
        st.data["status"] = RECONCILING
        st.data["owner_pid"] = os.getpid()
        st.data["owner_start"] = procs.start_time(os.getpid())
        sup = [p for p in st.data["processes"] if p["role"] == processes.SUPERVISOR]
        st.save()
    for p in sup:
        procs.stop(p["pid"], p["start"])
    st.data["processes"] = [p for p in st.data["processes"] if p not in sup]
    st.save()


def _end(st: State) -> None:
    """The lab is up again: status `up`, a new supervisor."""
    st.data["status"] = "up"
    st.data["owner_pid"] = None
    st.save()
    blueprint.start_supervisor(st)


def _steps(st: State, old: Lab, new: Lab, note: Callable[[str], None]) -> list[Step]:
    mark = names.lo_altname(new.name)
    oplans, nplans = {p.name: p for p in plan(old)}, {p.name: p for p in plan(new)}
    started: set[tuple[str, str]] = set()     # instances whose `run:` (re)starts
    steps: list[Step] = []
    # removals first: a name or an address may come back in the additions
    for v, p in oplans.items():
        if v not in nplans:
            steps.append(Step(f"remove VPC {v}: its processes, namespaces {p.netns} and "
                              f"its instances'", lambda v=v, p=p: _remove_vpc(st, v, p)))
            continue
        gone = [i for i in p.instances if i.name not in {j.name for j in nplans[v].instances}]
        for i in gone:
            steps.append(Step(f"remove instance {v}/{i.name}: namespace {i.netns}",
                              lambda v=v, i=i: _remove_instance(st, v, i)))
    for v, p in nplans.items():
        if v not in oplans:
            steps.append(Step(f"record VPC {v} in the state",
                              lambda p=p: _record_vpc(st, new, p)))
            steps += realise_vpc.steps(new, p, st)
            started |= {(v, i.name) for i in p.instances if i.run}
            continue
        before = {i.name: i for i in oplans[v].instances}
        added = [i for i in p.instances if i.name not in before]
        for i in added:
            steps.append(Step(f"record instance {v}/{i.name} in the state",
                              lambda p=p, i=i: _record_instance(st, new, p, i)))
            steps.append(realise_vpc.instance_step(p, i, mark))
        if added:
            steps.append(realise_vpc.router_step(p))
        rerun = [i for i in p.instances if i.name in before and i.run != before[i.name].run]
        for i in [i for i in added if i.run] + rerun:
            steps.append(Step(f"run in {v}/{i.name}: {i.run or '(nothing)'}",
                              lambda p=p, i=i: _rerun(st, new, p, i)))
            started.add((v, i.name))
        steps.append(Step(f"security groups in {p.netns} (if changed)",
                          lambda p=p: _security_groups(st, new, p)))
        steps.append(Step(f"DNS names of VPC {v} (if changed)",
                          lambda p=p: _hosts(st, new, p)))
    if st.data.get("hyperplane"):
        steps += _hyperplane_steps(st, old, new)
    steps += _alb_steps(st, old, new)
    records = {p.name: realise_vpc.record(p, new) for p in nplans.values()}
    ready = blueprint.ready_step(new, records, st, note, only=started)
    if ready:
        steps.append(ready)
    return steps


def _forget(st: State, namespaces: list[str], owned: Callable[[dict], bool]) -> None:
    """End the processes `owned` picks and delete `namespaces`, then drop them from the
    state (only once they are gone)."""
    recorded = [p for p in st.data["processes"] if owned(p)]
    _remove(st.lab, namespaces, recorded, None)
    st.data["processes"] = [p for p in st.data["processes"] if p not in recorded]
    st.data["namespaces"] = [n for n in st.data["namespaces"] if n not in namespaces]
    st.save()


def _remove_vpc(st: State, v: str, p: VpcPlan) -> None:
    _forget(st, [i.netns for i in p.instances] + [p.netns], lambda r: r["vpc"] == v)
    st.data["vpcs"].pop(v, None)
    st.save()


def _remove_instance(st: State, v: str, i: InstancePlan) -> None:
    _forget(st, [i.netns], lambda r: (r["vpc"], r["instance"]) == (v, i.name))
    st.data["vpcs"][v]["instances"].pop(i.name, None)
    st.save()


def _record(st: State, namespaces: list[str]) -> None:
    st.data["namespaces"] += [n for n in namespaces if n not in st.data["namespaces"]]
    st.save()


def _record_vpc(st: State, new: Lab, p: VpcPlan) -> None:
    """Before anything of it is made: its namespaces and record (after ending what an
    earlier, failed attempt started for it, so that a retry starts each process once)."""
    _forget(st, [], lambda r: r["vpc"] == p.name)
    st.data["vpcs"][p.name] = realise_vpc.record(p, new)
    _record(st, [p.netns] + [i.netns for i in p.instances])


def _record_instance(st: State, new: Lab, p: VpcPlan, i: InstancePlan) -> None:
    """Before instance `i` is made: its record and namespace in the state."""
    st.data["vpcs"][p.name]["instances"][i.name] = realise_vpc.instance_record(p, i, new.name)
    _record(st, [i.netns])


def _rerun(st: State, new: Lab, p: VpcPlan, i: InstancePlan) -> None:
    """The instance's `run:` command as the file says now: the old one ended first."""
    old = [r for r in st.data["processes"]
           if (r["role"], r["vpc"], r["instance"]) == ("run", p.name, i.name)]
    for r in old:
        procs.stop(r["pid"], r["start"])
    st.data["processes"] = [r for r in st.data["processes"] if r not in old]
    st.data["vpcs"][p.name]["instances"][i.name] = realise_vpc.instance_record(p, i, new.name)
    st.save()
    if i.run:
        realise_vpc.start_run(st, p, i)


def _security_groups(st: State, new: Lab, p: VpcPlan) -> None:
    """Rewrite the VPC's table (one nftables transaction) only when it changes."""
    script = nft.render(names.nft_table(new.name), p.groups, p.enis)
    try:
        with open(os.path.join(st.dir, f"{p.name}.nft")) as f:
            if f.read() == script:
                return
    except FileNotFoundError:
        pass
    realise_vpc.apply_security_groups(new, p, st)


def _hosts(st: State, new: Lab, p: VpcPlan) -> None:
    """Rewrite the VPC's hosts file when its names change; dnsmasq reads it again on
    SIGHUP."""
    path = st.data["vpcs"][p.name]["hosts"]
    text = realise_vpc.hosts(new, p)
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    with open(path, "w") as f:
        f.write(text)
    for r in st.data["processes"]:
        if (r["role"], r["vpc"]) == ("dns", p.name) and procs.alive(r["pid"], r["start"]):
            os.kill(r["pid"], signal.SIGHUP)


def _hyperplane_steps(st: State, old: Lab, new: Lab) -> list[Step]:
    """New Hyperplane ENIs: recorded, then their veths, then the capture table, then the
    forwarder's new spec (it opens their ports, closes the removed ones'), then the
    removed ENIs' veths deleted and the capture table without them."""
    hp = st.data["hyperplane"]
    previous = hp.get("port_ids") or compiled.ports(old).ids     # states before port_ids
    nports = compiled.ports(new, previous)
    recorded = {e["eni_id"] for e in hp["enis"]}
    kept = {p.eni.eni_id for p in nports}
    added = [p for p in nports if p.eni.eni_id not in {q.eni.eni_id for q in compiled.ports(old)}]
    removed = [e for e in hp["enis"] if e["eni_id"] not in kept]
    steps = [Step("record the Hyperplane's new ports in the state",
                  lambda: _record_ports(st, new, nports, previous, recorded))]
    for p in added:
        e = p.eni
        steps.append(Step(f"{hyperplane.eni_kind_name(e.kind)} {e.vpc}/{e.owner} ENI "
                          f"{e.eni_id} {e.ip} in {e.subnet}: {e.ifname} ⇄ {p.hp_ifname}",
                          lambda p=p: _add_eni(st, new, p)))
    if added:
        steps.append(Step(f"capture table in {hp['netns']}: the new ports",
                          lambda: _capture(st, new, extra=[e["hp_ifname"] for e in removed])))
    steps.append(Step("forwarder: the new spec through its control socket (if changed)",
                      lambda: _forwarder(st, new)))
    for e in removed:
        steps.append(Step(f"remove {e['kind']} ENI {e['vpc']}/{e['owner']} {e['eni_id']} "
                          f"{e['ip']}: {e['ifname']} ⇄ {e['hp_ifname']}",
                          lambda e=e: _remove_eni(st, e)))
    if removed:
        steps.append(Step(f"capture table in {hp['netns']}: without the removed ports",
                          lambda: _capture(st, new)))
    return steps


def _record_ports(st: State, new: Lab, nports: compiled.Ports, previous: dict[str, int],
                  recorded: set[str]) -> None:
    """Before a new ENI is made: its port id (the old ids kept too, so that no new port
    takes a removed one's id while its veth exists), its record, endpoint states."""
    hp = st.data["hyperplane"]
    hp["port_ids"] = {**previous, **nports.ids}
    hp["enis"] += [hyperplane.eni_record(p) for p in nports if p.eni.eni_id not in recorded]
    hp["endpoints"] = {**hp["endpoints"],
                       **privatelink.endpoint_states(new, hp["endpoints"])}
    st.save()


def _add_eni(st: State, new: Lab, p: compiled.Port) -> None:
    hp = st.data["hyperplane"]
    hp["macs"][str(p.id)] = list(hyperplane.make_eni(new, hp["netns"], p))
    st.save()


def _remove_eni(st: State, eni: dict[str, Any]) -> None:
    hp = st.data["hyperplane"]
    hyperplane.remove_eni(st.lab, eni)
    hp["enis"] = [e for e in hp["enis"] if e["eni_id"] != eni["eni_id"]]
    hp["macs"].pop(str(eni["port"]), None)
    st.save()


def _capture(st: State, new: Lab, extra: list[str] = ()) -> None:
    hp = st.data["hyperplane"]
    spec = actions.compile_from_state(st, new, hp["endpoints"])
    hyperplane.capture_ports(new, hp["netns"], [p.ifname for p in spec.ports] + list(extra))


def _settle_hyperplane(st: State, new: Lab) -> None:
    """Once applied: the ids, ENIs and endpoint states of `new` only (a removed port's id
    is free for the next change)."""
    hp = st.data["hyperplane"]
    nports = compiled.ports(new, hp.get("port_ids"))
    hp["port_ids"] = nports.ids
    hp["enis"] = [hyperplane.eni_record(p) for p in nports]
    hp["endpoints"] = privatelink.endpoint_states(new, hp["endpoints"])
    used = {str(i) for i in nports.ids.values()}
    hp["macs"] = {k: v for k, v in hp["macs"].items() if k in used}


def _forwarder(st: State, new: Lab) -> None:
    """The new spec to the forwarder, in place: services whose listener is unchanged
    keep their flows, new ports open, removed ones close, health checks follow
    (forwarder/daemon.py)."""
    hp = st.data["hyperplane"]
    with open(hp["spec"]) as f:
        before = json.load(f)
    spec = actions.compile_from_state(st, new, hp["endpoints"]).to_json()
    if spec != before:
        actions.push_spec(hp, spec)


def _alb_steps(st: State, old: Lab, new: Lab) -> list[Step]:
    """ALB nodes whose configuration changed (rules, listeners, target groups) restart
    with the new one; the others keep running."""
    if not realise_alb.compiled.albs(new):
        return []
    return [Step("ALB nodes: restart those whose configuration changed",
                 lambda: realise_alb.restart_changed_nodes(new, st))]
