"""The topology of a lab: model, JSON schema, YAML loader and validation.

`load(path)` reads a topology file into a `Lab`; `Lab(...)`, `lab.add_vpc(...)` build
the same object from Python. Both check everything before anything is built and
raise `TopologyError`, whose `problems` are (field path, reason) pairs. See `model.py`
for the address plan and `names.py` for how kernel objects are named.
"""
from .loader import load, loads, parse
from .topology import (DEFAULT_SG, Instance, Lab, Problem, Rule, SecurityGroup, Subnet,
                    TopologyError, Vpc)
from .validate import check_document, schema

__all__ = ["load", "loads", "parse", "check_document", "schema", "Lab", "Vpc", "Subnet",
           "SecurityGroup", "Rule", "Instance", "Problem", "TopologyError", "DEFAULT_SG"]
