"""A file at every length limit `validate` allows comes up (issue 13, part 5: if
`validate` says OK, `up` does not fail on the file's content).

The longest lab, VPC, instance, subnet and resource names, the longest region and AZ,
a 63-character DNS label: the namespaces, interfaces, altnames, DNS names and the
forwarder's tables they become are all made, and the endpoint's names resolve.
"""
from __future__ import annotations

import pytest

from dataplane import lab as labmod
from dataplane.pytest_plugin import lab_name
from dataplane.model import loads
from dataplane.model.privatelink import endpoint_dns_names

from .conftest import leftovers, run_in, serve, vpclab, write_topology

pytestmark = pytest.mark.root
LAB = lab_name("t13longnames")   # 12 characters, the most a lab name has (a test asserts it)
REGION = "us-" + "e" * 20 + "-1"             # 25
AZ = REGION + "a"
VPC_C, VPC_P = "c" * 20, "p" * 20
SUBNET, INSTANCE = "s" * 32, "i" * 11
PRIVATE_NAME = "w" * 63 + ".example.internal"


def topology() -> dict:
    subnets = {SUBNET: {"cidr": "10.0.1.0/24", "az": AZ}}
    return {"lab": LAB, "region": REGION, "vpcs": {
        VPC_C: {"cidr": "10.0.0.0/16", "subnets": subnets,
                "instances": {INSTANCE: {"subnet": SUBNET}},
                "endpoints": {"e" * 32: {"service": f"{VPC_P}/{'v' * 32}",
                                         "subnets": [SUBNET], "private_dns": True}}},
        VPC_P: {"cidr": "10.0.0.0/16", "subnets": subnets,
                "security_groups": {"g" * 32: {"ingress": [
                    {"protocol": "tcp", "ports": 8080, "source": "10.0.0.0/16"}]}},
                "instances": {INSTANCE: {"subnet": SUBNET, "security_groups": ["g" * 32],
                                         "run": serve("longest", 8080)}},
                "load_balancers": {"n" * 32: {"subnets": [SUBNET], "listeners": [
                    {"port": 80, "protocol": "TCP", "target_group": "t" * 32}]}},
                "target_groups": {"t" * 32: {"port": 8080, "targets": [INSTANCE]}},
                "endpoint_services": {"v" * 32: {"load_balancers": ["n" * 32],
                                                 "acceptance_required": False,
                                                 "private_dns_name": PRIVATE_NAME}}}}}


def test_the_longest_names_validate_allows_come_up(tmp_path):
    assert len(LAB) == 12
    doc = topology()
    path = write_topology(tmp_path, doc)
    assert vpclab("validate", str(path)).returncode == 0
    lab = loads(path.read_text())
    try:
        proc = vpclab("up", str(path))
        assert proc.returncode == 0, proc.stderr
        where = f"{VPC_C}/{INSTANCE}"
        got = run_in(LAB, where, "getent", "hosts", PRIVATE_NAME).stdout.split()
        eni = next(e for e in lab.hyperplane_enis() if e.kind == "vpce")
        assert got[:1] == [eni.ip]
        _, zonal = endpoint_dns_names(LAB, REGION, VPC_C, "e" * 32, VPC_P, "v" * 32, AZ)
        assert max(len(label) for label in zonal.split(".")) == 58
        assert run_in(LAB, where, "getent", "hosts", zonal).stdout.split()[:1] == [eni.ip]
        host = run_in(LAB, where, "getent", "hosts",
                      f"ip-10-0-1-4.{REGION}.compute.internal").stdout.split()
        assert host[:1] == ["10.0.1.4"]
    finally:
        labmod.cleanup(LAB, everything=True)
    assert leftovers(LAB) == []
