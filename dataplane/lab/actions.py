"""Changing a running lab: accepting or rejecting an interface endpoint (PrivateLink's
one action). The new spec goes to the forwarder over its control socket; flows of
services that do not change survive."""
from __future__ import annotations

import json
from typing import Any

from dataplane.compile import hyperplane
from dataplane.compile.spec import ForwarderSpec
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


def compile_from_state(st: State, lab: Lab, states: dict[str, dict]) -> ForwarderSpec:
    """The forwarder spec of `lab` on the running lab `st`'s Hyperplane (its ports' ids
    and MACs as recorded), with endpoint `states`."""
    hp = hyperplane_of(st)
    macs = {int(k): tuple(v) for k, v in hp["macs"].items()}
    return hyperplane.compile_spec(lab, hyperplane.ports(lab, hp.get("port_ids")), macs, states)


def push_spec(hp: dict[str, Any], spec: dict[str, Any]) -> None:
    """Apply `spec` (JSON) to the running forwarder, then keep it as the spec a
    restarted forwarder reads."""
    control.call(hp["socket"], "apply", spec=spec)
    with open(hp["spec"], "w") as f:
        json.dump(spec, f, indent=1)


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
    push_spec(hp, compile_from_state(st, Lab.from_dict(st.data["topology"]), states).to_json())
    hp["endpoints"] = states
    st.save()
    return new
