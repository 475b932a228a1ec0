"""The resource model of a lab: what a topology file says, checked before anything is built.

`load(path)` reads a topology file into a `Lab`; `Lab(...)`, `lab.add_vpc(...)` build
the same object from Python. Both check everything before anything is built and raise
`TopologyError`, whose `problems` are (field path, reason) pairs.

One file per resource kind: topology.py (the lab, its VPCs, subnets, security groups and
instances, the address plan), privatelink.py, vpc_link.py, cloud_map.py, …; each kind
registers in dataplane/kinds.py. Beside them: problems.py (Problem, TopologyError), constants.py
(AWS's numbers), enis.py (Hyperplane ENIs and stable IDs), checks.py (checks several
kinds share), validate.py with schema.json (the document's shape and meaning),
loader.py (YAML) and names.py (how kernel objects are named). Nothing here touches the
kernel or loads the compiled engine.
"""
from .constants import DEFAULT_SG
from .loader import load, loads, parse
from .problems import Problem, TopologyError
from .topology import Instance, Lab, Rule, SecurityGroup, Subnet, Vpc, reads_whole_lab
from .validate import check_document, schema

__all__ = ["load", "loads", "parse", "check_document", "schema", "Lab", "Vpc", "Subnet",
           "SecurityGroup", "Rule", "Instance", "Problem", "TopologyError", "DEFAULT_SG",
           "reads_whole_lab"]
