"""API Gateway's front end: the process `up` starts in API Gateway's VPC namespace
(`python -m dataplane.services.apigw --config FILE`), serving every REST and HTTP API of a lab
through their VPC links. It is the proxy engine (dataplane/services/proxy) with API Gateway's
personality.

    config.py       the configuration (the contract with compile/), typed and checked
    routing.py      API by Host, stage, REST resources and HTTP API route priority
    headers.py      what backends and clients get: header rules, request and trace IDs
    errors.py       every response API Gateway makes itself, in one table
    throttle.py     token buckets per stage and for the account
    accesslog.py    one log file per API stage, AWS's CLF (REST) and JSON (HTTP) lines
    personality.py  the above, put together for the engine
    frontend.py     listeners, TLS 1.2, control socket, clean stop (on services/serving.py)
    __main__.py     the command line
"""
