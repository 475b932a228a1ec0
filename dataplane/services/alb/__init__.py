"""An Application Load Balancer node: the process `up` starts in each ALB node's
namespace (`python -m dataplane.services.alb --config FILE`), one per subnet of the load
balancer. It is the proxy engine (dataplane/services/proxy) with the ALB's personality —
one proxy engine, two personalities (API Gateway's front end is the other).

    config.py       the configuration (the contract with compile/), typed and checked
    rules.py        listener rules: conditions compiled once, priority order, default
    targets.py      target groups at run time: health states, candidates, algorithms
    health.py       the health checks this node runs against every target
    headers.py      what targets and clients get: X-Forwarded-*, X-Amzn-Trace-Id
    errors.py       every response the load balancer makes itself (awselb/2.0 pages)
    accesslog.py    AWS's ALB access-log line
    personality.py  the above, put together for the engine
    node.py         listeners, TLS, health checks, control socket, clean stop
    __main__.py     the command line
"""
