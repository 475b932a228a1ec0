"""`vpclab trace`: why a packet does or does not arrive, hop by hop.

Three parts, one concern each: path.py builds the hop tree from the lab's model (the
source ENI's and the target's security groups as sg.py evaluates their compiled rules,
the VPC routers, the Hyperplane ENIs) and asks the engine about the Hyperplane hop;
dryrun.py is the forwarder's side of that question (the `trace` command of its control
socket, running the engine's own dry run, native/hp_trace.c); render.py prints the tree.
"""
from .path import Hop, Trace, TraceError, World, live_engine, trace
from .render import render

__all__ = ["Hop", "Trace", "TraceError", "World", "live_engine", "render", "trace"]
