"""Numbers and names of AWS (and of the forwarder) that the model and validation share.

Each has its source beside it. Nothing here imports anything of vpclab, so any module
may use these without pulling in the model, the kernel side or the compiled engine.
"""
from __future__ import annotations

DEFAULT_REGION = "us-east-1"
DEFAULT_SG = "default"          # every VPC has one; ENIs naming no group are in it
# The five addresses AWS keeps in every subnet, by offset from the network address
# (the last is the broadcast address, offset -1).
RESERVED = {0: "the network address", 1: "reserved for the VPC router",
            2: "reserved for the Amazon DNS server", 3: "reserved by AWS for future use",
            -1: "the broadcast address"}
FIRST_FREE_OFFSET = 4
MIN_PREFIX, MAX_PREFIX = 16, 28     # AWS: VPC and subnet CIDRs are /16 to /28
# The forwarder's port table (HP_MAX_PORTS in native/hp_engine.h; a unit test checks
# they agree): every Hyperplane ENI is one port, and NLB health checks take one more.
MAX_FORWARDER_PORTS = 256
# The engine's other tables (native/hp_engine.h; the same unit test checks them): a
# service's backends (a target group's targets), the rules of one security group of a
# port (its groups' rules, `sg:` peers expanded to one per member), and the services of
# the forwarder (the daemon leaves max_services at its default, 1024 in hp_engine.c):
# one per endpoint ENI and listener, one per NLB node and target health check.
MAX_BACKENDS = 4096
MAX_SG_RULES = 1000
MAX_FORWARDER_SERVICES = 1024
# A VPC link's routes in the engine (HP_LINK_MAX_ROUTES): one per subnet of the link's VPC
# in an AZ where the link has an ENI (compile/vpc_link.py).
MAX_LINK_ROUTES = 64
