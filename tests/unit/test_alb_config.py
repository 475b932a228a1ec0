"""The ALB node's configuration (dataplane/services/alb/config.py): the contract's example
reads, and every refusal names its field; the command line says it in one stderr line
and exits 2."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from alb_example import CONTRACT
from config_edit import broken

from dataplane.services.alb.config import AlbConfig, QueryStringCondition
from dataplane.services.serving import ConfigError


def test_contract_example_reads() -> None:
    config = AlbConfig.from_json(CONTRACT)
    assert config.elb_id == "app/web-alb/50dc6c495c0c9188"
    assert [l.port for l in config.listeners] == [80, 443]
    web = config.group("web-tg")
    assert web.health_check.codes == {200} and web.algorithm == "round_robin"
    assert config.group("api-tg").health_check.interval == 30       # AWS's defaults filled in
    query = config.listeners[0].rules[3].conditions[0]
    assert isinstance(query, QueryStringCondition) and query.values[1].key is None


@pytest.mark.parametrize("path, value, field, says", [
    (["version"], 2, "version", "version"),
    (["idle_timeout"], 0, "idle_timeout", "1-4000"),
    (["xff_mode"], "rewrite", "xff_mode", "append, preserve, remove"),
    (["node", "address"], "10.0.1", "node.address", "IPv4"),
    (["socket"], KeyError, "", "'socket' is missing"),
    (["listeners", 0, "protocol"], "TCP", "listeners[0].protocol", "HTTP or HTTPS"),
    (["listeners", 1, "tls"], None, "listeners[1].tls", "cert and key"),
    (["listeners", 0, "rules", 1, "priority"], 10, "listeners[0].rules[1].priority",
     "also the priority of rules[0]"),
    (["listeners", 0, "rules", 0, "priority"], 50001, "listeners[0].rules[0].priority", "1-50000"),
    (["listeners", 0, "rules", 0, "conditions", 0, "field"], "cookie",
     "listeners[0].rules[0].conditions[0].field", "host-header"),
    (["listeners", 0, "rules", 3, "conditions", 1, "values", 0], "10.0.1.0/33",
     "listeners[0].rules[3].conditions[1].values[0]", "CIDR"),
    (["listeners", 0, "rules", 2, "conditions", 0, "name"], None,
     "listeners[0].rules[2].conditions[0].name", "header's name"),
    (["listeners", 0, "rules", 2, "action", "status"], 307,
     "listeners[0].rules[2].action.status", "301 or 302"),
    (["listeners", 0, "rules", 0, "action", "target_groups", 0, "weight"], 1000,
     "listeners[0].rules[0].action.target_groups[0].weight", "0-999"),
    (["listeners", 0, "default", "target_groups", 0, "name"], "nope",
     "listeners[0].default.target_groups[0].name", "unknown target group 'nope'"),
    (["listeners", 0, "default", "type"], "authenticate-oidc", "listeners[0].default.type",
     "forward, fixed-response, redirect"),
    (["target_groups", "web-tg", "algorithm"], "random", "target_groups.web-tg.algorithm",
     "round_robin"),
    (["target_groups", "web-tg", "health_check", "matcher"], "600",
     "target_groups.web-tg.health_check.matcher", "'600'"),
    (["target_groups", "web-tg", "health_check", "timeout"], 40,
     "target_groups.web-tg.health_check.timeout", "interval"),
    (["target_groups", "web-tg", "targets", 1, "ip"], "ten",
     "target_groups.web-tg.targets[1].ip", "IPv4"),
    (["target_groups", "web-tg", "protocol"], "HTTPS", "target_groups.web-tg.protocol",
     "HTTP to its targets only"),
    (["target_groups"], [], "target_groups", "not an object"),
])
def test_refusals_name_the_field(path, value, field, says) -> None:
    with pytest.raises(ConfigError) as caught:
        AlbConfig.from_json(broken(CONTRACT, path, value))
    assert caught.value.path == field and says in caught.value.problem, str(caught.value)


def test_command_line_says_one_line_and_exits_2(tmp_path) -> None:
    path = tmp_path / "alb.json"
    path.write_text(json.dumps(broken(CONTRACT, ["target_groups", "web-tg", "health_check",
                                                 "matcher"], "2xx")))
    proc = subprocess.run([sys.executable, "-m", "dataplane.services.alb", "--config",
                           str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"alb: {path}: target_groups.web-tg.health_check.matcher: '2xx' is not a code 200-499, "
        "a list (200,202) or a range (200-299)"]
    path.write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "dataplane.services.alb", "--config",
                           str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert "not JSON" in proc.stderr


def test_an_access_log_it_cannot_open_is_a_config_error(tmp_path) -> None:
    doc = broken(CONTRACT, ["access_log"], str(tmp_path / "file" / "alb.log"))
    (tmp_path / "file").write_text("a file where a directory should be")
    doc["listeners"][1]["tls"] = None
    doc["listeners"][1]["protocol"] = "HTTP"
    from dataplane.services.alb.node import AlbNode
    with pytest.raises(ConfigError) as caught:
        AlbNode(AlbConfig.from_json(doc))
    assert caught.value.path == "access_log"
