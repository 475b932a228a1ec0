"""API Gateway resource policies (dataplane/model/resource_policy.py): one table of
(policy statements, request context, expected outcome), then what problems() refuses and
what expand_resources() writes."""
from __future__ import annotations

import json

import pytest

from dataplane.model import resource_policy as rp

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
VPCE, VPC = "vpce-0a1b2c3d4e5f60718", "vpc-0f1e2d3c4b5a69788"


def ctx(path: str = "/prod/GET/orders/7", **keys: str | None) -> dict:
    """A call from the corp VPC through its endpoint, `keys` added or overridden
    (`SourceVpce=None` removes aws:SourceVpce; underscores are colons' stand-ins)."""
    out = {"resource": API + path, "aws:SourceVpce": VPCE, "aws:SourceVpc": VPC,
           "aws:VpcSourceIp": "10.1.1.10", "aws:SourceIp": "10.1.1.50",
           "aws:SecureTransport": "true", "aws:UserAgent": "curl/8.5.0",
           "aws:EpochTime": "1796300000", "aws:CurrentTime": "2026-12-03T12:13:20Z"}
    for key, value in keys.items():
        name = "aws:" + key
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def allow(resource: object = "execute-api:/*", **extra: object) -> dict:
    return {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke",
            "Resource": resource, **extra}


def deny(resource: object = "execute-api:/*", **extra: object) -> dict:
    return {**allow(resource, **extra), "Effect": "Deny"}


def when(operator: str, key: str, value: object) -> dict:
    return {"Condition": {operator: {key: value}}}


A, E, I = rp.ALLOW, rp.EXPLICIT_DENY, rp.IMPLICIT_DENY
ALLOWED_IF = lambda operator, key, value: [allow(**when(operator, key, value))]  # noqa: E731

TABLE = [
    # -- outcomes ---------------------------------------------------------------------------
    ("allow all", [allow()], ctx(), A),
    ("no statement applies: implicit deny", [allow(f"{API}/test/*")], ctx(), I),
    ("explicit deny wins over allow", [allow(), deny()], ctx(), E),
    ("deny first, allow after: still deny", [deny(), allow()], ctx(), E),
    ("deny that does not apply", [allow(), deny(f"{API}/prod/POST/*")], ctx(), A),
    ("only a deny that does not apply: implicit", [deny(f"{API}/prod/POST/*")], ctx(), I),
    ("contract's policy, right endpoint",
     [allow(), deny(**when("StringNotEquals", "aws:SourceVpce", VPCE))], ctx(), A),
    ("contract's policy, other endpoint",
     [allow(), deny(**when("StringNotEquals", "aws:SourceVpce", VPCE))],
     ctx(SourceVpce="vpce-99999999999999999"), E),
    ("contract's policy, no endpoint (public listener)",
     [allow(), deny(**when("StringNotEquals", "aws:SourceVpce", VPCE))], ctx(SourceVpce=None), E),
    # -- resources and wildcards ------------------------------------------------------------
    ("full ARN, exact", [allow(f"{API}/prod/GET/orders/7")], ctx(), A),
    ("full ARN, other path", [allow(f"{API}/prod/GET/orders/8")], ctx(), I),
    ("* in the path spans slashes", [allow(f"{API}/prod/*")], ctx(), A),
    ("? is one character", [allow(f"{API}/prod/GET/orders/?")], ctx(), A),
    ("? is not two", [allow(f"{API}/prod/GET/orders/?")], ctx("/prod/GET/orders/77"), I),
    ("* in the account part", [allow("arn:aws:execute-api:us-east-1:*:a1b2c3d4e5/*")], ctx(), A),
    ("? in the account part", [allow("arn:aws:execute-api:us-east-1:12345678901?:a1b2c3d4e5/*")],
     ctx(), A),
    ("another API", [allow("arn:aws:execute-api:us-east-1:123456789012:zzzzzzzzzz/*")], ctx(), I),
    ("wrong region", [allow("arn:aws:execute-api:eu-west-1:*:a1b2c3d4e5/*")], ctx(), I),
    ("Resource * alone", [allow("*")], ctx(), A),
    ("ARNs are case-sensitive", [allow(f"{API}/prod/get/*")], ctx(), I),
    ("* verb", [allow(f"{API}/prod/*/orders/*")], ctx(), A),
    ("root resource ends in a slash", [allow("execute-api:/prod/GET/")], ctx("/prod/GET/"), A),
    ("root is not /prod/GET/orders", [allow("execute-api:/prod/GET/")], ctx(), I),
    ("list of resources: any one", [allow(["execute-api:/test/*", "execute-api:/prod/GET/*"])],
     ctx(), A),
    ("short form is relative to the call's API", [allow("execute-api:/prod/GET/orders/*")],
     ctx(), A),
    ("NotResource: everything but test", [{"Effect": "Allow", "Principal": "*",
                                           "Action": "execute-api:Invoke",
                                           "NotResource": "execute-api:/test/*"}], ctx(), A),
    ("NotResource excludes the call", [{"Effect": "Allow", "Principal": "*",
                                        "Action": "execute-api:Invoke",
                                        "NotResource": "execute-api:/prod/*"}], ctx(), I),
    # -- actions and principals -------------------------------------------------------------
    ("Action execute-api:*", [{**allow(), "Action": "execute-api:*"}], ctx(), A),
    ("Action *", [{**allow(), "Action": "*"}], ctx(), A),
    ("actions are case-insensitive", [{**allow(), "Action": "Execute-API:invoke"}], ctx(), A),
    ("another execute-api action", [{**allow(), "Action": "execute-api:ManageConnections"}],
     ctx(), I),
    ("NotAction covering Invoke", [{"Effect": "Allow", "Principal": "*",
                                    "NotAction": "execute-api:Invoke", "Resource": "*"}], ctx(), I),
    ("NotAction of another action", [{"Effect": "Allow", "Principal": "*",
                                      "NotAction": "execute-api:InvalidateCache",
                                      "Resource": "*"}], ctx(), A),
    ("Principal {AWS: *}", [{**allow(), "Principal": {"AWS": "*"}}], ctx(), A),
    # -- string operators -------------------------------------------------------------------
    ("StringEquals matches", ALLOWED_IF("StringEquals", "aws:SourceVpc", VPC), ctx(), A),
    ("StringEquals is case-sensitive", ALLOWED_IF("StringEquals", "aws:SourceVpc", VPC.upper()),
     ctx(), I),
    ("StringEquals, values ORed", ALLOWED_IF("StringEquals", "aws:SourceVpc", ["vpc-1", VPC]),
     ctx(), A),
    ("StringEquals, key absent", ALLOWED_IF("StringEquals", "aws:SourceVpc", VPC),
     ctx(SourceVpc=None), I),
    ("condition keys are case-insensitive", ALLOWED_IF("StringEquals", "AWS:SOURCEVPC", VPC),
     ctx(), A),
    ("StringNotEquals, NOR of values", ALLOWED_IF("StringNotEquals", "aws:SourceVpc",
                                                  ["vpc-1", VPC]), ctx(), I),
    ("StringNotEquals, absent key holds", ALLOWED_IF("StringNotEquals", "aws:SourceVpc", VPC),
     ctx(SourceVpc=None), A),
    ("StringEqualsIgnoreCase", ALLOWED_IF("StringEqualsIgnoreCase", "aws:SourceVpc", VPC.upper()),
     ctx(), A),
    ("StringNotEqualsIgnoreCase", ALLOWED_IF("StringNotEqualsIgnoreCase", "aws:SourceVpc",
                                             VPC.upper()), ctx(), I),
    ("StringLike *", ALLOWED_IF("StringLike", "aws:UserAgent", "curl/*"), ctx(), A),
    ("StringLike ?", ALLOWED_IF("StringLike", "aws:UserAgent", "curl/8.?.0"), ctx(), A),
    ("StringLike is case-sensitive", ALLOWED_IF("StringLike", "aws:UserAgent", "CURL/*"), ctx(), I),
    ("StringNotLike", ALLOWED_IF("StringNotLike", "aws:UserAgent", "curl/*"), ctx(), I),
    # -- IfExists, Null, sets -----------------------------------------------------------------
    ("StringEqualsIfExists, absent", ALLOWED_IF("StringEqualsIfExists", "aws:Referer", "x"),
     ctx(), A),
    ("StringEqualsIfExists, present and different",
     ALLOWED_IF("StringEqualsIfExists", "aws:SourceVpc", "vpc-1"), ctx(), I),
    ("Null true, key absent", ALLOWED_IF("Null", "aws:Referer", "true"), ctx(), A),
    ("Null true, key present", ALLOWED_IF("Null", "aws:SourceVpce", "true"), ctx(), I),
    ("Null false (JSON false), key present", ALLOWED_IF("Null", "aws:SourceVpce", False), ctx(), A),
    ("ForAnyValue:StringEquals", ALLOWED_IF("ForAnyValue:StringEquals", "aws:SourceVpce",
                                            ["vpce-1", VPCE]), ctx(), A),
    ("ForAnyValue, key absent is false", ALLOWED_IF("ForAnyValue:StringEquals", "aws:Referer",
                                                     "x"), ctx(), I),
    ("ForAllValues, key absent is true", ALLOWED_IF("ForAllValues:StringEquals", "aws:Referer",
                                                     "x"), ctx(), A),
    ("ForAllValues:StringLike mismatch", ALLOWED_IF("ForAllValues:StringLike", "aws:UserAgent",
                                                    "wget*"), ctx(), I),
    ("ForAnyValue:StringNotEquals", ALLOWED_IF("ForAnyValue:StringNotEquals", "aws:SourceVpc",
                                               "vpc-1"), ctx(), A),
    # -- addresses --------------------------------------------------------------------------
    ("IpAddress CIDR", ALLOWED_IF("IpAddress", "aws:VpcSourceIp", "10.1.0.0/16"), ctx(), A),
    ("IpAddress single address", ALLOWED_IF("IpAddress", "aws:VpcSourceIp", "10.1.1.10"), ctx(), A),
    ("IpAddress outside", ALLOWED_IF("IpAddress", "aws:VpcSourceIp", "10.2.0.0/16"), ctx(), I),
    ("IpAddress list ORed", ALLOWED_IF("IpAddress", "aws:VpcSourceIp",
                                       ["192.0.2.0/24", "10.1.1.0/24"]), ctx(), A),
    ("aws:SourceIp is the endpoint's address", ALLOWED_IF("IpAddress", "aws:SourceIp",
                                                          "10.1.1.10/32"), ctx(), I),
    ("NotIpAddress", ALLOWED_IF("NotIpAddress", "aws:VpcSourceIp", "10.1.0.0/16"), ctx(), I),
    ("NotIpAddress outside holds", ALLOWED_IF("NotIpAddress", "aws:VpcSourceIp", "10.2.0.0/16"),
     ctx(), A),
    ("IpAddressIfExists, absent", ALLOWED_IF("IpAddressIfExists", "aws:VpcSourceIp", "10.2.0.0/16"),
     ctx(VpcSourceIp=None), A),
    ("deny NotIpAddress from outside the VPC range",
     [allow(), deny(**when("NotIpAddress", "aws:VpcSourceIp", "10.1.1.0/24"))],
     ctx(VpcSourceIp="10.3.0.4"), E),
    # -- numbers, dates, Bool, binary, ARNs ---------------------------------------------------
    ("NumericLessThan", ALLOWED_IF("NumericLessThan", "aws:EpochTime", 1796300001), ctx(), A),
    ("NumericLessThanEquals", ALLOWED_IF("NumericLessThanEquals", "aws:EpochTime", "1796300000"),
     ctx(), A),
    ("NumericGreaterThan", ALLOWED_IF("NumericGreaterThan", "aws:EpochTime", 1796300000), ctx(), I),
    ("NumericGreaterThanEquals", ALLOWED_IF("NumericGreaterThanEquals", "aws:EpochTime",
                                            1796300000), ctx(), A),
    ("NumericEquals", ALLOWED_IF("NumericEquals", "aws:EpochTime", 1796300000.0), ctx(), A),
    ("NumericNotEquals", ALLOWED_IF("NumericNotEquals", "aws:EpochTime", 1796300000), ctx(), I),
    ("DateLessThan", ALLOWED_IF("DateLessThan", "aws:CurrentTime", "2027-01-01T00:00:00Z"),
     ctx(), A),
    ("DateGreaterThan", ALLOWED_IF("DateGreaterThan", "aws:CurrentTime", "2027-01-01T00:00:00Z"),
     ctx(), I),
    ("DateEquals, epoch against ISO", ALLOWED_IF("DateEquals", "aws:CurrentTime", 1796300000),
     ctx(), A),
    ("DateNotEquals", ALLOWED_IF("DateNotEquals", "aws:CurrentTime", "2026-12-03T12:13:20+00:00"),
     ctx(), I),
    ("DateGreaterThanEquals", ALLOWED_IF("DateGreaterThanEquals", "aws:EpochTime",
                                         "2026-12-03T12:13:20Z"), ctx(), A),
    ("DateLessThanEquals", ALLOWED_IF("DateLessThanEquals", "aws:EpochTime", "2026-12-01"), ctx(), I),
    ("Bool true (JSON)", ALLOWED_IF("Bool", "aws:SecureTransport", True), ctx(), A),
    ("Bool false", ALLOWED_IF("Bool", "aws:SecureTransport", "false"), ctx(), I),
    ("deny Bool false over plain HTTP", [allow(), deny(**when("Bool", "aws:SecureTransport",
                                                              "false"))],
     ctx(SecureTransport="false"), E),
    ("BinaryEquals", ALLOWED_IF("BinaryEquals", "aws:UserAgent", "Y3VybC84LjUuMA=="), ctx(), A),
    ("ArnLike", ALLOWED_IF("ArnLike", "aws:SourceArn", "arn:aws:lambda:*:*:function:f*"),
     ctx(SourceArn="arn:aws:lambda:us-east-1:123456789012:function:front"), A),
    ("ArnEquals, a pattern of fewer than six parts", ALLOWED_IF("ArnEquals", "aws:SourceArn", "arn:aws:lambda:*"),
     ctx(SourceArn="arn:aws:lambda:us-east-1:123456789012:function:front"), I),
    ("ArnNotLike", ALLOWED_IF("ArnNotLike", "aws:SourceArn", "arn:aws:lambda:*:*:function:f*"),
     ctx(SourceArn="arn:aws:lambda:us-east-1:123456789012:function:front"), I),
    ("ArnNotEquals, absent key", ALLOWED_IF("ArnNotEquals", "aws:SourceArn", "arn:aws:s3:::b"),
     ctx(), A),
    # -- several conditions -----------------------------------------------------------------
    ("two keys ANDed, both hold", [allow(Condition={"StringEquals": {
        "aws:SourceVpc": VPC, "aws:SourceVpce": VPCE}})], ctx(), A),
    ("two keys ANDed, one fails", [allow(Condition={"StringEquals": {
        "aws:SourceVpc": VPC, "aws:SourceVpce": "vpce-1"}})], ctx(), I),
    ("two operators ANDed", [allow(Condition={"StringEquals": {"aws:SourceVpc": VPC},
                                              "IpAddress": {"aws:VpcSourceIp": "10.9.0.0/16"}})],
     ctx(), I),
]


@pytest.mark.parametrize("name,statements,context,expected", TABLE, ids=[r[0] for r in TABLE])
def test_evaluation_table(name, statements, context, expected) -> None:
    policy = {"Version": "2012-10-17", "Statement": statements}
    assert rp.problems(policy) == []
    assert rp.evaluate(policy, context) == expected
    # the same once expanded, as the coordinator's compile writes it
    assert rp.evaluate(rp.expand_resources(policy, "us-east-1", "123456789012", "a1b2c3d4e5"),
                       context) == expected


def test_the_table_is_long_enough_and_covers_every_operator() -> None:
    assert len(TABLE) >= 40
    used = {op for _, statements, _, _ in TABLE for s in statements
            for op in s.get("Condition", {})}
    bases = {rp._split_operator(op)[1] for op in used}
    assert bases == set(rp._OPERATORS) | {"Null"}
    assert {p for op in used for p in rp._SET_PREFIXES if op.startswith(p)} == set(rp._SET_PREFIXES)
    assert any(op.endswith("IfExists") for op in used)
    assert {r[3] for r in TABLE} == {A, E, I}


def test_no_policy_is_implicit_deny() -> None:
    assert rp.evaluate(None, ctx()) == I


def test_a_statement_object_not_in_a_list() -> None:
    assert rp.evaluate({"Statement": allow()}, ctx()) == A


def bad_condition(operator: str, key: str, value: object, reason: str) -> tuple:
    """A row of PROBLEMS: a policy whose one condition is wrong, where, and why."""
    path = f"Statement[0].Condition.{operator}"
    if reason != "unknown condition operator":
        path += f".{key}"
    return {"Statement": [allow(**when(operator, key, value))]}, path, reason


PROBLEMS = [
    ({"Statement": [{**allow(), "Effect": "Permit"}]}, "Statement[0].Effect", "not Allow or Deny"),
    ({"Statement": [{**allow(), "Action": "s3:GetObject"}]}, "Statement[0].Action",
     "not an execute-api action"),
    ({"Statement": [{**allow(), "Action": ["execute-api:Invoke", "execute-api:Nope*"]}]},
     "Statement[0].Action[1]", "not an execute-api action"),
    ({"Statement": [{**allow(), "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]},
     "Statement[0].Principal", "is not \"*\""),
    ({"Statement": [{**allow(), "NotPrincipal": {"AWS": "*"}}]}, "Statement[0].NotPrincipal",
     "not supported"),
    ({"Statement": [allow("arn:aws:s3:::bucket/*")]}, "Statement[0].Resource",
     "not an execute-api resource"),
    bad_condition("StringEqualz", "aws:SourceVpc", VPC, "unknown condition operator"),
    bad_condition("ForAnyValue:Null", "aws:SourceVpc", "true", "unknown condition operator"),
    bad_condition("StringEquals", "aws:PrincipalArn", "x", "not a condition key"),
    bad_condition("IpAddress", "aws:SourceIp", "10.0.0.0/33", "not a value IpAddress can compare"),
    bad_condition("NumericLessThan", "aws:EpochTime", "soon", "can compare"),
    bad_condition("DateLessThan", "aws:CurrentTime", "tomorrow", "can compare"),
    bad_condition("Bool", "aws:SecureTransport", "yes", "can compare"),
    bad_condition("Null", "aws:Referer", "maybe", "Null takes true or false"),
    ({"Statement": [allow("execute-api:/${aws:SourceVpc}/*")]}, "Statement[0]",
     "policy variables"),
    ({"Statement": [{**allow(), "NotAction": "execute-api:Invoke"}]}, "Statement[0].Action",
     "exactly one of Action and NotAction"),
    ({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke"}]},
     "Statement[0].Resource", "exactly one of Resource and NotResource"),
    ({"Statement": [{**allow(), "Sidd": "x"}]}, "Statement[0].Sidd", "unknown statement element"),
    ({"Version": "2020-01-01", "Statement": [allow()]}, "Version", "not one of"),
    ({"Version": "2012-10-17"}, "Statement", "at least one statement"),
    ({"Statement": [allow([f"{API}/prod/GET/{'x' * 100}/{i}" for i in range(80)])]}, "",
     "over API Gateway's 8192"),
]


@pytest.mark.parametrize("policy,path,reason", PROBLEMS, ids=[p[1] + ":" + p[2] for p in PROBLEMS])
def test_problems_name_the_field(policy, path, reason) -> None:
    found = rp.problems(policy)
    assert any(p == path and reason in r for p, r in found), found
    with pytest.raises(rp.PolicyError) as refused:
        rp.Policy(policy)
    assert refused.value.problems == found


def test_size_limit_counts_compact_json() -> None:
    statement = allow(f"{API}/prod/GET/")
    base = len(json.dumps({"Statement": [{**statement, "Sid": ""}]}, separators=(",", ":")))
    at_limit = {"Statement": [{**statement, "Sid": "s" * (rp.MAX_POLICY_CHARS - base)}]}
    assert rp.problems(at_limit) == []
    over = {"Statement": [{**statement, "Sid": "s" * (rp.MAX_POLICY_CHARS - base + 1)}]}
    assert rp.problems(over)[0][0] == ""


def test_expand_resources_writes_full_arns_and_leaves_the_rest() -> None:
    policy = {"Statement": [allow("execute-api:/*"),
                            deny(["execute-api:/prod/POST/orders", f"{API}/test/*", "*"])]}
    expanded = rp.expand_resources(policy, "us-east-1", "123456789012", "a1b2c3d4e5")
    assert expanded["Statement"][0]["Resource"] == API + "/*"
    assert expanded["Statement"][1]["Resource"] == [API + "/prod/POST/orders", API + "/test/*", "*"]
    assert policy["Statement"][0]["Resource"] == "execute-api:/*"       # a copy
    assert rp.expand_resources({"Statement": allow()}, "cn-north-1", "1", "x")["Statement"][
        "Resource"] == "arn:aws-cn:execute-api:cn-north-1:1:x/*"
