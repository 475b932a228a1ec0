"""Changing a running lab: accepting or rejecting an interface endpoint (PrivateLink's
one action). The new spec goes to the forwarder over its control socket; flows of
services that do not change survive."""
from __future__ import annotations

import json
from typing import Any

from dataplane.compile import hyperplane
from dataplane.forwarder import control
from dataplane.model import Lab

from .state import LabError, State

# Endpoint states as AWS moves them (AWS-FACTS §1): the provider accepts or rejects a
# pending endpoint, and may reject an available one later (its traffic stops at once).
ENDPOINT_TRANSITIONS = {"accept": {"pendingAcceptance": "available"},
                        "reject": {"pendingAcceptance": "rejected", "available": "rejected"}}


def hyperplane_of(st: State) -> dict[str, Any]:
    hp = st.data.get("hyperplane")
    if not hp:
        raise LabError(f"lab {st.lab} has no load balancers or endpoints, so no forwarder")
    return hp


def set_endpoint_state(st: State, endpoint: str, action: str) -> str:
    """`accept` or `reject` endpoint `<vpc>/<name>` (or its vpce- id); returns the new state.
    The forwarder's tables change at once; flows of a rejected endpoint stop."""
    hp = hyperplane_of(st)
    key = next((k for k, e in hp["endpoints"].items() if endpoint in (k, e["id"])), None)
    if key is None:
        raise LabError(f"no endpoint {endpoint} in lab {st.lab} "
                       f"(endpoints: {', '.join(hp['endpoints']) or 'none'})")
    current = hp["endpoints"][key]["state"]
    new = ENDPOINT_TRANSITIONS[action].get(current)
    if new is None:
        raise LabError(f"endpoint {key} is {current}; it cannot be {action}ed")
    states = {**hp["endpoints"], key: {**hp["endpoints"][key], "state": new}}
    lab = Lab.from_dict(st.data["topology"])
    ports = hyperplane.ports(lab)
    macs = {int(k): tuple(v) for k, v in hp["macs"].items()}
    spec = hyperplane.compile_spec(lab, ports, macs, states)
    control.call(hp["socket"], "apply", spec=spec.to_json())
    with open(hp["spec"], "w") as f:
        json.dump(spec.to_json(), f, indent=1)
    hp["endpoints"] = states
    st.save()
    return new
