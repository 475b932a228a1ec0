"""The lab lifecycle: a checked model made into namespaces, veths, nftables and processes.

One file per concern: state.py (the state file), plan.py (names and addresses from the
model), progress.py (steps and interrupts), blueprint.py (what `up` makes: namespaces,
the state it writes first, its steps), preview.py (that shown by `validate --plan`),
up.py (runs the blueprint's steps),
realise_vpc.py (a VPC's steps), hyperplane.py (the Hyperplane's: ENIs, forwarder),
realise_<kind>.py (a kind's own steps and status, registered in dataplane/kinds.py),
processes.py, status.py, down.py (down, rollback, cleanup), actions.py (changing a
running lab), reconcile.py (`up` of another file on a running lab). The lab talks to the
forwarder only through the spec and its control socket.
"""
from .actions import ENDPOINT_TRANSITIONS, hyperplane_of, set_endpoint_state
from .down import cleanup, down, known_labs, marked_namespaces, teardown
from .plan import plan
from .progress import request_interrupt
from .reconcile import Refused, diff
from .state import LabError, State, labs_up, state_labs
from .status import check_present, flows, interfaces_table, stats, status
from .up import up

__all__ = ["ENDPOINT_TRANSITIONS", "LabError", "Refused", "State", "check_present", "cleanup",
           "diff", "down", "flows", "hyperplane_of", "interfaces_table", "known_labs",
           "labs_up", "marked_namespaces", "plan", "request_interrupt", "set_endpoint_state",
           "state_labs", "stats", "status", "teardown", "up"]
