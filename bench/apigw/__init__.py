"""API Gateway's front end and the ALB node against haproxy: requests per second,
latency and CPU per request, the benchmarks of issue 10 (API Gateway) and issue 11 (ALB).

    python -m bench.apigw                  # all three scenarios, 3 rounds, and profiles (~15 min)
    python -m bench.apigw --quick          # one short run of everything (about two minutes)
    python -m bench.apigw --scenarios alb --rounds 5
    python -m bench.apigw --cleanup        # what killed runs left (vg-/bal-* namespaces, bgw-* labs)
    vpclab bench apigw [the same options]

Three scenarios, each comparing one of vpclab's HTTP services — API Gateway's front end
(`python -m dataplane.services.apigw`), an ALB node (`python -m dataplane.services.alb`) —
with haproxy 2.6 (`nbthread 1`) doing the same work on the same CPU budget — the proxy
alone on CPU 0, wrk and the backends on CPU 1 — with the method of AWS-FACTS-HTTP
Part 3: wrk, one thread, 50 keep-alive connections, a warm-up run then a measured run,
interleaved rounds, medians; plain HTTP and TLS 1.2.

* proxy.py — the front end alone: scratch namespaces client → proxy → backend.
* lab.py — a lab from a topology: the internet namespace → API Gateway → REST link
  (PrivateLink) → NLB → target, and → V2 link → NLB → target.
* alb.py — one ALB node alone (scratch namespaces `bal-…`) with issue 11's rule set,
  against haproxy configured for the same rules by alb_rules.py's translation.
* profile.py — where the front end's (the node's) time goes (py-spy, native frames).
* measure.py runs the rounds, tools.py wrk/haproxy/the front end, report.py writes
  bench/results/apigw-<timestamp>/{results.json, report.md, profile-*.txt}.

As root. Nothing touches the root namespace; every wrk run is bounded (≤ 12 s); every
process is started and ended by this run, by PID; namespaces and the lab are removed in
`finally` blocks (and on SIGTERM/SIGINT/SIGHUP), and `vpclab cleanup` removes what a
killed run left.
"""
