"""API Gateway resource policies: what vpclab understands of an IAM resource policy, and
its evaluation for one `execute-api:Invoke` call (AWS-FACTS §6, AWS-FACTS-HTTP 1.9).
Pure: no I/O. The model's validate and API Gateway's front end both import it.

    problems(policy)                 -> [(field path, reason)], empty when it is usable
    evaluate(policy, ctx)            -> "allow" | "explicit_deny" | "implicit_deny"
    Policy(policy).evaluate(ctx)     the same, the policy read once (the front end's way)
    expand_resources(policy, region, account, api_id)
                                     -> a copy with `execute-api:/…` short forms as full ARNs

`ctx` is the request context: `"resource"` the ARN of the call,
`arn:aws:execute-api:<region>:<account>:<api-id>/<stage>/<VERB>/<path>` (the API's root
is `…/<VERB>/`), and condition keys by name (`aws:SourceVpce`, `aws:SourceVpc`,
`aws:VpcSourceIp`, `aws:SourceIp`, `aws:UserAgent`, `aws:Referer`, `aws:SecureTransport`
as "true"/"false", `aws:CurrentTime` ISO 8601, `aws:EpochTime` seconds, `aws:SourceArn`);
a key absent from `ctx` (or None) is absent from the request.

Evaluation is IAM's for a resource-policy-only call: a statement applies when its
Principal is everyone (`"*"` or `{"AWS": "*"}`: calls to API Gateway without IAM auth are
anonymous), its Action (or NotAction) covers `execute-api:Invoke`, its Resource (or
NotResource) covers the call's ARN, and every condition holds. Any applicable Deny →
`explicit_deny`; else any applicable Allow → `allow`; else `implicit_deny` (also for no
policy at all: a private API needs a policy that grants).

Matching rules, as IAM's:
* Resource ARNs: the six colon-separated parts compared one by one (a wildcard never
  spans a colon, except in the last part, the resource, where `*` spans `/`), `*` any
  run of characters, `?` one, case-sensitive; `*` alone matches everything. A short form
  `execute-api:/…` not yet expanded is taken relative to the call's own region, account
  and API (as AWS expands it when the policy is saved).
* Actions: case-insensitive, with `*` and `?`.
* Conditions: every operator of a statement, every key of an operator must hold (AND);
  the values listed for one key are alternatives (OR) — for a negated operator
  (`StringNotEquals`, `NotIpAddress`, …) the key must match none of them. A key absent
  from the request makes a condition false, except for the negated operators (true),
  `…IfExists` (true) and `Null`. `ForAnyValue:` holds when some value of the request's
  key matches (false when the key is absent), `ForAllValues:` when every one does (true
  when absent); vpclab's keys are single-valued, so a present key is a set of one.
  Operators: String{Equals,NotEquals,EqualsIgnoreCase,NotEqualsIgnoreCase,Like,NotLike},
  Numeric{Equals,NotEquals,LessThan,LessThanEquals,GreaterThan,GreaterThanEquals},
  Date{…the same six}, Bool, BinaryEquals, IpAddress, NotIpAddress,
  Arn{Equals,Like,NotEquals,NotLike}, Null; each but Null also with `IfExists`.
  Condition values that are JSON numbers or booleans are compared as their text (`true`).

What `problems()` refuses — what this evaluator would not understand, so that a policy is
never half-read: an Effect other than Allow/Deny; a Principal other than `"*"` /
`{"AWS": "*"}` (and NotPrincipal); an action that is not an execute-api one
(`execute-api:Invoke`, `execute-api:InvalidateCache`, `execute-api:ManageConnections`,
patterns of them, `execute-api:*`, `*`); a Resource that is not `*`, an execute-api ARN
or a short form; an unknown operator or condition key (principal keys need IAM auth,
which vpclab does not have); a value an operator can't use (a bad CIDR, number, date,
Bool or base64); policy variables (`${…}`); and a policy over 8,192 characters of compact
JSON (AWS's quota).
"""
from __future__ import annotations

import base64
import binascii
import copy
import datetime
import functools
import ipaddress
import json
import re
from typing import Any, Callable, Iterable

MAX_POLICY_CHARS = 8_192
VERSIONS = ("2012-10-17", "2008-10-17")
INVOKE = "execute-api:invoke"
ACTIONS = ("execute-api:invoke", "execute-api:invalidatecache", "execute-api:manageconnections")
SHORT_FORM = "execute-api:/"
ALLOW, EXPLICIT_DENY, IMPLICIT_DENY = "allow", "explicit_deny", "implicit_deny"

# condition keys API Gateway's resource policies use (AWS-FACTS-HTTP 1.9), lower case -> name
CONDITION_KEYS = {key.lower(): key for key in (
    "aws:SourceIp", "aws:SourceVpc", "aws:SourceVpce", "aws:VpcSourceIp", "aws:Referer",
    "aws:UserAgent", "aws:SecureTransport", "aws:SourceArn", "aws:CurrentTime",
    "aws:EpochTime")}
_STATEMENT_KEYS = ("Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
                   "Resource", "NotResource", "Condition")
_ARN = re.compile(r"arn:[^:]+:execute-api:[^:]*:[^:]*:.+", re.S)


class PolicyError(ValueError):
    """A policy `problems()` refuses; `problems` lists them, the message names the first."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        path, reason = problems[0]
        super().__init__(f"{path}: {reason}" if path else reason)
        self.problems = problems


# ---- values --------------------------------------------------------------------------------

def _text(value: Any) -> str:
    """A condition value as IAM compares it: JSON true/false as `true`/`false`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _listed(value: Any) -> list:
    return value if isinstance(value, list) else [value]


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool = False) -> re.Pattern:
    """`*` any run, `?` one character, the rest literal."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.S | (re.I if ignore_case else 0))


@functools.lru_cache(maxsize=4096)
def _arn_pattern(pattern: str) -> re.Pattern:
    """One regex for an ARN pattern: six colon-separated parts, wildcards in the first
    five never spanning a colon; `*` alone anything; fewer parts, nothing."""
    if pattern == "*":
        return re.compile(".*", re.S)
    parts = pattern.split(":", 5)
    if len(parts) != 6:
        return re.compile("(?!)")
    within = [_glob(part).pattern.replace(".*", "[^:]*").replace(".", "[^:]")
              if "*" in part or "?" in part else re.escape(part) for part in parts[:5]]
    return re.compile(":".join([*within, _glob(parts[5]).pattern]), re.S)


def _arn_matches(pattern: str, arn: str) -> bool:
    return _arn_pattern(pattern).fullmatch(arn) is not None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _date(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 date/time or of a number of seconds."""
    number = _number(value)
    if number is not None:
        return number
    if not isinstance(value, str):
        return None
    try:
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(value, strict=False) if isinstance(value, str) else None
    except ValueError:
        return None


def _address(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _binary(value: Any) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True) if isinstance(value, str) else None
    except (binascii.Error, ValueError):
        return None


# ---- operators -----------------------------------------------------------------------------
# base name -> (read a condition value (None: unusable), read the request's value (None: no
# match), does (request value, condition value) match, negated)

_OPERATORS: dict[str, tuple[Callable, Callable, Callable, bool]] = {}


def _operator(names: Iterable[tuple[str, bool]], read: Callable, read_request: Callable,
              match: Callable) -> None:
    for name, negated in names:
        _OPERATORS[name] = (read, read_request, match, negated)


_operator([("StringEquals", False), ("StringNotEquals", True)], _text, _text,
          lambda got, want: got == want)
_operator([("StringEqualsIgnoreCase", False), ("StringNotEqualsIgnoreCase", True)],
          lambda v: _text(v).casefold(), lambda v: _text(v).casefold(),
          lambda got, want: got == want)
_operator([("StringLike", False), ("StringNotLike", True)], lambda v: _glob(_text(v)), _text,
          lambda got, want: want.fullmatch(got) is not None)
_operator([("ArnEquals", False), ("ArnLike", False), ("ArnNotEquals", True),
           ("ArnNotLike", True)], _text, _text, lambda got, want: _arn_matches(want, got))
for _prefix, _read in (("Numeric", _number), ("Date", _date)):
    for _suffix, _test in (("Equals", float.__eq__), ("LessThan", float.__lt__),
                           ("LessThanEquals", float.__le__), ("GreaterThan", float.__gt__),
                           ("GreaterThanEquals", float.__ge__)):
        _operator([(_prefix + _suffix, False)], _read, _read, _test)
    _operator([(_prefix + "NotEquals", True)], _read, _read, float.__eq__)
_operator([("Bool", False)],
          lambda v: _text(v).lower() if _text(v).lower() in ("true", "false") else None,
          lambda v: _text(v).lower(), lambda got, want: got == want)
_operator([("BinaryEquals", False)], _binary, lambda v: _text(v).encode(),
          lambda got, want: got == want)
_operator([("IpAddress", False), ("NotIpAddress", True)], _network, _address,
          lambda got, want: got.version == want.version and got in want)

_SET_PREFIXES = ("ForAnyValue:", "ForAllValues:")


def _split_operator(name: str) -> tuple[str | None, str, bool] | None:
    """(set prefix, base operator, IfExists) of an operator name, or None if unknown."""
    prefix = next((p for p in _SET_PREFIXES if name.startswith(p)), None)
    rest = name[len(prefix):] if prefix else name
    if rest == "Null":
        return (prefix, rest, False) if prefix is None else None
    if_exists = rest.endswith("IfExists")
    base = rest[:-len("IfExists")] if if_exists else rest
    return (prefix, base, if_exists) if base in _OPERATORS else None


# operators whose match is equality of the read values: a set lookup
_EQUALITY = frozenset({"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase",
                       "StringNotEqualsIgnoreCase", "Bool", "BinaryEquals"})


class _Condition:
    """One key under one operator, its values read once."""
    __slots__ = ("key", "name", "prefix", "if_exists", "values", "exact", "null",
                 "read_request", "match", "negated")

    def __init__(self, operator: str, key: str, values: list) -> None:
        self.prefix, base, self.if_exists = _split_operator(operator)  # type: ignore[misc]
        self.key = key.lower()
        self.name = CONDITION_KEYS.get(self.key, key)
        self.null = None
        self.exact = None
        if base == "Null":
            self.null = [_text(v).lower() == "true" for v in values]
            self.values = []
            return
        read, self.read_request, self.match, self.negated = _OPERATORS[base]
        self.values = [read(v) for v in values]
        if base in _EQUALITY:
            self.exact = frozenset(self.values)

    def holds(self, ctx: dict[str, Any]) -> bool:
        value = ctx.get(self.name)
        if value is None:                        # keys are case-insensitive in IAM
            value = next((v for k, v in ctx.items() if k.lower() == self.key), None)
        if self.null is not None:
            return any(absent == (value is None) for absent in self.null)
        if value is None:
            if self.prefix == "ForAllValues:":
                return True
            if self.prefix == "ForAnyValue:":
                return False
            return self.if_exists or self.negated
        got = self.read_request(value)
        # one value: the request's keys are single-valued (a set of one for ForAnyValue/All)
        if self.exact is not None:
            matched = got in self.exact
        else:
            matched = got is not None and any(self.match(got, want) for want in self.values)
        return matched != self.negated


# ---- problems ------------------------------------------------------------------------------

def problems(policy: Any) -> list[tuple[str, str]]:
    """(field path, reason) for everything the evaluator would not understand (see the
    module docstring); empty when the policy is usable."""
    if not isinstance(policy, dict):
        return [("", f"a policy is a JSON object, not {type(policy).__name__}")]
    found: list[tuple[str, str]] = []
    size = len(json.dumps(policy, separators=(",", ":")))
    if size > MAX_POLICY_CHARS:
        found.append(("", f"{size} characters (compact JSON) is over API Gateway's "
                          f"{MAX_POLICY_CHARS}"))
    for key in policy:
        if key not in ("Version", "Id", "Statement"):
            found.append((key, "unknown policy element; known: Version, Id, Statement"))
    if "Version" in policy and policy["Version"] not in VERSIONS:
        found.append(("Version", f"{policy['Version']!r} is not one of {', '.join(VERSIONS)}"))
    statements = policy.get("Statement")
    if statements is None:
        found.append(("Statement", "a policy needs at least one statement"))
        return found
    for i, statement in enumerate(_listed(statements)):
        found += _statement_problems(statement, f"Statement[{i}]" if isinstance(statements, list)
                                     else "Statement")
    return found


def _statement_problems(statement: Any, path: str) -> list[tuple[str, str]]:
    if not isinstance(statement, dict):
        return [(path, "a statement is a JSON object")]
    found = [(f"{path}.{key}", f"unknown statement element; known: {', '.join(_STATEMENT_KEYS)}")
             for key in statement if key not in _STATEMENT_KEYS]
    if "${" in json.dumps(statement):
        found.append((path, "policy variables (${…}) are not supported by vpclab"))
    if statement.get("Effect") not in ("Allow", "Deny"):
        found.append((f"{path}.Effect", f"{statement.get('Effect')!r} is not Allow or Deny"))
    if "NotPrincipal" in statement:
        found.append((f"{path}.NotPrincipal", "not supported: API Gateway's callers are "
                                              "anonymous (Principal \"*\")"))
    elif not _everyone(statement.get("Principal")):
        found.append((f"{path}.Principal", f"{statement.get('Principal')!r} is not \"*\" or "
                      "{\"AWS\": \"*\"} (vpclab has no IAM authorisation, every caller is "
                      "anonymous)"))
    found += _element_problems(statement, path, "Action", "NotAction", _action_problem)
    found += _element_problems(statement, path, "Resource", "NotResource", _resource_problem)
    if "Condition" in statement:
        found += _condition_problems(statement["Condition"], f"{path}.Condition")
    return found


def _everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    return isinstance(principal, dict) and list(principal) == ["AWS"] and \
        _listed(principal["AWS"]) == ["*"]


def _element_problems(statement: dict, path: str, name: str, negated: str,
                      problem: Callable[[Any], str | None]) -> list[tuple[str, str]]:
    if (name in statement) == (negated in statement):
        return [(f"{path}.{name}", f"a statement needs exactly one of {name} and {negated}")]
    key = name if name in statement else negated
    values = statement[key]
    if not isinstance(values, (str, list)) or values == []:
        return [(f"{path}.{key}", "a string or a non-empty list of strings")]
    found = []
    for i, value in enumerate(_listed(values)):
        reason = problem(value)
        if reason:
            found.append((f"{path}.{key}" + (f"[{i}]" if isinstance(values, list) else ""),
                          reason))
    return found


def _action_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{value!r} is not a string"
    if value == "*":
        return None
    lowered = value.lower()
    if lowered.startswith("execute-api:") and any(_glob(lowered).fullmatch(action)
                                                  for action in ACTIONS):
        return None
    return f"{value!r} is not an execute-api action (execute-api:Invoke, execute-api:*, *)"


def _resource_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{value!r} is not a string"
    if value == "*" or value.startswith(SHORT_FORM) or _ARN.fullmatch(value):
        return None
    return (f"{value!r} is not an execute-api resource (arn:aws:execute-api:<region>:<account>:"
            "<api-id>/<stage>/<VERB>/<path>, execute-api:/<stage>/<VERB>/<path>, or *)")


def _condition_problems(condition: Any, path: str) -> list[tuple[str, str]]:
    if not isinstance(condition, dict):
        return [(path, "a condition is an object of operators")]
    found = []
    for operator, keys in condition.items():
        split = _split_operator(operator)
        if split is None:
            found.append((f"{path}.{operator}", "unknown condition operator"))
            continue
        if not isinstance(keys, dict) or not keys:
            found.append((f"{path}.{operator}", "an operator holds an object of condition keys"))
            continue
        for key, values in keys.items():
            where = f"{path}.{operator}.{key}"
            if key.lower() not in CONDITION_KEYS:
                known = ", ".join(CONDITION_KEYS.values())
                found.append((where, "not a condition key of API Gateway resource policies "
                                     f"without IAM auth; known: {known}"))
                continue
            if values == [] or not all(isinstance(v, (str, int, float, bool))
                                       for v in _listed(values)):
                found.append((where, "a value or a non-empty list of strings, numbers or "
                                     "booleans"))
                continue
            base = split[1]
            for value in _listed(values):
                if base == "Null":
                    if _text(value).lower() not in ("true", "false"):
                        found.append((where, f"{value!r}: Null takes true or false"))
                elif _OPERATORS[base][0](value) is None:
                    found.append((where, f"{value!r} is not a value {base} can compare"))
    return found


# ---- evaluation ----------------------------------------------------------------------------

class _Statement:
    """A statement read once: whether it is about Invoke at all (the only action a call
    has), its resource patterns (compiled; short forms per call, cached), its conditions."""
    __slots__ = ("deny", "invoke", "patterns", "short_forms", "resources_negated",
                 "conditions")

    def __init__(self, statement: dict) -> None:
        self.deny = statement["Effect"] == "Deny"
        actions = _listed(statement.get("Action") or statement.get("NotAction"))
        self.invoke = any(_glob(a.lower()).fullmatch(INVOKE) for a in actions) != \
            ("NotAction" in statement)
        self.resources_negated = "NotResource" in statement
        resources = _listed(statement.get("Resource") or statement.get("NotResource"))
        self.patterns = [_arn_pattern(r) for r in resources if not r.startswith(SHORT_FORM)]
        self.short_forms = [r[len(SHORT_FORM) - 1:] for r in resources
                            if r.startswith(SHORT_FORM)]
        self.conditions = [_Condition(operator, key, _listed(values))
                           for operator, keys in (statement.get("Condition") or {}).items()
                           for key, values in keys.items()]

    def applies(self, ctx: dict[str, Any], resource: str) -> bool:
        if not self.invoke:
            return False
        covered = False
        for pattern in self.patterns:
            if pattern.fullmatch(resource) is not None:
                covered = True
                break
        if not covered and self.short_forms:
            # `execute-api:/…` not yet expanded: the call's own partition, region, account, API
            api = resource.split("/", 1)[0]
            covered = any(_arn_matches(api + tail, resource) for tail in self.short_forms)
        if covered == self.resources_negated:
            return False
        for condition in self.conditions:
            if not condition.holds(ctx):
                return False
        return True


class Policy:
    """A policy read once; `Policy(doc)` raises PolicyError if `problems(doc)` finds any."""
    __slots__ = ("statements",)

    def __init__(self, policy: dict) -> None:
        found = problems(policy)
        if found:
            raise PolicyError(found)
        self.statements = [_Statement(s) for s in _listed(policy["Statement"])]

    def evaluate(self, ctx: dict[str, Any]) -> str:
        resource = ctx["resource"]
        allowed = False
        for statement in self.statements:
            if statement.deny:
                if statement.applies(ctx, resource):
                    return EXPLICIT_DENY
            elif not allowed and statement.applies(ctx, resource):
                allowed = True
        return ALLOW if allowed else IMPLICIT_DENY


def evaluate(policy: dict | Policy | None, ctx: dict[str, Any]) -> str:
    """`allow`, `explicit_deny` or `implicit_deny` for the call `ctx` (module docstring)."""
    if policy is None:
        return IMPLICIT_DENY
    return (policy if isinstance(policy, Policy) else Policy(policy)).evaluate(ctx)


def partition(region: str) -> str:
    """The ARN partition of a region: `aws`, `aws-cn` or `aws-us-gov`."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def api_arn(region: str, account: str, api_id: str) -> str:
    """`arn:aws:execute-api:<region>:<account>:<api-id>`: a call's resource is this and
    `/<stage>/<VERB>/<path>`."""
    return f"arn:{partition(region)}:execute-api:{region}:{account}:{api_id}"


def expand_resources(policy: dict, region: str, account: str, api_id: str) -> dict:
    """A copy of `policy` whose Resource and NotResource short forms `execute-api:/…` are
    full ARNs of API `api_id`, as AWS rewrites them when a policy is saved."""
    out = copy.deepcopy(policy)
    statements = out.get("Statement") if isinstance(out, dict) else None
    base = api_arn(region, account, api_id)
    for statement in _listed(statements) if statements is not None else []:
        if not isinstance(statement, dict):
            continue
        for key in ("Resource", "NotResource"):
            value = statement.get(key)
            if isinstance(value, str) and value.startswith(SHORT_FORM):
                statement[key] = base + value[len(SHORT_FORM) - 1:]
            elif isinstance(value, list):
                statement[key] = [base + v[len(SHORT_FORM) - 1:]
                                  if isinstance(v, str) and v.startswith(SHORT_FORM) else v
                                  for v in value]
    return out
