"""Fixtures of the root integration tests: real namespaces, real processes, real clients.

Every lab a test makes carries this run's token (`lab_name("t3…")`, or the pytest
plugin's fixtures, which name labs so themselves: README, "A test's lab name") and is
removed by the fixture whatever happens (`cleanup(lab, everything)` needs only the state
file and the marks). Every client is
bounded by a timeout. These tests need root and fail (not skip) without it.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from dataplane import lab as labmod
from dataplane.api import leftovers  # noqa: F401 (the tests' import of it)

HERE = pathlib.Path(__file__).resolve().parent
SERVERS = HERE / "servers.py"
CLIENT = HERE / "client.py"
CLI = [sys.executable, "-m", "dataplane.cli.main"]
REPO = HERE.parents[1]


@pytest.fixture(autouse=True)
def _need_root():
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (they make network namespaces)")


def vpclab(*args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
    """Run the vpclab CLI (as a user would) with a bound on its time."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"vpclab {' '.join(args)} -> {proc.returncode}\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def run_in(lab: str, where: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return vpclab("exec", "-l", lab, where, "--", *cmd, timeout=timeout)


def connect(lab: str, where: str, host: str, port: int | str, wait: float = 2.0) -> str:
    """What client.py in `where` got from host:port: a tag, `timeout`, `refused`…"""
    proc = run_in(lab, where, sys.executable, str(CLIENT), host, str(port), str(wait),
                  timeout=wait + 30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def serve(tag: str, *ports: int) -> str:
    return f"{sys.executable} {SERVERS} {tag} {' '.join(map(str, ports))}"


def write_topology(tmp_path: pathlib.Path, doc: dict) -> pathlib.Path:
    path = tmp_path / f"{doc['lab']}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def teardown_labs():
    """A list to append lab names to; each is cleaned up at the end, pass or fail."""
    labs: list[str] = []
    yield labs
    for lab in labs:
        labmod.cleanup(lab, everything=True)


OPEN = {"ingress": [{"protocol": "all", "source": "0.0.0.0/0"}]}


def endpoint_to_nlb(lab: str, consumers: dict[str, dict], providers: dict[str, dict],
                    target_group: dict) -> dict:
    """A topology of two wide-open VPCs (every security group admits everything) in one
    AZ: consumer `c` (10.0.1.0/24) with the instances `consumers` and an interface
    endpoint `ep` to `p/svc`; provider `p` (10.1.1.0/24) with the instances `providers`,
    an NLB `nlb` listening on TCP 80 for the target group `tg` (`target_group`), and the
    endpoint service `svc`, accepted automatically. Each instance is its topology fields
    without `subnet` and `security_groups`."""
    def vpc(second_octet: int, instances: dict[str, dict]) -> dict:
        return {"cidr": f"10.{second_octet}.0.0/16",
                "subnets": {"a": {"cidr": f"10.{second_octet}.1.0/24", "az": "us-east-1a"}},
                "security_groups": {"open": OPEN},
                "instances": {name: {"subnet": "a", "security_groups": ["open"], **fields}
                              for name, fields in instances.items()}}
    consumer, provider = vpc(0, consumers), vpc(1, providers)
    consumer["endpoints"] = {"ep": {"service": "p/svc", "subnets": ["a"], "security_groups": ["open"]}}
    provider["load_balancers"] = {"nlb": {"subnets": ["a"], "listeners": [
        {"port": 80, "protocol": "TCP", "target_group": "tg"}]}}
    provider["target_groups"] = {"tg": target_group}
    provider["endpoint_services"] = {"svc": {"load_balancers": ["nlb"], "acceptance_required": False}}
    return {"lab": lab, "region": "us-east-1", "vpcs": {"c": consumer, "p": provider}}
