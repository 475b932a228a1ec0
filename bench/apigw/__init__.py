"""API Gateway's front end against haproxy: requests per second, latency and CPU per
request, the issue-10 benchmark.

    python -m bench.apigw                  # both scenarios, 3 rounds, and a profile (~10 min)
    python -m bench.apigw --quick          # one short run of everything (about a minute)
    python -m bench.apigw --scenarios proxy --rounds 5
    python -m bench.apigw --cleanup        # what killed runs left (vg-* namespaces, bgw-* labs)
    vpclab bench apigw [the same options]

Two scenarios, each comparing API Gateway's front end (`python -m dataplane.services.apigw`) with
haproxy 2.6 (`nbthread 1`) doing the same proxying on the same CPU budget — the proxy
alone on CPU 0, wrk and the backends on CPU 1 — with the method of AWS-FACTS-HTTP
Part 3: wrk, one thread, 50 keep-alive connections, a warm-up run then a measured run,
interleaved rounds, medians; plain HTTP and TLS 1.2.

* proxy.py — the front end alone: scratch namespaces client → proxy → backend.
* lab.py — a lab from a topology: the internet namespace → API Gateway → REST link
  (PrivateLink) → NLB → target, and → V2 link → NLB → target.
* profile.py — where the front end's time goes (py-spy, native frames).
* measure.py runs the rounds, tools.py wrk/haproxy/the front end, report.py writes
  bench/results/apigw-<timestamp>/{results.json, report.md, profile-*.txt}.

As root. Nothing touches the root namespace; every wrk run is bounded (≤ 12 s); every
process is started and ended by this run, by PID; namespaces and the lab are removed in
`finally` blocks (and on SIGTERM/SIGINT/SIGHUP), and `vpclab cleanup` removes what a
killed run left.
"""
