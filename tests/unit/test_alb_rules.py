"""ALB listener rules (dataplane/services/alb/rules.py): a table of requests against
every condition type, AWS's wildcards and case rules, priority order and the default."""
from __future__ import annotations

import pytest

from dataplane.services.alb.config import Listener
from dataplane.services.alb.rules import RuleTable, View, host_without_port, wildcard_regex


def rule(priority: int, *conditions: dict) -> dict:
    return {"priority": priority, "conditions": list(conditions),
            "action": {"type": "fixed-response", "status": 200, "body": str(priority)}}


def cond(field: str, *values, name: str | None = None) -> dict:
    out = {"field": field, "values": list(values)}
    if name:
        out["name"] = name
    return out


LISTENER = Listener.from_json({
    "port": 80, "protocol": "HTTP",
    # listed out of order on purpose: evaluation is by priority
    "rules": [
        rule(60, cond("source-ip", "10.0.1.0/24", "2001:db8::/32")),
        rule(10, cond("host-header", "*.example.com", "api-??.shop.test")),
        rule(20, cond("path-pattern", "/img/*", "/v?/items")),
        rule(30, cond("http-header", "x-*", "beta", name="X-Client"),
             cond("http-request-method", "POST", "PUT")),
        rule(40, cond("http-request-method", "PATCH")),
        rule(50, cond("query-string", {"key": "v", "value": "2*"}, {"key": None, "value": "beta"})),
        rule(5, cond("path-pattern", "/both"), cond("host-header", "both.test")),
    ],
    "default": {"type": "fixed-response", "status": 404, "body": "default"}})
TABLE = RuleTable(LISTENER, lambda action: action)


def view(path: str = "/", host: str = "other.test", method: str = "GET", query: str = "",
         headers: list[tuple[str, str]] | None = None, client: str = "192.0.2.1") -> View:
    return View(method, host, path, query, headers or [], client)


@pytest.mark.parametrize("request_view, priority", [
    # host-header: case-insensitive, * is 0+ characters, ? exactly one, not the bare domain
    (view(host="www.example.com"), 10),
    (view(host="WWW.Example.COM"), 10),
    (view(host="a.b.example.com"), 10),
    (view(host="example.com"), 0),
    (view(host="api-01.shop.test"), 10),
    (view(host="api-1.shop.test"), 0),
    (view(host="api-001.shop.test"), 0),
    # path-pattern: case-sensitive, on the path only
    (view("/img/a/b.jpg"), 20),
    (view("/IMG/a.jpg"), 0),
    (view("/img"), 0),
    (view("/v2/items"), 20),
    (view("/v10/items"), 0),
    # http-header: name and value case-insensitive, wildcards; ANDed with the method
    (view("/x", method="POST", headers=[("x-client", "X-Mobile")]), 30),
    (view("/x", method="PUT", headers=[("X-CLIENT", "BETA")]), 30),
    (view("/x", method="GET", headers=[("X-Client", "beta")]), 0),
    (view("/x", method="POST", headers=[("X-Client", "gamma")]), 0),
    (view("/x", method="POST", headers=[("X-Other", "x-1")]), 0),
    (view("/x", method="POST", headers=[("X-Client", "gamma"), ("X-Client", "x-2")]), 30),
    # http-request-method: exact and case-sensitive
    (view(method="PATCH"), 40),
    (view(method="patch"), 0),
    # query-string: URL-decoded pairs, case-insensitive, key null = any key
    (view(query="v=21"), 50),
    (view(query="V=2"), 50),
    (view(query="a=1&v=3"), 0),
    (view(query="mode=BETA"), 50),
    (view(query="mode=be%74a"), 50),
    (view(query="v%3D2=x"), 0),
    (view(query="x=2&v=1"), 0),
    # source-ip: the TCP peer, IPv4 and IPv6
    (view(client="10.0.1.200"), 60),
    (view(client="10.0.2.1"), 0),
    (view(client="2001:db8::7"), 60),
    # priorities: the lowest matching wins; conditions of one rule are ANDed
    (view("/both", host="both.test"), 5),
    (view("/both", host="www.example.com"), 10),
    (view("/img/x", host="www.example.com"), 10),
    (view("/img/x", host="www.example.com", client="10.0.1.1"), 10),
    (view("/nothing"), 0),
])
def test_rule_table(request_view: View, priority: int) -> None:
    assert TABLE.match(request_view).priority == priority


def test_default_is_priority_zero_and_its_action() -> None:
    matched = TABLE.match(view("/nothing"))
    assert matched.priority == 0 and matched.action.body == "default"
    assert [r.priority for r in TABLE.rules] == [5, 10, 20, 30, 40, 50, 60]


def test_wildcards_are_literal_otherwise() -> None:
    match = wildcard_regex(["a.b+c(d)[e]"], False)
    assert match("a.b+c(d)[e]") and not match("aXb+c(d)[e]") and not match("a.bbc(d)[e]")
    assert wildcard_regex(["*"], False)("") and wildcard_regex(["?"], False)("\n")
    assert not wildcard_regex(["?"], False)("")


def test_host_without_port() -> None:
    assert host_without_port("example.com:8080") == "example.com"
    assert host_without_port("example.com") == "example.com"
    assert host_without_port("[2001:db8::1]:443") == "[2001:db8::1]"
    assert host_without_port("example.com:") == "example.com:"


def test_views_work_out_headers_and_query_only_when_asked() -> None:
    early = view("/img/a", headers=[("X-A", "1")], query="a=1")
    assert TABLE.match(early).priority == 20        # before any header or query rule
    assert early._table is None and early._pairs is None
    late = view("/x", headers=[("X-A", "1")], query="a=1")
    assert TABLE.match(late).priority == 0
    assert late._table == {"x-a": ["1"]} and late._pairs == [("a", "1")]
