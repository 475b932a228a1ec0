"""The lab lifecycle: a checked model made into namespaces, veths, nftables and processes.

One file per concern: state.py (the state file), plan.py (names and addresses from the
model), progress.py (steps and interrupts), up.py (`up` as an ordered list of steps),
realise_vpc.py (a VPC's steps), hyperplane.py (the Hyperplane's: ENIs, forwarder),
realise_<kind>.py (a kind's own steps and status, registered in dataplane/kinds.py),
processes.py, status.py, down.py (down, rollback, cleanup), actions.py (changing a
running lab). The lab talks to the forwarder only through the spec and its control
socket.
"""
from .actions import ENDPOINT_TRANSITIONS, hyperplane_of, set_endpoint_state
from .down import cleanup, down, marked_namespaces, teardown
from .plan import plan
from .progress import request_interrupt
from .state import LabError, State, labs_up, state_labs
from .status import check_present, flows, interfaces_table, stats, status
from .up import up

__all__ = ["ENDPOINT_TRANSITIONS", "LabError", "State", "check_present", "cleanup", "down",
           "flows", "hyperplane_of", "interfaces_table", "labs_up", "marked_namespaces", "plan",
           "request_interrupt", "set_endpoint_state", "state_labs", "stats", "status", "teardown", "up"]
