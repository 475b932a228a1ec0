"""End-to-end benchmarks: the Hyperplane forwarder against the kernel, side by side.

    python -m bench.e2e            # the full suite (about half an hour on 2 CPUs)
    python -m bench.e2e --quick    # one short run of every figure (well under a minute)
    python -m bench.e2e --cleanup  # removes what a killed run left (every vb-* namespace)

One topology — generator namespace → forwarder namespace → sink namespace, veths with
MTU 9001 (topo.py) — carries the data paths in turn (paths.py): the vpclab forwarder
doing PrivateLink DNAT+SNAT, the kernel doing the same with nftables and conntrack, and
the kernel plainly routing; then the forwarder as a VPC link (VPC-to-VPC NAT, SNAT
only) and the kernel doing the same SNAT, for packets per second and new flows.
measure.py runs the traffic (trafgen, iperf3, small Python clients), suite.py the order
of figures, report.py writes bench/results/<timestamp>/{results.json, report.md,
pps.png, ratios.png, latency.png}.

As root; nothing of it touches the root namespace, and every generator is bounded in
packets and time.
"""
