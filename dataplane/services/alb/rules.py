"""A listener's rules, compiled once at configuration time and evaluated per request
(AWS-FACTS-HTTP 1.11): from the lowest priority up, first match wins, the default last.
A rule's conditions are ANDed, the values of one condition ORed.

Every condition becomes one precompiled test, so a request costs one regex `fullmatch`
(or a set lookup) per condition evaluated and no allocation beyond the request's view:

| condition | what is matched | case | wildcards |
|---|---|---|---|
| `host-header` | the Host header without its port | insensitive | `*` (0+ chars), `?` (one) |
| `path-pattern` | the path, without the query | sensitive | `*`, `?` |
| `http-header` | each value of the named header | insensitive (name and value) | `*`, `?` |
| `http-request-method` | the method | sensitive, exact | none |
| `query-string` | each URL-decoded `key=value` pair; key None = any key | insensitive | `*`, `?` |
| `source-ip` | the TCP peer (never X-Forwarded-For) | — | CIDRs, IPv4 and IPv6 |

The values of one condition are joined into one alternation, `(?:v1|v2|v3)`, compiled
once with `re.IGNORECASE | re.ASCII` where AWS ignores case (only visible ASCII is matched).

`View` is what the conditions read of a request: the host, path and query the
personality split once, with the header table and the decoded query pairs worked out
only if a condition asks for them.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable
from urllib.parse import parse_qsl

from .config import Condition, Listener, QueryStringCondition, Rule


def wildcard_regex(patterns: tuple[str, ...] | list[str],
                   case_insensitive: bool) -> Callable[[str], Any]:
    """A `fullmatch` that is true when the text matches one of `patterns`, where `*` is
    any run of characters (none too) and `?` exactly one."""
    alternatives = []
    for pattern in patterns:
        alternatives.append("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                                    for c in pattern))
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if case_insensitive else 0)
    return re.compile("(?:" + "|".join(alternatives) + ")", flags).fullmatch


def host_without_port(host: str) -> str:
    """`example.com:8080` as `example.com`; `[::1]:80` as `[::1]`."""
    if ":" not in host:
        return host
    if host[0] == "[":
        end = host.find("]")
        return host[:end + 1] if end >= 0 else host
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() else host


class View:
    """What the conditions read of one request (see the module docstring)."""
    __slots__ = ("method", "host", "path", "query", "headers", "client_ip", "_table",
                 "_pairs", "_address")

    def __init__(self, method: str, host: str, path: str, query: str,
                 headers: list[tuple[str, str]], client_ip: str) -> None:
        self.method = method
        self.host = host                # without its port
        self.path = path
        self.query = query              # without the '?'
        self.headers = headers
        self.client_ip = client_ip
        self._table: dict[str, list[str]] | None = None
        self._pairs: list[tuple[str, str]] | None = None
        self._address: Any = None

    def header_values(self, lname: str) -> list[str]:
        table = self._table
        if table is None:
            table = self._table = {}
            for name, value in self.headers:
                table.setdefault(name.lower(), []).append(value)
        return table.get(lname, ())  # type: ignore[return-value]

    def query_pairs(self) -> list[tuple[str, str]]:
        pairs = self._pairs
        if pairs is None:
            query = self.query
            if not query:
                pairs = []
            elif "%" in query or "+" in query:       # something to decode
                pairs = parse_qsl(query, keep_blank_values=True)
            else:
                pairs = [(key, value) for key, _, value in
                         (part.partition("=") for part in query.split("&") if part)]
            self._pairs = pairs
        return pairs

    def address(self) -> Any:
        if self._address is None:
            self._address = ipaddress.ip_address(self.client_ip.split("%", 1)[0])
        return self._address


# -- the conditions, compiled --------------------------------------------------------------

class HostHeader:
    __slots__ = ("match",)

    def __init__(self, values: tuple[str, ...]) -> None:
        self.match = wildcard_regex(values, True)

    def __call__(self, view: View) -> bool:
        return self.match(view.host) is not None


class PathPattern:
    __slots__ = ("match",)

    def __init__(self, values: tuple[str, ...]) -> None:
        self.match = wildcard_regex(values, False)

    def __call__(self, view: View) -> bool:
        return self.match(view.path) is not None


class HttpHeader:
    __slots__ = ("name", "match")

    def __init__(self, name: str, values: tuple[str, ...]) -> None:
        self.name = name.lower()
        self.match = wildcard_regex(values, True)

    def __call__(self, view: View) -> bool:
        match = self.match
        for value in view.header_values(self.name):
            if match(value) is not None:
                return True
        return False


class RequestMethod:
    __slots__ = ("methods",)

    def __init__(self, values: tuple[str, ...]) -> None:
        self.methods = frozenset(values)

    def __call__(self, view: View) -> bool:
        return view.method in self.methods


class QueryString:
    __slots__ = ("pairs",)

    def __init__(self, condition: QueryStringCondition) -> None:
        self.pairs = [(None if v.key is None else wildcard_regex([v.key], True),
                       wildcard_regex([v.value], True)) for v in condition.values]

    def __call__(self, view: View) -> bool:
        pairs = view.query_pairs()
        for key_match, value_match in self.pairs:
            for key, value in pairs:
                if (key_match is None or key_match(key) is not None) and \
                        value_match(value) is not None:
                    return True
        return False


class SourceIp:
    __slots__ = ("networks",)

    def __init__(self, values: tuple[str, ...]) -> None:
        self.networks = [ipaddress.ip_network(v, strict=False) for v in values]

    def __call__(self, view: View) -> bool:
        address = view.address()
        for network in self.networks:
            if address.version == network.version and address in network:
                return True
        return False


def compile_condition(condition: Condition | QueryStringCondition) -> Callable[[View], bool]:
    field = condition.field
    if isinstance(condition, QueryStringCondition):
        return QueryString(condition)
    if field == "host-header":
        return HostHeader(condition.values)
    if field == "path-pattern":
        return PathPattern(condition.values)
    if field == "http-header":
        return HttpHeader(condition.name or "", condition.values)
    if field == "http-request-method":
        return RequestMethod(condition.values)
    return SourceIp(condition.values)


class CompiledRule:
    __slots__ = ("priority", "conditions", "action")

    def __init__(self, rule: Rule, action: Any) -> None:
        self.priority = rule.priority
        self.conditions = tuple(compile_condition(c) for c in rule.conditions)
        self.action = action


class RuleTable:
    """A listener's rules by priority and its default action; `match(view)` is the rule
    that applies (`priority` 0 for the default, as the access log writes it)."""

    def __init__(self, listener: Listener, make_action: Callable[[Any], Any]) -> None:
        self.rules = tuple(CompiledRule(rule, make_action(rule.action))
                           for rule in sorted(listener.rules, key=lambda r: r.priority))
        self.default = CompiledRule(Rule(1, (), listener.default), make_action(listener.default))
        self.default.priority = 0

    def match(self, view: View) -> CompiledRule:
        for rule in self.rules:
            for condition in rule.conditions:
                if not condition(view):
                    break
            else:
                return rule
        return self.default
