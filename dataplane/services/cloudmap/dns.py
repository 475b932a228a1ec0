"""Private DNS namespaces: the records Cloud Map keeps for them, and DNS answers.

A DNS_PRIVATE namespace `shop.local` whose `vpc` is `shop` is answered in VPC `shop` only:
its resolver (dnsmasq at base+2) forwards every name under `shop.local` to this responder
(`--server=/shop.local/<base+2>#5300`, compile/cloud_map.py), which answers from the
registry as it is at that moment, so a `vpclab cloudmap register` is in the next answer
(dnsmasq runs without a cache, `--cache-size=0`). The records, as Route 53 holds them for
Cloud Map (multivalue answers):

| name | type | value | TTL |
|---|---|---|---|
| `<service>.<namespace>` | A | each eligible instance's AWS_INSTANCE_IPV4 | the service's `dns.A` |
| `<service>.<namespace>` | SRV | `1 1 <AWS_INSTANCE_PORT> <instance-id>.<service>.<namespace>` | `dns.SRV` |
| `<instance-id>.<service>.<namespace>` | A | that instance's AWS_INSTANCE_IPV4 | `dns.A`, else `dns.SRV` |

Eligible: every instance of a service without a health check, the HEALTHY ones under a
custom health check (no unhealthy fallback: Route 53 leaves unhealthy multivalue records
out). At most 8 records of a type are in one answer, chosen at random from the eligible
ones, as Route 53's multivalue answers ("up to eight healthy records"). A record type
the service does not have is an empty answer (NOERROR), a name that does not exist under
the namespace NXDOMAIN, a name outside this VPC's namespaces REFUSED. Names are
compared case-insensitively.
"""
from __future__ import annotations

import random
from typing import Any, Mapping

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from .registry import IPV4_ATTRIBUTE, PORT_ATTRIBUTE

MAX_ANSWERS = 8          # Route 53 multivalue answer
SRV_PRIORITY = SRV_WEIGHT = 1


def _eligible(svc: Mapping[str, Any]) -> list[tuple[str, dict]]:
    items = list(svc["instances"].items())
    if svc.get("health_check"):
        items = [(i, r) for i, r in items if r.get("health") == "HEALTHY"]
    return items


def records(registry: Mapping[str, Any], vpc: str, qname: str, qtype: str,
            rng: random.Random | None = None) -> tuple[str, list[tuple[int, str]]]:
    """("NOERROR" | "NXDOMAIN" | "REFUSED", [(ttl, rdata text)]) for a question in `vpc`
    (see the module docstring); `qname` without its trailing dot."""
    name = qname.rstrip(".").lower()
    # the most specific namespace first (`shop.local` before `local`)
    for nsname, ns in sorted(registry.get("namespaces", {}).items(),
                             key=lambda item: -len(item[0])):
        if ns.get("type") != "DNS_PRIVATE" or ns.get("vpc") != vpc:
            continue
        apex = nsname.lower()
        if name != apex and not name.endswith("." + apex):
            continue
        if name == apex:
            return "NOERROR", []
        labels = name[:-len(apex) - 1].split(".")
        svc_name = next((s for s in ns["services"] if s.lower() == labels[-1]), None)
        svc = ns["services"].get(svc_name) if svc_name else None
        if svc is None or len(labels) > 2:
            return "NXDOMAIN", []
        dns_config = svc.get("dns") or {}
        eligible = _eligible(svc)
        if len(labels) == 1:
            return "NOERROR", _service_records(eligible, dns_config, svc_name, nsname, qtype,
                                               rng or random)
        iid = next((i for i in svc["instances"] if i.lower() == labels[0]), None)
        if iid is None or not dns_config:
            return "NXDOMAIN", []
        rec = dict(eligible).get(iid)
        ip = rec["attributes"].get(IPV4_ATTRIBUTE) if rec else None
        if qtype != "A" or ip is None:
            return "NOERROR", []
        return "NOERROR", [(dns_config.get("A", dns_config.get("SRV")), ip)]
    return "REFUSED", []


def _service_records(eligible: list[tuple[str, dict]], dns_config: Mapping[str, int],
                     service: str, namespace: str, qtype: str,
                     rng: random.Random) -> list[tuple[int, str]]:
    if qtype not in dns_config:
        return []
    if qtype == "A":
        values = [r["attributes"][IPV4_ATTRIBUTE] for _, r in eligible
                  if IPV4_ATTRIBUTE in r["attributes"]]
    else:
        values = [f"{SRV_PRIORITY} {SRV_WEIGHT} {r['attributes'][PORT_ATTRIBUTE]} "
                  f"{iid}.{service}.{namespace}." for iid, r in eligible
                  if PORT_ATTRIBUTE in r["attributes"]]
    if len(values) > MAX_ANSWERS:
        values = rng.sample(values, MAX_ANSWERS)
    return [(dns_config[qtype], v) for v in values]


def respond(registry: Mapping[str, Any], vpc: str, wire: bytes) -> bytes | None:
    """The DNS response (wire format) to the query `wire` asked in `vpc`; None for
    something that is not a DNS query (dropped, as a resolver does)."""
    try:
        query = dns.message.from_wire(wire)
    except Exception:           # dnspython raises many kinds on junk: drop it
        return None
    if query.flags & dns.flags.QR:
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    question = query.question[0]
    qtype = dns.rdatatype.to_text(question.rdtype)
    rcode, found = records(registry, vpc, question.name.to_text(), qtype)
    response.set_rcode(dns.rcode.from_text(rcode))
    if found:
        rrset = dns.rrset.from_text_list(question.name, found[0][0], dns.rdataclass.IN,
                                         question.rdtype, [value for _, value in found])
        response.answer.append(rrset)
    return response.to_wire()
