"""The lab lifecycle: a checked model made into namespaces, veths, nftables and processes.

`up(lab)` builds, `down(name)` and `cleanup()` remove, `status(name)` reports; the state
file under /run/vpclab/<lab>/ is the record all of them share (lab/up.py says how).
"""
from .up import (ENDPOINT_TRANSITIONS, LabError, State, check_present, cleanup, down, interfaces_table, labs_up,
                 marked_namespaces, plan, hyperplane_of, request_interrupt, set_endpoint_state, state_labs,
                 status, teardown, up)

__all__ = ["ENDPOINT_TRANSITIONS", "LabError", "hyperplane_of", "State", "check_present", "cleanup", "down", "interfaces_table",
           "labs_up", "marked_namespaces", "plan", "request_interrupt", "set_endpoint_state",
           "state_labs", "status", "teardown", "up"]
