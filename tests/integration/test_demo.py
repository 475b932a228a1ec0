"""The README's first command is a test too: `make demo` (tools/demo.sh) must run to the
end and show what it says it shows — the article's architecture, hop by hop."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess

import pytest
from pyroute2 import netns

from dataplane.pytest_plugin import lab_name

pytestmark = pytest.mark.root
REPO = pathlib.Path(__file__).resolve().parents[2]
LAB = lab_name("article")


def test_demo_runs_and_leaves_nothing() -> None:
    if os.path.exists(f"/run/vpclab/{LAB}"):
        pytest.fail(f"a lab named {LAB} is up on this machine; the demo would take it down")
    out = subprocess.run(["bash", str(REPO / "tools" / "demo.sh")], capture_output=True, text=True,
                         timeout=900, cwd=REPO, env=dict(os.environ, VPCLAB_DEMO_LAB=LAB))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    lines = out.stdout.splitlines()
    answers = [l for l in lines if l.startswith("    HTTP ")]
    assert len(answers) == 6, "\n".join(answers)
    private, denied, alb, cloud_map = answers[:3], answers[3], answers[4], answers[5]
    # corp's client, through its endpoint's ENIs (172.31.x), by each name form: a target
    # of the orders NLB answers and sees the NLB's node in shop (10.1.x), not the client
    for a in private:
        assert re.match(r"    HTTP 200 from 172\.31\.[12]\.\d+; answered by orders[12], which saw "
                        r"the request come from 10\.1\.[12]\.\d+$", a), a
    headers = [lines[lines.index(a) + 1] for a in private]
    assert all(h.startswith("    x-forwarded-for: 172.31.1.4; x-amzn-vpce-id: vpce-") for h in headers)
    # partner's endpoint is refused by the policy, in AWS's words
    assert denied.startswith("    HTTP 403 from 172.31.1.") and "with an explicit deny" in denied
    # the internet's HTTP API: the ALB's node is what the target sees; XFF ends with the link ENI
    assert re.match(r"    HTTP 200 from 203\.0\.113\.1; answered by web[12], which saw the request "
                    r"come from 10\.1\.[12]\.7$", alb), alb
    assert lines[lines.index(alb) + 1].startswith("    x-forwarded-for: 203.0.113.10, 10.1.")
    assert re.match(r"    HTTP 200 from 203\.0\.113\.1; answered by inv[12], which saw the request "
                    r"come from 10\.1\.[12]\.9$", cloud_map), cloud_map
    # the flows of both PrivateLink connections: PROXY v2 on the execute-api one
    assert "10.0.255.254:443  +100" in out.stdout
    assert re.search(r"⇒ 10\.1\.[12]\.8:\d+ +10\.1\.[12]\.\d+:8080", out.stdout)
    assert "shop-link vpclink-" in out.stdout
    assert f"lab {LAB} is down" in out.stdout
    assert not os.path.exists(f"/run/vpclab/{LAB}")
    assert not [n for n in netns.listnetns() if n.startswith(f"{LAB}.")]
