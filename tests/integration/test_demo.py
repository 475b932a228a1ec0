"""The README's first command is a test too: `make demo` (tools/demo.sh) must run to the
end and show what it says it shows."""
from __future__ import annotations

import os
import pathlib
import subprocess

import pytest
from pyroute2 import netns

pytestmark = pytest.mark.root
REPO = pathlib.Path(__file__).resolve().parents[2]


def test_demo_runs_and_leaves_nothing() -> None:
    if os.path.exists("/run/vpclab/demo"):
        pytest.fail("a lab named demo is up on this machine; the demo would take it down")
    out = subprocess.run(["bash", str(REPO / "tools" / "demo.sh")], capture_output=True, text=True,
                         timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "HTTP 200 from 10.0.1.4:8080" in out.stdout
    assert "dropped silently by the security group" in out.stdout
    assert "10.0.1.4        web1" in out.stdout
    assert "lab demo is down" in out.stdout
    assert not os.path.exists("/run/vpclab/demo")
    assert not [n for n in netns.listnetns() if n.startswith("demo.")]
