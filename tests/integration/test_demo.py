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
    if os.path.exists("/run/vpclab/pl"):
        pytest.fail("a lab named pl is up on this machine; the demo would take it down")
    out = subprocess.run(["bash", str(REPO / "tools" / "demo.sh")], capture_output=True, text=True,
                         timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    answers = [line for line in out.stdout.splitlines() if line.startswith("    HTTP ")]
    assert len(answers) == 4 and all(a.startswith("    HTTP 200 from endpoint ENI 10.0.") for a in answers)
    # Zonal names pin the AZ: web1 behind the NLB's ENI in us-east-1a, web2 in us-east-1b;
    # the targets see the NLB's address, never the client's (10.0.1.4, like web1's own).
    assert answers[2].endswith("provider/web1, which saw the request come from 10.0.1.5")
    assert answers[3].endswith("provider/web2, which saw the request come from 10.0.2.5")
    assert "4 flow(s)" in out.stdout and "⇒ 10.0.1.5:" in out.stdout
    assert "lab pl is down" in out.stdout
    assert not os.path.exists("/run/vpclab/pl")
    assert not [n for n in netns.listnetns() if n.startswith("pl.")]
