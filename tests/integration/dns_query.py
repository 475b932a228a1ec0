"""Asks DNS questions the way a program in an instance does, and prints the answers.

    python3 dns_query.py NAME:TYPE[:tcp] [NAME:TYPE[:tcp] …]

Uses the instance's /etc/resolv.conf (the VPC's resolver, bind-mounted by `vpclab exec`)
through dnspython, and prints one JSON object: {"NAME:TYPE": {"rcode": "NOERROR",
"ttl": 60, "answers": [rdata text, …]}}.
"""
import json
import sys

import dns.rcode
import dns.resolver

resolver = dns.resolver.Resolver()          # /etc/resolv.conf
resolver.lifetime = 5
out = {}
for question in sys.argv[1:]:
    name, rdtype, *how = question.split(":")
    try:
        answer = resolver.resolve(name + ".", rdtype, raise_on_no_answer=False,
                                  tcp=how == ["tcp"])
    except dns.resolver.NXDOMAIN:
        out[question] = {"rcode": "NXDOMAIN", "ttl": None, "answers": []}
        continue
    except dns.resolver.NoNameservers as exc:      # the resolver refused or failed
        out[question] = {"rcode": "REFUSED" if "REFUSED" in str(exc) else "SERVFAIL",
                         "ttl": None, "answers": []}
        continue
    response = answer.response
    out[question] = {"rcode": dns.rcode.to_text(response.rcode()),
                     "ttl": answer.rrset.ttl if answer.rrset is not None else None,
                     "answers": sorted(r.to_text() for r in answer.rrset or [])}
print(json.dumps(out))
