"""The processes vpclab runs in a lab besides the forwarder (DESIGN.md's `services/`).

    proxy/   the HTTP proxy engine (asyncio on uvloop, httptools, TLS) that API Gateway's
             front end and, next, the Application Load Balancer share: one engine, a
             personality each
    apigw/   API Gateway's front end: `python -m dataplane.services.apigw --config FILE`

Each is started by `up` in its namespace and the lab's cgroup, supervised
(lab/supervisor.py), and reached only through the configuration `up` writes
(compile/) and its control socket (the forwarder's protocol, forwarder/control.py).
"""
