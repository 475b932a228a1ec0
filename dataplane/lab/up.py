"""Bringing a lab up and down: the plan, the state file, rollback and cleanup.

`up(lab)` turns a checked `Lab` into kernel objects, in this order, per VPC:

1. the VPC namespace `<lab>.<vpc>` (the VPC router and resolver) and one namespace
   `<lab>.<vpc>.<instance>` per instance;
2. per instance, its ENI: a veth `eni-<instance>` (VPC side) ⇄ `eth0` (instance side),
   MTU 9001. The instance gets its private IP with the subnet's prefix and a default
   route via the subnet's `.1`; the router side gets `.1/32` and a /32 host route to
   the instance. With proxy ARP on every `eni-…` the router answers ARP for every
   other address of the subnet, so no two instances share an L2 segment and every
   packet crosses the router, as on the AWS fabric;
3. the router: IP forwarding on, the VPC's DNS address (base+2) on `lo`;
4. security groups: `table inet <lab>-sg` (netns_setup/nft.py) and AWS's
   connection-tracking timeouts as the namespace's conntrack sysctls;
5. DNS: a hosts file and resolv.conf under /run/vpclab/<lab>/, then dnsmasq in the VPC
   namespace on base+2 (netns_setup/dns.py);
6. `run:` commands, each in its instance namespace (private mount namespace, the VPC's
   resolv.conf over /etc/resolv.conf), output in /run/vpclab/<lab>/<vpc>.<instance>.log.

The state file `/run/vpclab/<lab>/state.json` is written *before* anything is made
(the full list of planned namespaces, after checking that none exists yet) and updated
as each process starts, so `down`, `status` and `cleanup` need nothing but it, even
after a `kill -9` half-way. A failure in `up` tears down everything it made and raises
`LabError` naming the step that failed.

Teardown (down, rollback, cleanup) is the same routine: stop the recorded processes by
PID (checked against their start time), then any process still inside a lab namespace,
delete the namespaces (their veths and nftables tables go with them), delete any link
that carries the lab's ownership altname (there should be none outside the namespaces)
and remove the lab's directory. Nothing that is neither recorded in the state nor marked
with the lab's altname is touched.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from netns_setup import dns, kernel, nft, nsenter, offload, procs

from dataplane.compile import privatelink as hyperplane
from dataplane.forwarder import control
from dataplane.forwarder.io import max_frame as forwarder_max_frame
from dataplane.model import Lab, names

ENI_MTU = 9001
STATE_VERSION = 1
DNS_READY_S = 5.0
FORWARDER_READY_S = 15.0


class LabError(RuntimeError):
    """Bringing a lab up or down failed; the message says what and what was done."""


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


def _check_interrupt() -> None:
    global _interrupt
    if _interrupt is not None:
        why, _interrupt = _interrupt, None
        raise Interrupted(why)


# -- the plan: names and addresses of everything, computed from the model ---------------
@dataclass
class InstancePlan:
    vpc: str
    name: str
    netns: str
    subnet: str
    ip: str
    prefixlen: int
    router: str
    eni: str
    eni_mark: str
    eth_mark: str
    security_groups: list[str]
    run: str | None


@dataclass
class VpcPlan:
    name: str
    netns: str
    cidr: str
    dns: str
    instances: list[InstancePlan] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    enis: list[dict[str, Any]] = field(default_factory=list)


def plan(lab: Lab) -> list[VpcPlan]:
    addresses = lab.addresses()
    out = []
    for vpc in lab.vpcs.values():
        vp = VpcPlan(vpc.name, names.vpc_netns(lab.name, vpc.name), vpc.cidr,
                     str(vpc.dns_address))
        groups = vpc.effective_security_groups()
        vp.groups = {g: vpc.members(g, addresses) for g in groups}
        for inst in vpc.instances.values():
            sn = vpc.subnets[inst.subnet]
            ip = addresses[(vpc.name, inst.name)]
            vp.instances.append(InstancePlan(
                vpc.name, inst.name, names.instance_netns(lab.name, vpc.name, inst.name),
                sn.name, ip, sn.network.prefixlen, str(sn.router), names.eni_ifname(inst.name),
                names.eni_altname(lab.name, vpc.name, inst.name),
                names.eth_altname(lab.name, vpc.name, inst.name),
                inst.effective_security_groups, inst.run))

            def plain(rules):
                return [{"protocol": r.protocol, "ports": r.port_range, "peer": r.peer}
                        for r in rules]
            sgs = [groups[g] for g in inst.effective_security_groups]
            vp.enis.append({"ifname": names.eni_ifname(inst.name),
                            "ingress": plain(r for g in sgs for r in g.ingress),
                            "egress": plain(r for g in sgs for r in g.effective_egress)})
        out.append(vp)
    return out


def digest(lab: Lab) -> str:
    return hashlib.sha256(json.dumps(lab.to_dict(), sort_keys=True).encode()).hexdigest()


# -- the state file ---------------------------------------------------------------------
class State:
    """The lab's record in /run/vpclab/<lab>/state.json (see the module docstring)."""

    def __init__(self, data: dict[str, Any]):
        self.data = data

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
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)

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


# -- progress ---------------------------------------------------------------------------
class Progress:
    """Step lines on stderr when it is a terminal (or when forced), silent otherwise."""

    def __init__(self, total: int, enabled: bool | None = None):
        self.total, self.n = total, 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.current = ""

    def step(self, what: str) -> None:
        _check_interrupt()
        self.n += 1
        self.current = what
        if self.enabled:
            print(f"[{self.n}/{self.total}] {what}", file=sys.stderr, flush=True)


# -- up ---------------------------------------------------------------------------------
def up(lab: Lab, progress: bool | None = None) -> tuple[State, bool]:
    """Make the lab; returns (state, created). `created` is False if it was already up.

    Raises LabError, after rolling back everything it made, if any step fails.
    """
    lab.check()
    plans = plan(lab)
    want = digest(lab)
    old = State.load(lab.name)
    if old is not None:
        status = old.data.get("status")
        if status == "up" and old.data.get("digest") == want:
            missing = check_present(old)
            if missing:
                raise LabError(f"lab {lab.name} is up but damaged ({'; '.join(missing)}); "
                               f"run `vpclab down {lab.name}` and `vpclab up` again")
            return old, False
        if status == "up":
            raise LabError(f"lab {lab.name} is already up from a different topology; "
                           f"run `vpclab down {lab.name}` first")
        if old.owner_alive():
            raise LabError(f"lab {lab.name} is being changed by vpclab (pid "
                           f"{old.data.get('owner_pid')}); wait for it to finish")
        raise LabError(f"lab {lab.name} has leftovers of an unfinished `{status}` "
                       f"(state in {old.dir}); run `vpclab cleanup` first")

    all_ns = [p.netns for p in plans] + [i.netns for p in plans for i in p.instances]
    hp_ports = hyperplane.ports(lab) if hyperplane.has_hyperplane(lab) else []
    if hyperplane.has_hyperplane(lab):
        all_ns.append(names.hyperplane_netns(lab.name))
        if any(v.load_balancers for v in lab.vpcs.values()):
            all_ns.append(names.health_netns(lab.name))
    taken = [n for n in all_ns if kernel.netns_exists(n)]
    ours = [n for n in taken if names.lo_altname(lab.name) in kernel.netns_mark(n)]
    if ours:
        raise LabError(f"namespace(s) {', '.join(ours)} are leftovers of lab {lab.name} "
                       f"without state; run `vpclab cleanup` first; nothing was created")
    if taken:
        raise LabError(f"namespace(s) {', '.join(taken)} already exist and were not made by "
                       f"lab {lab.name}; nothing was created")

    st = State({"version": STATE_VERSION, "lab": lab.name, "region": lab.region,
                "status": "building", "owner_pid": os.getpid(),
                "owner_start": procs.start_time(os.getpid()), "digest": want,
                "created_at": time.time(), "topology": lab.to_dict(),
                "namespaces": all_ns, "vpcs": {p.name: _vpc_record(p, lab) for p in plans},
                "processes": []})
    if hyperplane.has_hyperplane(lab):
        st.data["hyperplane"] = {"netns": names.hyperplane_netns(lab.name),
                                 **hyperplane.paths(lab.name),
                                 "endpoints": hyperplane.endpoint_states(lab),
                                 "enis": [_eni_record(p) for p in hp_ports]}
    st.save()
    steps = sum(4 + len(p.instances) + sum(1 for i in p.instances if i.run) for p in plans)
    steps += (2 + len(hp_ports)) if hp_ports else 0
    prog = Progress(steps, progress)
    try:
        for p in plans:
            _up_vpc(lab, p, st, prog)
        if hp_ports:
            _up_hyperplane(lab, hp_ports, st, prog)
        _check_interrupt()
        st.data["status"] = "up"
        st.data["owner_pid"] = None
        st.save()
    except BaseException as e:
        failed = prog.current or "preparing"
        teardown(st)
        if isinstance(e, (Interrupted, KeyboardInterrupt, SystemExit)):
            raise LabError(f"up of lab {lab.name} interrupted during: {failed}; "
                           f"everything it made was removed") from e
        raise LabError(f"up of lab {lab.name} failed during: {failed}: {e}; "
                       f"everything it made was removed") from e
    return st, True


def _vpc_record(p: VpcPlan, lab: Lab) -> dict[str, Any]:
    d = names.lab_dir(lab.name)
    return {"netns": p.netns, "cidr": p.cidr, "dns": p.dns,
            "resolv_conf": os.path.join(d, f"{p.name}.resolv.conf"),
            "hosts": os.path.join(d, f"{p.name}.hosts"),
            "nft_table": names.nft_table(lab.name),
            "instances": {i.name: {"netns": i.netns, "ip": i.ip, "prefixlen": i.prefixlen,
                                   "subnet": i.subnet, "router": i.router, "eni": i.eni,
                                   "security_groups": i.security_groups,
                                   "run": i.run,
                                   "log": os.path.join(d, f"{p.name}.{i.name}.log")
                                   if i.run else None}
                          for i in p.instances}}


def _up_vpc(lab: Lab, p: VpcPlan, st: State, prog: Progress) -> None:
    rec = st.data["vpcs"][p.name]
    mark = names.lo_altname(lab.name)

    prog.step(f"namespace {p.netns} (VPC {p.name} router)")
    kernel.ensure_netns(p.netns, mark)

    for i in p.instances:
        prog.step(f"instance {i.vpc}/{i.name}: namespace {i.netns}, ENI {i.eni} ⇄ eth0 "
                  f"{i.ip}/{i.prefixlen}")
        kernel.ensure_netns(i.netns, mark)
        kernel.ensure_veth(p.netns, i.eni, i.eni_mark, i.netns, names.INSTANCE_IFNAME,
                           i.eth_mark, ENI_MTU)
        kernel.ensure_address(i.netns, names.INSTANCE_IFNAME, i.ip, i.prefixlen)
        kernel.ensure_route(i.netns, "0.0.0.0/0", gateway=i.router)
        # Its GSO frames may be forwarded to the Hyperplane: keep them within a ring slot
        # (the router would cut larger ones into single segments).
        offload.cap_gso_size(names.INSTANCE_IFNAME, i.netns, forwarder_max_frame())
        kernel.ensure_address(p.netns, i.eni, i.router, 32)
        kernel.ensure_route(p.netns, f"{i.ip}/32", ifname=i.eni)

    prog.step(f"VPC router in {p.netns}: forwarding, proxy ARP, DNS address {p.dns}")
    kernel.ensure_address(p.netns, "lo", p.dns, 32)
    sysctls: dict[str, Any] = {"net.ipv4.ip_forward": 1,
                               "net.ipv6.conf.all.disable_ipv6": 1,
                               "net.ipv6.conf.default.disable_ipv6": 1}
    for i in p.instances:
        sysctls[f"net.ipv4.conf.{i.eni}.proxy_arp"] = 1
        sysctls[f"net.ipv4.conf.{i.eni}.send_redirects"] = 0
        # Proxy ARP replies to broadcast requests are delayed by a random 0-800 ms
        # by default (neigh proxy_delay); the AWS fabric answers at once.
        sysctls[f"net.ipv4.neigh.{i.eni}.proxy_delay"] = 0
    nsenter.write_sysctls(p.netns, sysctls)
    for i in p.instances:
        nsenter.write_sysctls(i.netns, {"net.ipv6.conf.all.disable_ipv6": 1})

    prog.step(f"security groups in {p.netns}: table inet {names.nft_table(lab.name)}")
    script = nft.render(names.nft_table(lab.name), p.groups, p.enis)
    with open(os.path.join(st.dir, f"{p.name}.nft"), "w") as f:
        f.write(script)
    nft.apply(p.netns, script)
    nsenter.write_sysctls(p.netns, nft.CONNTRACK_SYSCTLS)

    prog.step(f"DNS for VPC {p.name}: dnsmasq on {p.dns} in {p.netns}")
    with open(rec["hosts"], "w") as f:
        f.write(dns.hosts_file(lab.region, [(i.name, i.ip) for i in p.instances]))
        # Endpoint names (regional, zonal, private DNS): this VPC's resolver only.
        f.writelines(f"{ip} {name}\n" for name, ip in hyperplane.dns_records(lab).get(p.name, []))
    with open(rec["resolv_conf"], "w") as f:
        f.write(dns.resolv_conf(p.dns, lab.region))
    log = os.path.join(st.dir, f"dns-{p.name}.log")
    argv = dns.dnsmasq_argv(p.dns, lab.region, rec["hosts"], log,
                            os.path.join(st.dir, f"dns-{p.name}.pid"))
    pid = _start(st, "dns", p.name, None, p.netns, argv, log, None)
    deadline = time.monotonic() + DNS_READY_S
    while not procs.udp_listening(pid, p.dns, 53):
        _check_interrupt()
        if not procs.alive(pid, None) or time.monotonic() > deadline:
            raise LabError(f"dnsmasq for VPC {p.name} did not start: {_tail(log)}")
        time.sleep(0.01)

    for i in p.instances:
        if not i.run:
            continue
        prog.step(f"run in {i.vpc}/{i.name}: {i.run}")
        _start(st, "run", p.name, i.name, i.netns, ["/bin/sh", "-c", i.run],
               rec["instances"][i.name]["log"], rec["resolv_conf"])


def _eni_record(p: "hyperplane.Port") -> dict[str, Any]:
    e = p.eni
    return {"port": p.id, "hp_ifname": p.hp_ifname, "vpc": e.vpc, "kind": e.kind,
            "owner": e.owner, "subnet": e.subnet, "az": e.az, "ip": e.ip, "eni_id": e.eni_id,
            "ifname": e.ifname}


def _up_hyperplane(lab: Lab, ports: list["hyperplane.Port"], st: State, prog: Progress) -> None:
    """The Hyperplane namespace, every NLB and endpoint ENI, and the forwarder
    (dataplane/hyperplane.py describes them)."""
    hp_ns = names.hyperplane_netns(lab.name)
    mark = names.lo_altname(lab.name)
    prog.step(f"namespace {hp_ns} (the forwarder's: no addresses, no routes)")
    kernel.ensure_netns(hp_ns, mark)
    # No IPv6 either: the kernel of this namespace must never send anything itself.
    nsenter.write_sysctls(hp_ns, {"net.ipv6.conf.all.disable_ipv6": 1,
                                  "net.ipv6.conf.default.disable_ipv6": 1})
    macs: dict[int, tuple[str, str]] = {}
    for p in ports:
        e = p.eni
        vpc_ns = names.vpc_netns(lab.name, e.vpc)
        what = "NLB" if e.kind == "nlb" else "endpoint"
        prog.step(f"{what} {e.vpc}/{e.owner} ENI {e.eni_id} {e.ip} in {e.subnet}: "
                  f"{e.ifname} ⇄ {p.hp_ifname}")
        kernel.ensure_veth(vpc_ns, e.ifname, f"{names.MARK}.{lab.name}.{e.vpc}.{e.eni_id}",
                           hp_ns, p.hp_ifname, f"{names.MARK}.{lab.name}.{names.HYPERPLANE}.{p.hp_ifname}",
                           ENI_MTU)
        subnet = lab.vpcs[e.vpc].subnets[e.subnet]
        kernel.ensure_address(vpc_ns, e.ifname, str(subnet.router), 32)
        kernel.ensure_route(vpc_ns, f"{e.ip}/32", ifname=e.ifname)
        nsenter.write_sysctls(vpc_ns, {f"net.ipv4.conf.{e.ifname}.send_redirects": 0})
        offload.cap_gso_size(e.ifname, vpc_ns, forwarder_max_frame())
        macs[p.id] = (kernel.link_mac(hp_ns, p.hp_ifname), kernel.link_mac(vpc_ns, e.ifname))

    health_ns = names.health_netns(lab.name)
    if health_ns in st.data["namespaces"]:
        hc = hyperplane.health_port_id(ports)
        kernel.ensure_netns(health_ns, mark)
        nsenter.write_sysctls(health_ns, {"net.ipv6.conf.all.disable_ipv6": 1,
                                          "net.ipv6.conf.default.disable_ipv6": 1})
        kernel.ensure_veth(health_ns, names.INSTANCE_IFNAME,
                           f"{names.MARK}.{lab.name}.{names.HYPERPLANE}.health.eth0",
                           hp_ns, hyperplane.HEALTH_IFNAME,
                           f"{names.MARK}.{lab.name}.{names.HYPERPLANE}.{hyperplane.HEALTH_IFNAME}",
                           ENI_MTU)
        kernel.ensure_address(health_ns, names.INSTANCE_IFNAME, hyperplane.HEALTH_NS_IP, 30)
        kernel.ensure_route(health_ns, "0.0.0.0/0", gateway=hyperplane.HEALTH_PORT_IP)
        offload.cap_gso_size(names.INSTANCE_IFNAME, health_ns, forwarder_max_frame())
        macs[hc] = (kernel.link_mac(hp_ns, hyperplane.HEALTH_IFNAME),
                    kernel.link_mac(health_ns, names.INSTANCE_IFNAME))

    # The forwarder's sockets take every frame of its ports; the namespace's own IP stack
    # (no addresses, no routes) must not spend time on them too.
    port_ifnames = [p.hp_ifname for p in ports]
    if health_ns in st.data["namespaces"]:
        port_ifnames.append(hyperplane.HEALTH_IFNAME)
    nft.apply(hp_ns, nft.render_ports_capture_only(names.nft_ports_table(lab.name), port_ifnames))

    hp = st.data["hyperplane"]
    prog.step(f"forwarder in {hp_ns}: {len(ports)} ENIs, control socket {hp['socket']}")
    spec = hyperplane.compile_spec(lab, ports, macs, hp["endpoints"])
    with open(hp["spec"], "w") as f:
        json.dump(spec, f, indent=1)
    hp["macs"] = {str(k): v for k, v in macs.items()}
    argv = [sys.executable, "-m", "dataplane.forwarder.daemon", "--spec", hp["spec"],
            "--socket", hp["socket"]]
    if spec.get("health_checks"):
        argv += ["--health-netns", health_ns]
    pid = _start(st, "forwarder", names.HYPERPLANE, None, hp_ns, argv, hp["log"], None)
    deadline = time.monotonic() + FORWARDER_READY_S
    while True:
        _check_interrupt()
        try:
            control.call(hp["socket"], "ping", timeout=1)
            break
        except (control.ControlError, OSError):
            if not procs.alive(pid, None) or time.monotonic() > deadline:
                raise LabError(f"the forwarder did not start: {_tail(hp['log'])}")
            time.sleep(0.05)


def _start(st: State, role: str, vpc: str, instance: str | None, netns: str,
           argv: list[str], log: str, resolv: str | None) -> int:
    pid, started = procs.spawn(netns, argv, log, resolv)
    st.data["processes"].append({"pid": pid, "start": started, "role": role, "vpc": vpc,
                                 "instance": instance, "netns": netns, "argv": argv,
                                 "log": log})
    st.save()
    return pid


def _tail(path: str, n: int = 3) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = f.read().strip().splitlines()
        return " | ".join(lines[-n:]) or "(empty log)"
    except OSError:
        return "(no log)"


# -- status -----------------------------------------------------------------------------
def check_present(st: State) -> list[str]:
    """What the state says exists but the kernel doesn't show (empty if all is well)."""
    missing = [f"namespace {n}" for n in st.data.get("namespaces", [])
               if not kernel.netns_exists(n)]
    missing += [f"{p['role']} process {p['pid']} ({p['vpc']}"
                f"{'/' + p['instance'] if p.get('instance') else ''})"
                for p in st.data.get("processes", []) if not procs.alive(p["pid"], p["start"])]
    return missing


def status(lab: str) -> dict[str, Any]:
    st = State.load(lab)
    if st is None:
        raise LabError(f"no lab {lab} (no state in {names.lab_dir(lab)})")
    d = st.data
    out: dict[str, Any] = {"lab": lab, "status": d.get("status"), "region": d.get("region"),
                           "state_dir": st.dir, "vpcs": {}, "processes": []}
    if d.get("status") != "up" and not st.owner_alive():
        out["status"] = f"{d.get('status')} (unfinished: run vpclab cleanup)"
    for vname, v in d.get("vpcs", {}).items():
        out["vpcs"][vname] = {
            "netns": v["netns"], "present": kernel.netns_exists(v["netns"]),
            "cidr": v["cidr"], "dns": v["dns"],
            "instances": {n: {**{k: i[k] for k in ("netns", "ip", "prefixlen", "subnet",
                                                   "eni", "security_groups", "log")},
                              "present": kernel.netns_exists(i["netns"])}
                          for n, i in v["instances"].items()}}
    for p in d.get("processes", []):
        out["processes"].append({**{k: p[k] for k in ("pid", "role", "vpc", "instance",
                                                      "log", "argv")},
                                 "running": procs.alive(p["pid"], p["start"])})
    if d.get("hyperplane"):
        out["hyperplane"] = _hyperplane_status(d)
    return out


def _hyperplane_status(d: dict[str, Any]) -> dict[str, Any]:
    """Endpoints (state, ENIs, DNS names) and NLBs (nodes, targets) of a lab's state."""
    hp = d["hyperplane"]
    lab = Lab.from_dict(d["topology"])
    records = hyperplane.dns_records(lab)
    enis = hp["enis"]
    endpoints = {}
    for key, e in hp["endpoints"].items():
        vpc, name = key.split("/")
        mine = [x for x in enis if x["kind"] == "vpce" and x["vpc"] == vpc and x["owner"] == name]
        ips = {x["ip"] for x in mine}
        endpoints[key] = {**e, "enis": mine,
                          "dns": sorted({n for n, ip in records.get(vpc, []) if ip in ips})}
    try:
        health = control.call(hp["socket"], "health", timeout=2)["health"]
    except (control.ControlError, OSError):
        health = None
    nlbs = {}
    addresses = lab.addresses()
    for vpc in lab.vpcs.values():
        for lb in vpc.load_balancers.values():
            ips = {i: addresses[(vpc.name, i)] for i in vpc.instances}
            nlbs[f"{vpc.name}/{lb.name}"] = {
                "enis": [x for x in enis if x["kind"] == "nlb" and x["vpc"] == vpc.name
                         and x["owner"] == lb.name],
                "listeners": [{"port": l.port, "target_group": l.target_group,
                               "targets": [f"{ip}:{port}" for ip, port in
                                           vpc.target_groups[l.target_group].target_addresses(ips)]}
                              for l in lb.listeners],
                # {"<node ENI>/<target group>": {"ip:port": {state, reason, last_error}}}
                "target_health": None if health is None else {
                    g: targets for g, targets in health.items()
                    if g.split("/")[0] in {x["eni_id"] for x in enis if x["owner"] == lb.name}}}
    return {"netns": hp["netns"], "present": kernel.netns_exists(hp["netns"]),
            "socket": hp["socket"], "endpoints": endpoints, "load_balancers": nlbs}


def interfaces_table(st: State) -> list[tuple[str, str, str, str]]:
    """(namespace, interface, address, what) rows of everything the lab made."""
    rows = []
    for vname, v in st.data["vpcs"].items():
        rows.append((v["netns"], "lo", f"{v['dns']}/32", f"VPC {vname} DNS (base+2)"))
        for n, i in v["instances"].items():
            rows.append((v["netns"], i["eni"], f"{i['router']}/32",
                         f"VPC router → {n} ({i['ip']})"))
        for n, i in v["instances"].items():
            rows.append((i["netns"], names.INSTANCE_IFNAME, f"{i['ip']}/{i['prefixlen']}",
                         f"{vname}/{n} in {i['subnet']}, sg: {', '.join(i['security_groups'])}"))
    return rows


# -- down and cleanup ------------------------------------------------------------------
def teardown(st: State) -> list[str]:
    """Remove everything of the lab `st` describes (see the module docstring)."""
    lab = st.lab
    done: list[str] = []
    st.data["status"] = "stopping"
    if os.path.isdir(st.dir):
        st.save()
    for p in reversed(st.data.get("processes", [])):
        if procs.stop(p["pid"], p["start"]):
            done.append(f"process {p['pid']} ({p['role']})")
    done += _remove_namespaces(lab, list(st.data.get("namespaces", [])))
    shutil.rmtree(st.dir, ignore_errors=True)
    done.append(f"directory {st.dir}")
    _remove_run_dir_if_empty()
    return done


def _remove_run_dir_if_empty() -> None:
    try:
        os.rmdir(names.RUN_DIR)        # only succeeds when no other lab has state
    except OSError:
        pass


def _remove_namespaces(lab: str, candidates: list[str]) -> list[str]:
    """Delete `candidates` (they are the lab's: recorded or marked), processes first."""
    done: list[str] = []
    # Instances before VPCs: deeper names first.
    present = [n for n in candidates if kernel.netns_exists(n)]
    present.sort(key=lambda n: (-n.count("."), n))
    for n in present:
        ino = kernel.netns_inode(n)
        if ino is not None:
            for pid in procs.pids_in_netns(ino):
                if pid != os.getpid() and procs.stop(pid, procs.start_time(pid)):
                    done.append(f"process {pid} (left in {n})")
    for n in present:
        if kernel.remove_netns(n):
            done.append(f"namespace {n}")
    for idx, ifname, marks in kernel.marked_links(None, names.mark_prefix(lab)):
        kernel.delete_link(None, idx)
        done.append(f"link {ifname} ({marks[0]})")
    return done


def marked_namespaces() -> dict[str, list[str]]:
    """{lab: [namespaces]} of every namespace whose `lo` carries a vpclab mark."""
    out: dict[str, list[str]] = {}
    for n in kernel.list_netns():
        for m in kernel.netns_mark(n):
            lab = names.lab_of_mark(m)
            if lab and m == names.lo_altname(lab) and n.startswith(lab + "."):
                out.setdefault(lab, []).append(n)
    return out


def down(lab: str) -> list[str]:
    st = State.load(lab)
    if st is None:
        raise LabError(f"no lab {lab} is up (no state in {names.lab_dir(lab)}); "
                       f"`vpclab cleanup` removes leftovers without state")
    if st.data.get("status") == "building" and st.owner_alive():
        raise LabError(f"lab {lab} is being built by pid {st.data['owner_pid']}")
    return teardown(st)


def cleanup(lab: str | None = None, everything: bool = False) -> dict[str, list[str]]:
    """Remove leftovers; returns {lab: [what was removed]}.

    lab=None, everything=False: labs whose `up`/`down` never finished (their owner is
    gone) and marked namespaces that no state file mentions. everything=True: every
    vpclab lab, running or not. lab="x": that lab, whatever its state.
    """
    report: dict[str, list[str]] = {}
    marked = marked_namespaces()
    labs = set(state_labs()) | set(marked)
    if lab is not None:
        labs = {lab} & labs
    for name in sorted(labs):
        try:
            st = State.load(name) if os.path.isdir(names.lab_dir(name)) else None
        except LabError:
            st = None          # unreadable state: the marks and the directory remain
        if st is not None and st.lab != name:
            st = None
        if lab is None and not everything and st is not None:
            if st.data.get("status") == "up" or st.owner_alive():
                continue
        done: list[str] = []
        if st is not None:
            done += teardown(st)
        done += _remove_namespaces(name, marked.get(name, []))
        if os.path.isdir(names.lab_dir(name)):
            shutil.rmtree(names.lab_dir(name), ignore_errors=True)
            done.append(f"directory {names.lab_dir(name)}")
        _remove_run_dir_if_empty()
        report[name] = done
    return report



# -- the Hyperplane of a running lab ------------------------------------------------------
# Endpoint states as AWS moves them (AWS-FACTS §1): the provider accepts or rejects a
# pending endpoint, and may reject an available one later (its traffic stops at once).
ENDPOINT_TRANSITIONS = {"accept": {"pendingAcceptance": "available"},
                        "reject": {"pendingAcceptance": "rejected", "available": "rejected"}}


def hyperplane_of(st: State) -> dict[str, Any]:
    hp = st.data.get("hyperplane")
    if not hp:
        raise LabError(f"lab {st.lab} has no load balancers or endpoints, so no forwarder")
    return hp


def set_endpoint_state(st: State, endpoint: str, action: str) -> str:
    """`accept` or `reject` endpoint `<vpc>/<name>` (or its vpce- id); returns the new state.
    The forwarder's tables change at once; flows of a rejected endpoint stop."""
    hp = hyperplane_of(st)
    key = next((k for k, e in hp["endpoints"].items() if endpoint in (k, e["id"])), None)
    if key is None:
        raise LabError(f"no endpoint {endpoint} in lab {st.lab} "
                       f"(endpoints: {', '.join(hp['endpoints']) or 'none'})")
    current = hp["endpoints"][key]["state"]
    new = ENDPOINT_TRANSITIONS[action].get(current)
    if new is None:
        raise LabError(f"endpoint {key} is {current}; it cannot be {action}ed")
    states = {**hp["endpoints"], key: {**hp["endpoints"][key], "state": new}}
    lab = Lab.from_dict(st.data["topology"])
    ports = hyperplane.ports(lab)
    macs = {int(k): tuple(v) for k, v in hp["macs"].items()}
    spec = hyperplane.compile_spec(lab, ports, macs, states)
    control.call(hp["socket"], "apply", spec=spec)
    with open(hp["spec"], "w") as f:
        json.dump(spec, f, indent=1)
    hp["endpoints"] = states
    st.save()
    return new
