"""Everything vpclab does to the kernel's configuration, and nothing else.

| module | what |
|---|---|
| `kernel` | namespaces, veths, altnames, addresses, routes, neighbours, link counters: pyroute2, idempotent `ensure_*` that wait until the kernel shows the object; `connections()`, one rtnetlink connection per namespace for a block of work |
| `nsenter` | entering a namespace (setns) in this process, a forked child or a thread; new named namespaces without a fork; private mount namespaces; per-namespace sysctls |
| `nft` | security groups as an nftables ruleset loaded with `nft -f` (pyroute2 has no usable nftables support) |
| `dns` | the per-VPC dnsmasq command line, its hosts file and the instances' resolv.conf |
| `procs` | processes started in namespaces (and a cgroup), identified by (PID, start time), stopped by PID and verified gone; the process-tree walk (psutil) |
| `cgroup` | a cgroup v2 group per lab: found where v2 is mounted, joined between fork and exec, emptied with `cgroup.kill`, CPU/memory usage |
| `scratch` | the one builder of throwaway namespaces for root tests and benchmarks: `<root><pid>-<role>` names, `scratch.` marks, everything removed on exit or failure |
| `offload` | gso_max_size cut to a forwarder ring slot on devices that feed it; segmentation offload off (for benchmarks) |

This layer knows nothing of the lab model: it takes names, addresses and plain dicts.
The naming scheme and address plan are in dataplane/model/names.py and topology.py;
the orchestration (what is made in which order, the state file, rollback) is
dataplane/lab/. The root namespace is never changed: objects are created from
sockets opened inside the target namespaces.
"""
