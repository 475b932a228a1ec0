"""The steps that make one VPC, in order (lab/up.py runs them):

1. the VPC namespace `<lab>.<vpc>` (the VPC router and resolver);
2. per instance, its namespace `<lab>.<vpc>.<instance>` and its ENI: a veth
   `eni-<instance>` (VPC side) ⇄ `eth0` (instance side), MTU 9001. The instance gets its
   private IP with the subnet's prefix and a default route via the subnet's `.1`; the
   router side gets `.1/32` and a /32 host route to the instance. With proxy ARP on
   every `eni-…` the router answers ARP for every other address of the subnet, so no two
   instances share an L2 segment and every packet crosses the router, as on the AWS
   fabric;
3. the router: IP forwarding on, the VPC's DNS address (base+2) on `lo`;
4. security groups and the source/destination check of each instance ENI:
   `table inet <lab>-sg` (netns_setup/nft.py) and AWS's connection-tracking timeouts
   as the namespace's conntrack sysctls. The kernel's reverse-path filter is off in the
   VPC namespace (a new namespace inherits the host's), so that the nftables check is
   the one that decides and counts, and an instance without the check (a NAT
   instance) may send from any address; `source_dest_drops()` reads the counts;
5. DNS: a hosts file (instances' names and every kind's records) and resolv.conf under
   /run/vpclab/<lab>/, then dnsmasq in the VPC namespace on base+2 (netns_setup/dns.py),
   with every kind's extra arguments for this VPC (`resolver_args`: Cloud Map's
   forwarded namespaces);
6. `run:` commands, each in its instance namespace (private mount namespace, the VPC's
   resolv.conf over /etc/resolv.conf), output in /run/vpclab/<lab>/<vpc>.<instance>.log,
   with vpclab's Python first on PATH (`run_argv`).

`lanes()` gives every VPC's steps as one lane each of a `Parallel` (lab/progress.py):
VPCs are made side by side, each by one worker thread, since a VPC's steps touch only
its own namespaces, files and processes. What all the resolvers need from the whole lab
(`LabDns`: every kind's DNS records and resolver arguments) is computed once, before.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from netns_setup import dns, kernel, nft, nsenter, procs

from dataplane.compile.hyperplane import dns_records, resolver_args
from dataplane.forwarder.frames import MAX_FRAME
from dataplane.model import Lab, names

from . import processes
from .plan import ENI_MTU, InstancePlan, VpcPlan
from .progress import Parallel, Step
from .state import State

DNS_READY_S = 5.0


def record(p: VpcPlan, lab: Lab) -> dict[str, Any]:
    """The VPC's entry in the state file."""
    d = names.lab_dir(lab.name)
    return {"netns": p.netns, "cidr": p.cidr, "dns": p.dns,
            "resolv_conf": os.path.join(d, f"{p.name}.resolv.conf"),
            "hosts": os.path.join(d, f"{p.name}.hosts"),
            "nft_table": names.nft_table(lab.name),
            "instances": {i.name: instance_record(p, i, lab.name) for i in p.instances}}


def instance_record(p: VpcPlan, i: InstancePlan, lab_name: str) -> dict[str, Any]:
    """An instance's entry in its VPC's record (`record`)."""
    return {"netns": i.netns, "ip": i.ip, "prefixlen": i.prefixlen, "subnet": i.subnet,
            "router": i.router, "eni": i.eni, "security_groups": i.security_groups,
            "source_dest_check": i.source_dest_check, "managed_by": i.managed_by,
            "run": i.run,
            "log": os.path.join(names.lab_dir(lab_name), f"{p.name}.{i.name}.log")
            if i.run else None}


@dataclass(frozen=True)
class LabDns:
    """What every VPC's resolver needs from the whole lab, computed once per `up`:
    every kind's records and extra dnsmasq arguments, by VPC."""
    records: dict[str, list[tuple[str, str]]]
    resolver_args: dict[str, list[str]]

    @classmethod
    def of(cls, lab: Lab) -> "LabDns":
        return cls(dns_records(lab), resolver_args(lab))


def lanes(lab: Lab, plans: list[VpcPlan], st: State) -> Parallel:
    """Every VPC's steps, one lane each, to run side by side (lab/progress.py)."""
    dns_of_lab = LabDns.of(lab)
    return Parallel([steps(lab, p, st, dns_of_lab) for p in plans])


def steps(lab: Lab, p: VpcPlan, st: State, dns_of_lab: LabDns | None = None) -> list[Step]:
    """The steps that make VPC `p` (module docstring), in order."""
    mark = names.lo_altname(lab.name)
    dns_of_lab = dns_of_lab or LabDns.of(lab)
    out = [Step(f"namespace {p.netns} (VPC {p.name} router)",
                lambda: kernel.ensure_netns(p.netns, mark))]
    out += [instance_step(p, i, mark) for i in p.instances]
    out.append(router_step(p))
    out.append(Step(f"security groups in {p.netns}: table inet {names.nft_table(lab.name)}",
                    lambda: apply_security_groups(lab, p, st)))
    out.append(Step(f"DNS for VPC {p.name}: dnsmasq on {p.dns} in {p.netns}",
                    lambda: _dns(lab, p, st, dns_of_lab)))
    out += [Step(f"run in {i.vpc}/{i.name}: {i.run}", lambda i=i: start_run(st, p, i))
            for i in p.instances if i.run]
    return out


def start_run(st: State, p: VpcPlan, i: InstancePlan) -> int:
    """The instance's `run:` command, with the log and resolver its record names."""
    rec = st.data["vpcs"][p.name]
    return processes.start(st, "run", p.name, i.name, i.netns, run_argv(i.run or ""),
                           rec["instances"][i.name]["log"], rec["resolv_conf"],
                           cwd=os.path.join(st.dir, f"{p.name}.{i.name}"))


def run_argv(command: str) -> list[str]:
    """A `run:` command as started: by /bin/sh, with vpclab's own Python first on PATH,
    so `python3 -m dataplane.services.echo …` (and any tool of vpclab's virtualenv) works
    as written whatever PATH `vpclab up` had (sudo resets it)."""
    path = os.pathsep.join([os.path.dirname(sys.executable),
                            os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")])
    return ["/usr/bin/env", f"PATH={path}", "/bin/sh", "-c", command]


def instance_step(p: VpcPlan, i: InstancePlan, mark: str) -> Step:
    """The step that makes instance `i` of VPC `p` (`make_instance`); `up` and a
    reconcile that adds it run the same one."""
    return Step(f"instance {i.vpc}/{i.name}: namespace {i.netns}, ENI {i.eni} ⇄ eth0 "
                f"{i.ip}/{i.prefixlen}", lambda: make_instance(p, i, mark))


def router_step(p: VpcPlan) -> Step:
    """The step that sets VPC `p`'s router up for all its instances' ENIs (`configure_router`)."""
    return Step(f"VPC router in {p.netns}: forwarding, proxy ARP, DNS address {p.dns}",
                lambda: configure_router(p))


def make_instance(p: VpcPlan, i: InstancePlan, mark: str) -> None:
    """Instance `i`'s namespace, its ENI (a veth to the VPC router) and its routes."""
    kernel.ensure_netns(i.netns, mark)
    # The instance's GSO frames may be forwarded to the Hyperplane: keep them within a
    # ring slot (the router would cut larger ones into single segments); as
    # offload.cap_gso_size, set when the veth is made.
    kernel.ensure_veth(p.netns, i.eni, i.eni_mark, i.netns, names.INSTANCE_IFNAME,
                       i.eth_mark, ENI_MTU, gso_max_size=MAX_FRAME)
    kernel.ensure_address(i.netns, names.INSTANCE_IFNAME, i.ip, i.prefixlen)
    kernel.ensure_route(i.netns, "0.0.0.0/0", gateway=i.router)
    kernel.ensure_address(p.netns, i.eni, i.router, 32)
    kernel.ensure_route(p.netns, f"{i.ip}/32", ifname=i.eni)


def configure_router(p: VpcPlan) -> None:
    """The VPC router: forwarding, the DNS address, proxy ARP on every instance ENI."""
    kernel.ensure_address(p.netns, "lo", p.dns, 32)
    sysctls: dict[str, Any] = {"net.ipv4.ip_forward": 1,
                               "net.ipv6.conf.all.disable_ipv6": 1,
                               "net.ipv6.conf.default.disable_ipv6": 1,
                               # the source check is nftables' (module docstring)
                               "net.ipv4.conf.all.rp_filter": 0,
                               "net.ipv4.conf.default.rp_filter": 0}
    for i in p.instances:
        sysctls[f"net.ipv4.conf.{i.eni}.rp_filter"] = 0
        sysctls[f"net.ipv4.conf.{i.eni}.proxy_arp"] = 1
        sysctls[f"net.ipv4.conf.{i.eni}.send_redirects"] = 0
        # Proxy ARP replies to broadcast requests are delayed by a random 0-800 ms
        # by default (neigh proxy_delay); the AWS fabric answers at once.
        sysctls[f"net.ipv4.neigh.{i.eni}.proxy_delay"] = 0
    nsenter.write_sysctls(p.netns, sysctls)
    for i in p.instances:
        nsenter.write_sysctls(i.netns, {"net.ipv6.conf.all.disable_ipv6": 1})


def apply_security_groups(lab: Lab, p: VpcPlan, st: State) -> None:
    """The VPC's security-group table, in one nftables transaction (kept in the lab's
    directory as `<vpc>.nft`), and AWS's conntrack timeouts."""
    script = nft.render(names.nft_table(lab.name), p.groups, p.enis)
    with open(os.path.join(st.dir, f"{p.name}.nft"), "w") as f:
        f.write(script)
    nft.apply(p.netns, script)
    nsenter.write_sysctls(p.netns, nft.CONNTRACK_SYSCTLS)


def hosts(lab: Lab, p: VpcPlan, dns_of_lab: LabDns | None = None) -> str:
    """The VPC resolver's hosts file (`ip name…` lines)."""
    records = (dns_of_lab or LabDns.of(lab)).records
    # Instances' names; an ALB node is known by its ALB's name (a kind's record).
    text = dns.hosts_file(lab.region, [(i.name, i.ip) for i in p.instances
                                       if i.managed_by is None])
    # Every kind's names (endpoints' regional, zonal, private DNS): this VPC's only.
    return text + "".join(f"{ip} {name}\n" for name, ip in records.get(p.name, []))


def _dns(lab: Lab, p: VpcPlan, st: State, dns_of_lab: LabDns) -> None:
    rec = st.data["vpcs"][p.name]
    with open(rec["hosts"], "w") as f:
        f.write(hosts(lab, p, dns_of_lab))
    with open(rec["resolv_conf"], "w") as f:
        f.write(dns.resolv_conf(p.dns, lab.region))
    start_resolver(st, p.name, p.netns, p.dns, lab.region, rec["hosts"], f"VPC {p.name}",
                   tuple(dns_of_lab.resolver_args.get(p.name, ())))


def start_resolver(st: State, owner: str, netns: str, listen: str, region: str, hosts: str,
                   what: str, extra: tuple[str, ...] = ()) -> int:
    """dnsmasq for `owner` (a VPC, the internet) on `listen` in `netns`, answering from
    `hosts` (and `extra` arguments); returns once it listens."""
    log = os.path.join(st.dir, f"dns-{owner}.log")
    argv = dns.dnsmasq_argv(listen, region, hosts, log, os.path.join(st.dir, f"dns-{owner}.pid"))
    pid = processes.start(st, "dns", owner, None, netns, argv + list(extra), log, None)
    processes.wait_ready(pid, lambda: procs.udp_listening(pid, listen, 53),
                         f"dnsmasq for {what}", log, DNS_READY_S)
    return pid


def source_dest_drops(st: State) -> dict[str, dict[str, dict[str, int]]]:
    """{vpc: {instance: {"source": packets, "destination": packets}}}: what each instance
    ENI's source/destination check dropped (instances with the check off, and VPCs whose
    namespace is gone, are absent)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for vname, v in st.data.get("vpcs", {}).items():
        try:
            counts = nft.counters(v["netns"], v["nft_table"])
        except (RuntimeError, OSError, subprocess.SubprocessError):
            continue            # the namespace or its table is gone (status says so)
        for iname, i in v["instances"].items():
            if not i.get("source_dest_check", True):
                continue
            out.setdefault(vname, {})[iname] = {
                check: counts.get(nft.check_counter(check, i["eni"]), {}).get("packets", 0)
                for check in ("source", "destination")}
    return out
