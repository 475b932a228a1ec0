"""bench/apigw's ALB scenario, its pure parts: the node's configuration follows
notes/alb-config.md's contract field for field; haproxy's translation of it is valid
(`haproxy -c`), keeps the rules' priorities, weights, matches and actions, and refuses
what it cannot translate by naming it."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from bench.apigw.alb_rules import (DIFFERENCES, DNS_NAME, TARGETS, haproxy_config, node_config,
                                   pattern, rules)
from bench.apigw.tools import BenchError

BINDS = {80: ("10.0.1.5", 8080), 443: ("10.0.1.5", 8443)}

# notes/alb-config.md: the keys of each object of the contract
TOP = {"version", "lab", "region", "account_id", "vpc", "name", "arn", "dns_name", "node",
       "idle_timeout", "xff_mode", "xff_client_port", "socket", "access_log", "listeners",
       "target_groups"}
LISTENER = {"port", "protocol", "tls", "rules", "default"}
GROUP = {"arn", "protocol", "port", "algorithm", "targets", "health_check"}
HEALTH = {"enabled", "protocol", "port", "path", "interval", "timeout", "healthy_threshold",
          "unhealthy_threshold", "matcher"}


@pytest.fixture
def config(tmp_path) -> dict:
    return node_config(str(tmp_path), "10.0.1.5", {"plain": 80, "tls": 443}, "/c.pem", "/k.pem")


def test_node_config_has_every_field_of_the_contract(config, tmp_path) -> None:
    assert set(config) == TOP and config["version"] == 1
    assert set(config["node"]) == {"az", "subnet", "address"} and config["node"]["address"] == "10.0.1.5"
    assert config["dns_name"] == DNS_NAME and config["arn"].startswith(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/bench-alb/")
    assert config["socket"].startswith(str(tmp_path)) and config["access_log"].startswith(str(tmp_path))
    plain, tls = config["listeners"]
    assert set(plain) == set(tls) == LISTENER
    assert (plain["port"], plain["protocol"], plain["tls"]) == (80, "HTTP", None)
    assert (tls["port"], tls["protocol"], tls["tls"]) == (443, "HTTPS", {"cert": "/c.pem", "key": "/k.pem"})
    assert plain["rules"] == tls["rules"] == rules()
    assert plain["default"] == {"type": "forward", "target_groups": [{"name": "web-tg", "weight": 1}]}
    assert set(config["target_groups"]) == set(TARGETS)
    for name, group in config["target_groups"].items():
        assert set(group) == GROUP and set(group["health_check"]) == HEALTH
        assert group["arn"].startswith(f"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/")
        assert [t["ip"] for t in group["targets"]] == TARGETS[name]
        assert all(set(t) == {"id", "ip", "port"} for t in group["targets"])
    assert len(config["target_groups"]["web-tg"]["targets"]) == 2


def test_the_rule_set_is_issue_11s() -> None:
    by_priority = {r["priority"]: r for r in rules()}
    assert sorted(by_priority) == [10, 20, 30]
    assert by_priority[10]["conditions"] == [{"field": "path-pattern", "values": ["/api/*"]}]
    assert by_priority[10]["action"]["target_groups"] == [{"name": "api-tg", "weight": 3},
                                                          {"name": "canary-tg", "weight": 1}]
    assert by_priority[20]["action"] == {"type": "fixed-response", "status": 403,
                                         "content_type": "text/plain", "body": "no"}
    assert {c["field"] for c in by_priority[30]["conditions"]} == {"http-header", "http-request-method"}
    assert by_priority[30]["action"]["type"] == "redirect" and by_priority[30]["action"]["status"] == 301


def haproxy_check(text: str, tmp_path) -> None:
    if not shutil.which("haproxy"):
        pytest.fail("haproxy is not installed (apt: haproxy), the benchmark's reference")
    path = tmp_path / "alb.cfg"
    path.write_text(text)
    out = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def test_haproxy_translation_is_valid_and_keeps_priorities_weights_and_actions(config, tmp_path) -> None:
    config["listeners"] = config["listeners"][:1]           # plain: `-c` needs no certificate
    text = haproxy_config(config, BINDS, None)
    haproxy_check(text, tmp_path)
    lines = [line.strip() for line in text.splitlines()]
    assert "bind 10.0.1.5:8080" in lines
    assert 'acl r10_c0 path -m beg "/api/"' in lines                                 # case-sensitive
    assert 'acl r20_c0 req.hdr(host),field(1,:) -i -m beg "admin."' in lines
    assert 'acl r30_c0 req.hdr(x-debug) -i -m str "1"' in lines and 'acl r30_c1 method -m str "POST"' in lines
    sets = [line for line in lines if line.startswith("http-request set-var(txn.rule)")]
    assert sets == ["http-request set-var(txn.rule) int(10) if !{ var(txn.rule) -m found } r10_c0",
                    "http-request set-var(txn.rule) int(20) if !{ var(txn.rule) -m found } r20_c0",
                    "http-request set-var(txn.rule) int(30) if !{ var(txn.rule) -m found } r30_c0 r30_c1"]
    assert "http-request set-var(txn.pick) rand(4) if { var(txn.rule) -m int eq 10 }" in lines
    assert lines.index("use_backend tg_api-tg if { var(txn.rule) -m int eq 10 } { var(txn.pick) -m int lt 3 }") \
        < lines.index("use_backend tg_canary-tg if { var(txn.rule) -m int eq 10 }") \
        < lines.index("use_backend tg_web-tg if !{ var(txn.rule) -m found }")
    assert ('http-request return status 403 content-type "text/plain" string "no" '
            'if { var(txn.rule) -m int eq 20 }') in lines
    assert any(line.startswith("http-request redirect code 301 location") and line.endswith(
        '/debug?%[query]" if { var(txn.rule) -m int eq 30 } { query -m len 1: }') for line in lines)
    assert "option forwardfor" in lines and "http-request set-header X-Forwarded-Proto http" in lines
    assert "timeout connect 10s" in lines and "timeout http-keep-alive 60s" in lines
    assert "server web-tg-1 10.0.2.24:8080 check inter 5s rise 5 fall 2 port 8080" in lines
    assert ("http-check send meth GET uri / ver HTTP/1.1 hdr User-Agent ELB-HealthChecker/2.0 "
            "hdr Connection close") in lines
    assert [line for line in lines if line.startswith("backend ")] == [
        "backend tg_api-tg", "backend tg_canary-tg", "backend tg_web-tg"]


def test_tls_listener_binds_tls_1_2_only(config, tmp_path) -> None:
    text = haproxy_config(config, BINDS, "/x/alb.pem")
    assert "bind 10.0.1.5:8443 ssl crt /x/alb.pem ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2" in text
    assert "http-request set-header X-Forwarded-Proto https" in text
    with pytest.raises(BenchError, match="listener 443: HTTPS needs haproxy's certificate"):
        haproxy_config(config, BINDS, None)


@pytest.mark.parametrize("glob, acl", [
    ("/api/*", '-m beg "/api/"'), ("POST", '-m str "POST"'), ("*", "-m found"),
    ("*.example.com", r'-m reg "^.*\\.example\\.com\$"'), ("a?c", r'-m reg "^a.c\$"')])
def test_wildcards_become_exact_prefix_or_anchored_regex(glob: str, acl: str) -> None:
    assert pattern(glob) == acl


def test_the_contracts_other_conditions_and_defaults_translate(config, tmp_path) -> None:
    """notes/alb-config.md's rule 40 (query-string, source-ip), a weighted default, a
    matcher range and the other XFF modes."""
    listener = config["listeners"][0]
    listener["rules"].append({
        "priority": 40,
        "conditions": [{"field": "query-string", "values": [{"key": "v", "value": "2*"},
                                                            {"key": None, "value": "beta"}]},
                       {"field": "source-ip", "values": ["10.0.1.0/24"]}],
        "action": {"type": "forward", "target_groups": [{"name": "web-tg", "weight": 1}]}})
    listener["default"] = {"type": "forward", "target_groups": [
        {"name": "web-tg", "weight": 0}, {"name": "api-tg", "weight": 2}, {"name": "canary-tg", "weight": 5}]}
    config["listeners"] = [listener]
    config["target_groups"]["web-tg"]["health_check"]["matcher"] = "200-202"
    config["xff_mode"] = "remove"
    text = haproxy_config(config, BINDS, None)
    haproxy_check(text, tmp_path)
    assert 'acl r40_c0 urlp(v),url_dec -i -m beg "2"' in text
    assert r'acl r40_c0 query,url_dec -i -m reg "(^|&)([^&=]*=)?beta(&|\$)"' in text
    assert "acl r40_c1 src 10.0.1.0/24" in text
    assert "http-request set-var(txn.pick) rand(7) if !{ var(txn.rule) -m found }" in text
    assert "use_backend tg_api-tg if !{ var(txn.rule) -m found } { var(txn.pick) -m int lt 2 }" in text
    assert "use_backend tg_web-tg if !{ var(txn.rule) -m found }" not in text      # weight 0
    assert r'http-check expect rstatus "^(200|201|202)\$"' in text
    assert "http-request del-header X-Forwarded-For" in text and "option forwardfor" not in text


@pytest.mark.parametrize("change, message", [
    (lambda c: c["listeners"][0]["rules"][0]["conditions"].append({"field": "cookie", "values": ["x"]}),
     "listener 80 rule 10: no haproxy translation for condition field 'cookie'"),
    (lambda c: c["listeners"][0]["rules"][1].update(action={"type": "authenticate-oidc"}),
     "listener 80 rule 20: no haproxy translation for action type 'authenticate-oidc'"),
    (lambda c: c["listeners"][0].update(default={"type": "forward", "target_groups": [{"name": "nope", "weight": 1}]}),
     "target group 'nope' is used by a rule but not defined"),
    (lambda c: c["target_groups"]["web-tg"]["health_check"].update(matcher="ok"),
     "health check matcher 'ok'"),
    (lambda c: c.update(xff_mode="drop"), "xff_mode 'drop'"),
])
def test_what_cannot_be_translated_is_named(config, change, message) -> None:
    change(config)
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        haproxy_config(config, BINDS, "/x/alb.pem")


def test_a_listener_without_a_bind_is_refused(config) -> None:
    with pytest.raises(BenchError, match="listener 443: no haproxy bind given"):
        haproxy_config(config, {80: BINDS[80]}, "/x/alb.pem")


def test_the_differences_are_written_down() -> None:
    text = " ".join(DIFFERENCES)
    for topic in ("fails open", "Priorities", "502", "option forwardfor", "#{port}"):
        assert topic in text


def test_requests_per_target_group_are_counted_from_either_access_log(tmp_path) -> None:
    from bench.apigw.alb import served_by_group
    log = tmp_path / "access.log"
    log.write_text(
        # haproxy's translation (alb_rules.LOG_FORMAT), its startup notices, the node's line
        "[NOTICE]   (1) : haproxy version is 2.6.12\n"
        'http 03/Dec/2026:15:44:21.492 listener_80 10.0.1.10:38430 10.0.2.22:8080 2 3 3 200 200 '
        '103 91 "GET /api/hello HTTP/1.1" "{}" - - tg_canary-tg 10\n'
        'http 03/Dec/2026:15:44:21.492 listener_80 10.0.1.10:38431 10.0.2.20:8080 2 3 3 200 200 '
        '103 91 "GET /api/hello HTTP/1.1" "{}" - - tg_api-tg 10\n'
        'http 2026-12-03T15:47:01.000000Z app/bench-alb/x 10.0.1.10:4000 10.0.2.21:8080 0.000 0.001 '
        '0.000 200 200 90 150 "GET http://x:80/api/hello HTTP/1.1" "-" - - arn "Root=1-x" "-" "-" 10\n'
        'http 2026-12-03T15:47:01.000000Z app/bench-alb/x 10.0.1.10:4000 10.0.2.24:8080 0.000 0.001 '
        '0.000 200 200 90 150 "GET http://x:80/hello HTTP/1.1" "-" - - arn "Root=1-x" "-" "-" 0\n'
        'http 2026-12-03T15:47:01.000000Z app/bench-alb/x 10.0.1.10:4000 - -1 -1 -1 403 - 90 150 '
        '"GET http://admin.x:80/x HTTP/1.1" "-" - - - "Root=1-x" "-" "-" 20\n')
    assert served_by_group(str(log)) == {"api-tg": 2, "canary-tg": 1, "web-tg": 1}
