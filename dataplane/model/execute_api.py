"""Private REST APIs: the `execute-api` interface endpoint, API Gateway's own endpoint
service behind it, and the resource policies that guard the APIs (AWS-FACTS §6,
AWS-FACTS-HTTP 1.9). Part of the API Gateway kind (model/api_gateway.py reads and writes
the file's fields; this module holds what they mean).

    vpcs:
      corp:
        endpoints:
          api-ep: {service: execute-api, subnets: [a, b], security_groups: [ep-443], private_dns: true}
    api_gateway:
      apis:
        orders:
          type: REST
          endpoint: PRIVATE               # REGIONAL (the default) or PRIVATE
          vpc_endpoints: [corp/api-ep]    # associations: the {api-id}-{vpce-id} names
          policy: {Statement: [...]}      # IAM JSON as YAML; corp/api-ep and corp are the lab's IDs

What the model derives:

* `service: execute-api` is an interface endpoint to **API Gateway's own endpoint
  service** `execute-api` in API Gateway's VPC (`apigw`), made of the existing machinery
  and marked `managed_by`: an NLB `execute-api` with a node in every AZ an execute-api
  endpoint of the lab is in, a TCP listener on 443 to the target group `execute-api`
  whose one target is the front end's private address (`FRONT_END_PRIVATE_IP` on the
  namespace's `lo`) with **PROXY protocol v2 on**, so the front end learns the endpoint's
  ID and the client's address from the header the forwarder puts in front of the TLS
  handshake — never from a side channel. Health checks are TCP.
* IDs: a VPC's `vpc-<17 hex>` (`vpc_id`), an endpoint's `vpce-<17 hex>` (PrivateLink's).
* A policy's references are the lab's names: `aws:SourceVpce: corp/api-ep` and
  `aws:SourceVpc: corp` become those IDs, and the short form `execute-api:/…` becomes
  the API's ARN (AWS expands it when the policy is saved) — `resolve_policy`.
"""
from __future__ import annotations

import json
from typing import Any

from . import names
from .checks import mapping
from .enis import account_id, stable_hex
from .problems import Problem

EXECUTE_API = "execute-api"
FRONT_END_PRIVATE_IP = "10.0.255.254"     # the front end's address in API Gateway's VPC
HTTPS_PORT = 443
OWNER = "API Gateway (execute-api)"
ENDPOINT_TYPES = ("REGIONAL", "PRIVATE")
REFERENCE_KEYS = {"aws:sourcevpce": "endpoint", "aws:sourcevpc": "vpc"}


def vpc_id(lab: str, vpc: str) -> str:
    return "vpc-" + stable_hex(lab, "vpc", vpc)


def is_execute_api(service: str) -> bool:
    return service == EXECUTE_API


def execute_api_endpoints(lab: Any) -> list[tuple[str, Any]]:
    """(VPC, endpoint) of every `service: execute-api` endpoint, in file order."""
    return [(v.name, ep) for v in lab.vpcs.values() for ep in v.endpoints.values()
            if is_execute_api(ep.service)]


def ensure_service(lab: Any, service_vpc: Any, service_subnet: Any) -> None:
    """API Gateway's execute-api endpoint service (NLB, target group, endpoint service in
    its VPC), with a node in every AZ one of the lab's execute-api endpoints is in. Made
    (or widened) by `lab.add_execute_api_endpoint` and when a file is read."""
    azs = sorted({lab.vpcs[v].subnets[s].az for v, ep in execute_api_endpoints(lab)
                  for s in ep.subnets})
    if not azs:
        return
    apigw = service_vpc(lab)
    subnets = [service_subnet(apigw, az) for az in azs]
    lb = apigw.load_balancers.get(EXECUTE_API)
    if lb is not None:
        lb.subnets = subnets
        return
    apigw.add_target_group(EXECUTE_API, HTTPS_PORT, [FRONT_END_PRIVATE_IP], "TCP",
                           {"protocol": "TCP", "interval": 10, "healthy_threshold": 2},
                           proxy_protocol_v2=True, managed_by=OWNER)
    apigw.add_load_balancer(EXECUTE_API, subnets, [{"port": HTTPS_PORT,
                                                    "target_group": EXECUTE_API}],
                            managed_by=OWNER)
    apigw.add_endpoint_service(EXECUTE_API, [EXECUTE_API], acceptance_required=False,
                               managed_by=OWNER)


def endpoint_ref(lab: Any, ref: str) -> str | None:
    """`corp/api-ep` → that execute-api endpoint's `vpce-…` ID (None: no such endpoint);
    an ID passes through."""
    if ref.startswith("vpce-"):
        return ref
    from .privatelink import endpoint_id
    vname, _, ename = ref.partition("/")
    ep = lab.vpcs[vname].endpoints.get(ename) if vname in lab.vpcs else None
    return endpoint_id(lab.name, vname, ename) if ep and is_execute_api(ep.service) else None


def vpc_ref(lab: Any, ref: str) -> str | None:
    if ref.startswith("vpc-"):
        return ref
    return vpc_id(lab.name, ref) if ref in lab.vpcs and lab.vpcs[ref].service is None else None


def reference_conditions(policy: Any):
    """(statement index, operator, the operator's key dict, key, "endpoint"|"vpc") for each
    condition key whose values name the lab's endpoints or VPCs (REFERENCE_KEYS)."""
    statements = mapping(policy).get("Statement")
    for i, st in enumerate(statements if isinstance(statements, list) else [statements]):
        for op, keys in mapping(mapping(st).get("Condition")).items():
            for key in list(mapping(keys)):
                kind = REFERENCE_KEYS.get(str(key).lower())
                if kind is not None:
                    yield i, op, keys, key, kind


def resolve_policy(lab: Any, api_id: str, policy: dict[str, Any] | None) -> dict | None:
    """The policy as API Gateway stores it: references to the lab's endpoints and VPCs
    replaced by their IDs, `execute-api:/…` expanded to the API's ARN."""
    if policy is None:
        return None
    from .resource_policy import expand_resources
    out = json.loads(json.dumps(policy))
    for _, _, keys, key, kind in reference_conditions(out):
        values = keys[key]
        resolve = endpoint_ref if kind == "endpoint" else vpc_ref
        listed = values if isinstance(values, list) else [values]
        ids = [resolve(lab, v) or v for v in listed]
        keys[key] = ids if isinstance(values, list) else ids[0]
    return expand_resources(out, lab.region, account_id(lab.name), api_id)


def check(doc: dict[str, Any]) -> list[Problem]:
    """Private APIs: REST only; associations name execute-api endpoints; a policy (a
    REGIONAL API may have one too: the front end evaluates it with the caller's address)
    is one the evaluator understands, at most 8,192 characters, and its references exist."""
    problems: list[Problem] = []
    vpcs = mapping(doc.get("vpcs"))
    endpoints = {f"{v}/{e}": ep for v, vpc in vpcs.items()
                 for e, ep in mapping(mapping(vpc).get("endpoints")).items()}
    execute_api = {ref for ref, ep in endpoints.items()
                   if mapping(ep).get("service") == EXECUTE_API}
    for name, api in mapping(mapping(doc.get("api_gateway")).get("apis")).items():
        if not isinstance(api, dict):
            continue
        ap = f"api_gateway.apis.{name}"
        private = api.get("endpoint", "REGIONAL") == "PRIVATE"
        if private and api.get("type") != "REST":
            problems.append(Problem(f"{ap}.endpoint", "only REST APIs can be PRIVATE (an HTTP "
                                                      "API is regional)"))
        for k, ref in enumerate(api.get("vpc_endpoints") or []):
            if not isinstance(ref, str):
                continue
            if not private:
                problems.append(Problem(f"{ap}.vpc_endpoints", "endpoint associations are for "
                                                               "PRIVATE APIs"))
                break
            if ref not in execute_api:
                problems.append(Problem(f"{ap}.vpc_endpoints[{k}]", _not_an_endpoint(ref, endpoints)))
        policy = api.get("policy")
        if policy is None:
            continue
        # (its size, at most 8,192 characters, is one of resource_policy's problems)
        from .resource_policy import problems as policy_problems
        problems += [Problem(f"{ap}.policy.{path}" if path else f"{ap}.policy", why)
                     for path, why in policy_problems(policy)]
        problems += _reference_problems(policy, f"{ap}.policy", execute_api, endpoints, vpcs)
    return problems


def _not_an_endpoint(ref: str, endpoints: dict) -> str:
    if ref in endpoints:
        return f"{ref} is an endpoint to {mapping(endpoints[ref]).get('service')}, not to execute-api"
    return f"no endpoint {ref!r} (VPC/ENDPOINT of a `service: execute-api` endpoint)"


def _reference_problems(policy: Any, pp: str, execute_api: set[str], endpoints: dict,
                        vpcs: dict) -> list[Problem]:
    problems = []
    for i, op, keys, key, kind in reference_conditions(policy):
        values = keys[key]
        for v in values if isinstance(values, list) else [values]:
            if not isinstance(v, str) or "*" in v or "?" in v:
                continue
            where = f"{pp}.Statement[{i}].Condition.{op}.{key}"
            if kind == "endpoint" and not v.startswith("vpce-") and v not in execute_api:
                problems.append(Problem(where, _not_an_endpoint(v, endpoints)))
            if kind == "vpc" and not v.startswith("vpc-") and (
                    v not in vpcs or v in names.RESERVED_VPC_NAMES):
                problems.append(Problem(where, f"no VPC {v!r} in the lab (a VPC name "
                                               f"or a vpc- ID)"))
    return problems
