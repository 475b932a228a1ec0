"""`vpclab logs --json` (dataplane/cli/logs.py): JSON Lines, one object per log line, whose
record has AWS's field names — lines written by the real writers of API Gateway's REST and
HTTP access logs and of an ALB node's, read from files through a lab state made up for the
test (no lab, no root).
"""
from __future__ import annotations

import json
import types

import pytest

from dataplane.cli import logs, main
from dataplane.services.alb import accesslog as alb_log
from dataplane.services.apigw import accesslog as api_log

NOW = 1_796_000_000.25


def alb_line() -> str:
    return alb_log.line(
        type="http", now=NOW, elb="app/web-alb/50dc6c495c0c9188", client="10.0.1.10:41234",
        target="10.0.2.20:8080", request_time=0.0, target_time=0.002, response_time=0.0,
        elb_status=200, target_status=200, received=98, sent=310,
        request='GET http://web:80/a?q="x" HTTP/1.1', user_agent="curl/7.88.1", tls=None,
        target_group_arn="arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/tg/1",
        trace="Root=1-abc", rule_priority=10, created=NOW - 0.002, action="forward",
        redirect_url=None)


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A lab with a REST API `orders` (stage prod), an HTTP API `catalog` (two stages) and
    an ALB `shop/web-alb` with one node, each with a log of one line."""
    (tmp_path / "orders").mkdir()
    (tmp_path / "catalog").mkdir()
    (tmp_path / "orders" / "prod.log").write_text(api_log.rest_line(
        "10.9.0.2", NOW, "GET", "/orders/{proxy+}", 200, 19, "req-1", "ext-1"))
    (tmp_path / "catalog" / "$default.log").write_text(api_log.http_line(
        "req-2", "203.0.113.10", NOW, "GET", api_log.json_string("GET /items/{id}"), 200, 7,
        3, None))
    alb = tmp_path / "alb-a.log"
    alb.write_text(alb_line())
    data = {"api_gateway": {"front_end": {"access_logs": str(tmp_path)}},
            "topology": {"api_gateway": {"apis": {"orders": {"stages": ["prod"]},
                                                  "catalog": {"stages": ["$default", "test"]}}}},
            "albs": {"shop/web-alb": {"nodes": [{"subnet": "a", "access_log": str(alb)}]}}}
    state = types.SimpleNamespace(lab="tclx", data=data)
    monkeypatch.setattr(logs, "pick_lab", lambda name: state)


def read_json(capsys, *argv: str) -> list[dict]:
    assert main.main(["logs", "-l", "tclx", *argv, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_a_rest_apis_line_as_awss_fields(lab, capsys) -> None:
    [line] = read_json(capsys, "orders")
    assert {k: line[k] for k in ("version", "lab", "log", "name", "part")} == {
        "version": 1, "lab": "tclx", "log": "api", "name": "orders", "part": "prod"}
    r = line["record"]
    assert (r["sourceIp"], r["httpMethod"], r["resourcePath"], r["status"], r["requestId"],
            r["extendedRequestId"]) == ("10.9.0.2", "GET", "/orders/{proxy+}", "200", "req-1",
                                        "ext-1")
    assert line["line"].startswith("10.9.0.2 - - [")


def test_an_http_apis_line_is_its_json_and_a_missing_stage_log_reads_nothing(lab, capsys) -> None:
    [line] = read_json(capsys, "catalog")           # stage test has no log yet
    assert line["part"] == "$default" and line["record"]["routeKey"] == "GET /items/{id}"
    assert line["record"]["integrationLatency"] == "3"


def test_an_albs_line_by_the_names_of_awss_page(lab, capsys) -> None:
    [line] = read_json(capsys, "shop/web-alb")
    r = line["record"]
    assert line["log"] == "alb" and line["part"] == "a"
    assert set(r) == set(logs.ALB_FIELDS)
    assert r["request"] == 'GET http://web:80/a?q="x" HTTP/1.1' and r["elb_status_code"] == "200"
    assert r["target:port"] == "10.0.2.20:8080" and r["matched_rule_priority"] == "10"


def test_a_line_out_of_format_has_no_record() -> None:
    assert logs.parse_line("api", "not a log line\n") is None
    assert logs.parse_line("alb", 'http "unterminated\n') is None
    assert logs.parse_line("api", "[1, 2]\n") is None
