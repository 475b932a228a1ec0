"""AWS Cloud Map in a lab, at run time: the registry and what answers from it.

    registry.py   the registry file (/run/vpclab/<lab>/cloudmap.json): reading it (cached by
                  mtime), changing it, and `discover`, DiscoverInstances' semantics (pure)
    dns.py        the private DNS namespaces' records (A, SRV) and the DNS answers made of them
    api.py        DiscoverInstances over HTTP/JSON, AWS's wire shape
    server.py     the process's sockets: in every VPC namespace, HTTP on the resolver's
                  address :80 and, where a DNS namespace lives, DNS on its port 5300
    __main__.py   `python -m dataplane.services.cloudmap --config FILE`

The model is dataplane/model/cloud_map.py, the registry's first contents
dataplane/compile/cloud_map.py, the process and `vpclab cloudmap …`
dataplane/lab/realise_cloud_map.py. API Gateway's front end reads the same registry
(dataplane/services/apigw/cloudmap.py).
"""
