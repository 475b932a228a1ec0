"""Private REST APIs in API Gateway's personality, without sockets: requests that carry a
PROXY header (as the private listener's do) in, decisions and response bytes out — the
three names, every 403, the resource policy's context, AWS's AccessDenied bodies byte for
byte, the headers a private API's backend gets, and the configuration's checks."""
from __future__ import annotations

import copy
import json

import pytest
from apigw_example import CONTRACT

from dataplane.services.apigw.config import ApigwConfig, ConfigError
from dataplane.services.apigw.personality import ApiGateway
from dataplane.services.proxy.personality import Forward, Request
from dataplane.services.proxy.proxy_protocol import ProxyHeader

NOW = 1_796_300_000.0
PRIVATE_ID, BARE_ID, REGIONAL_ID, HTTP_ID = "p1q2r3s4t5", "n0p0l1cy00", "a1b2c3d4e5", "f6g7h8i9j0"
VPCE, OTHER_VPCE = "vpce-0a1b2c3d4e5f60718", "vpce-0123456789abcdef0"
VPC, OTHER_VPC = "vpc-0f1e2d3c4b5a69788", "vpc-0aaaaaaaaaaaaaaaa"
EP_NAME = f"{VPCE}-ab12cd34.execute-api.us-east-1.vpce.amazonaws.com"
EP_ZONAL = f"{VPCE}-ab12cd34-us-east-1a.execute-api.us-east-1.vpce.amazonaws.com"
OTHER_EP_NAME = f"{OTHER_VPCE}-zz99yy88.execute-api.us-east-1.vpce.amazonaws.com"
ARN = f"arn:aws:execute-api:us-east-1:123456789012:{PRIVATE_ID}"
POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": f"{ARN}/*"},
    {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": f"{ARN}/*",
     "Condition": {"StringNotEquals": {"aws:SourceVpce": VPCE}}},
    {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke",
     "Resource": f"{ARN}/prod/DELETE/*"},
    {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke",
     "Resource": f"{ARN}/prod/GET/*", "Condition": {"IpAddress": {"aws:SourceIp": "10.9.9.9"}}}]}


def host(api_id: str) -> str:
    return f"{api_id}.execute-api.us-east-1.amazonaws.com"


def private_config(tmp_path) -> dict:
    doc = copy.deepcopy(CONTRACT)
    doc["log_dir"] = str(tmp_path)
    doc["listeners"].append({"address": "10.0.255.254", "port": 443, "tls": True,
                             "proxy_protocol": True})
    doc["vpc_endpoints"] = {
        VPCE: {"ref": "corp/api-ep", "vpc": "corp", "vpc_id": VPC, "private_dns": True,
               "dns_names": [EP_NAME, EP_ZONAL]},
        OTHER_VPCE: {"ref": "lab/api-ep", "vpc": "lab", "vpc_id": OTHER_VPC, "private_dns": False,
                     "dns_names": [OTHER_EP_NAME]}}
    route = copy.deepcopy(doc["apis"][0]["routes"][0])
    doc["apis"] += [
        {"id": PRIVATE_ID, "name": "private-orders", "type": "REST", "endpoint": "PRIVATE",
         "vpc_endpoints": [VPCE], "policy": copy.deepcopy(POLICY), "stages": ["prod"], "throttle": None,
         "routes": [route, {**route, "key": "ANY /"}]},
        {"id": BARE_ID, "name": "no-policy", "type": "REST", "endpoint": "PRIVATE",
         "vpc_endpoints": [], "policy": None, "stages": ["prod"], "throttle": None,
         "routes": [route]}]
    return doc


@pytest.fixture
def gateway(tmp_path):
    gw = ApiGateway(ApigwConfig.from_json(private_config(tmp_path)))
    yield gw
    gw.close()


def call(host_name: str, target: str = "/prod/orders/7", method: str = "GET",
         *extra: tuple[str, str], vpce: str | None = VPCE, command: str = "PROXY",
         public: bool = False) -> Request:
    """A request on the private listener from 10.1.1.10 through the endpoint ENI
    10.1.1.50 (the TCP peer is the endpoint service's node, 10.0.255.1), or on the public
    listener from 198.51.100.7."""
    proxy = None if public else ProxyHeader(command, *(("10.1.1.10", 40001, "10.1.1.50", 443)
                                                        if command == "PROXY" else ()),
                                            vpce=vpce)
    peer = ("198.51.100.7", 5000) if public else ("10.0.255.1", 61000)
    return Request(method, target, "1.1", [("Host", host_name), *extra], True, peer,
                   ("10.0.255.254", 443), ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLSv1.2"), NOW,
                   0.0, proxy)


def answer(data: object) -> tuple[int, dict[str, str], bytes]:
    assert isinstance(data, bytes), data
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    return int(lines[0].split()[1]), dict(line.split(": ", 1) for line in lines[1:]), body


FORBIDDEN = (403, b'{"message":"Forbidden"}')


def denied(resource: str, explicit: bool) -> bytes:
    return (b'{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on '
            b'resource: arn:aws:execute-api:us-east-1:********9012:' + resource.encode()
            + (b" with an explicit deny" if explicit else b"") + b'"}')


# -- names ------------------------------------------------------------------------------------

ALLOWED_NAMES = [
    ("private DNS name", call(host(PRIVATE_ID))),
    ("private DNS name, upper case and a port", call(host(PRIVATE_ID).upper() + ":443")),
    ("endpoint name + x-apigw-api-id", call(EP_NAME, "/prod/orders/7", "GET",
                                            ("x-apigw-api-id", PRIVATE_ID))),
    ("zonal endpoint name + x-apigw-api-id", call(EP_ZONAL, "/prod/orders/7", "GET",
                                                  ("X-Apigw-Api-Id", PRIVATE_ID))),
    ("alias <api-id>-<vpce-id>", call(host(f"{PRIVATE_ID}-{VPCE}"))),
]


@pytest.mark.parametrize("name,req", ALLOWED_NAMES, ids=[n for n, _ in ALLOWED_NAMES])
def test_each_name_form_reaches_a_private_api(gateway, name, req) -> None:
    assert isinstance(gateway.route(req), Forward)


FORBIDDEN_CALLS = [
    ("REGIONAL REST API through the endpoint", call(host(REGIONAL_ID))),
    ("HTTP API through the endpoint", call(host(HTTP_ID), "/items/1")),
    ("endpoint name without x-apigw-api-id", call(EP_NAME)),
    ("endpoint name, x-apigw-api-id of a REGIONAL API",
     call(EP_NAME, "/prod/orders/7", "GET", ("x-apigw-api-id", REGIONAL_ID))),
    ("endpoint name, unknown x-apigw-api-id",
     call(EP_NAME, "/prod/orders/7", "GET", ("x-apigw-api-id", "zzzzzzzzzz"))),
    ("another endpoint's name", call(OTHER_EP_NAME, "/prod/orders/7", "GET",
                                     ("x-apigw-api-id", PRIVATE_ID))),
    ("alias of an endpoint not associated", call(host(f"{PRIVATE_ID}-{OTHER_VPCE}"),
                                                 vpce=OTHER_VPCE)),
    ("alias naming another endpoint than the call's", call(host(f"{PRIVATE_ID}-{VPCE}"),
                                                           vpce=OTHER_VPCE)),
    ("alias of an API without that association", call(host(f"{BARE_ID}-{VPCE}"))),
    ("unknown API id", call(host("zzzzzzzzzz"))),
    ("some other host", call("example.com")),
    ("no vpce TLV", call(host(PRIVATE_ID), vpce=None)),
    ("an unknown vpce", call(host(PRIVATE_ID), vpce="vpce-11111111111111111")),
    ("a LOCAL header (health check)", call(host(PRIVATE_ID), command="LOCAL", vpce=None)),
    ("PRIVATE API on the public listener", call(host(PRIVATE_ID), public=True)),
]


@pytest.mark.parametrize("name,req", FORBIDDEN_CALLS, ids=[n for n, _ in FORBIDDEN_CALLS])
def test_forbidden(gateway, name, req) -> None:
    status, got, body = answer(gateway.route(req))
    assert (status, body) == FORBIDDEN
    assert got["x-amzn-ErrorType"] == "ForbiddenException"


def test_regional_api_still_served_on_the_public_listener(gateway) -> None:
    assert isinstance(gateway.route(call(host(REGIONAL_ID), public=True)), Forward)


# -- policies ---------------------------------------------------------------------------------

def test_explicit_deny_by_source_vpce_is_byte_exact(gateway, tmp_path) -> None:
    # the other endpoint's call, by a name that reaches the API: the policy denies it
    req = call(host(PRIVATE_ID), "/prod/orders/7", vpce=OTHER_VPCE)
    status, got, body = answer(gateway.route(req))
    assert status == 403 and body == denied(f"{PRIVATE_ID}/prod/GET/orders/7", True)
    assert got["x-amzn-ErrorType"] == "AccessDeniedException"
    assert got["Content-Length"] == str(len(body)) and got["Content-Type"] == "application/json"
    assert "x-amzn-RequestId" in got and "x-amz-apigw-id" in got
    line, = (tmp_path / "private-orders" / "prod.log").read_text().splitlines()
    assert line.startswith('10.1.1.10 - - [') and '"GET /orders/{proxy+} HTTP/1.1" 403 ' \
        f"{len(body)} " in line
    assert gateway.stats()["gateway_errors"]["access_denied"] == 1


def test_explicit_deny_by_resource(gateway) -> None:
    status, _, body = answer(gateway.route(call(host(PRIVATE_ID), "/prod/orders/7", "DELETE")))
    assert (status, body) == (403, denied(f"{PRIVATE_ID}/prod/DELETE/orders/7", True))


def test_implicit_deny_without_a_policy_and_root_resource(gateway) -> None:
    status, got, body = answer(gateway.route(call(host(BARE_ID), "/prod/orders/1")))
    assert (status, body) == (403, denied(f"{BARE_ID}/prod/GET/orders/1", False))
    assert got["x-amzn-ErrorType"] == "AccessDeniedException"


def test_method_arn_over_1600_bytes_is_414(gateway) -> None:
    base = len(f"{ARN}/prod/GET/orders/")
    assert isinstance(gateway.route(call(host(PRIVATE_ID), "/prod/orders/" + "x" * (1600 - base))),
                      Forward)
    status, got, body = answer(gateway.route(call(host(PRIVATE_ID),
                                                  "/prod/orders/" + "x" * (1601 - base))))
    assert (status, body) == (414, b'{"message":"Request URI too long"}')
    # a REGIONAL API without a policy has no such limit
    assert isinstance(gateway.route(call(host(REGIONAL_ID), "/prod/orders/" + "x" * 2000,
                                         public=True)), Forward)


def test_routing_misses_answer_before_the_policy(gateway) -> None:
    status, _, body = answer(gateway.route(call(host(BARE_ID), "/prod/nothing")))
    assert (status, body) == (403, b'{"message":"Missing Authentication Token"}')


def test_policy_context_comes_from_the_proxy_header(gateway) -> None:
    seen = []

    class Spy:
        def __init__(self, policy) -> None:
            self.policy = policy

        def evaluate(self, ctx: dict) -> str:
            seen.append(ctx)
            return self.policy.evaluate(ctx)

    api = gateway.by_id[PRIVATE_ID]
    api.policy = Spy(api.policy)
    forward = gateway.route(call(host(PRIVATE_ID), "/prod/", "GET", ("User-Agent", "curl/8"),
                                 ("Referer", "https://corp.example/"),
                                 ("X-Forwarded-For", "6.6.6.6")))
    assert isinstance(forward, Forward)                  # ANY / serves the root
    ctx, = seen
    assert ctx == {"resource": f"{ARN}/prod/GET/", "aws:SourceVpce": VPCE, "aws:SourceVpc": VPC,
                   "aws:VpcSourceIp": "10.1.1.10", "aws:SourceIp": "10.1.1.50",
                   "aws:SecureTransport": "true", "aws:UserAgent": "curl/8",
                   "aws:Referer": "https://corp.example/", "aws:EpochTime": "1796300000",
                   "aws:CurrentTime": "2026-12-03T12:13:20Z"}


def test_regional_api_with_a_policy_is_evaluated_on_the_public_listener(tmp_path) -> None:
    doc = private_config(tmp_path)
    regional = f"arn:aws:execute-api:us-east-1:123456789012:{REGIONAL_ID}"
    doc["apis"][0]["policy"] = {"Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke",
         "Resource": f"{regional}/*", "Condition": {"IpAddress": {"aws:SourceIp": "198.51.100.0/24"}}}]}
    gw = ApiGateway(ApigwConfig.from_json(doc))
    try:
        assert isinstance(gw.route(call(host(REGIONAL_ID), public=True)), Forward)
        other = call(host(REGIONAL_ID), public=True)
        other.client_ip = "203.0.113.9"
        status, _, body = answer(gw.route(other))
        assert (status, body) == (403, denied(f"{REGIONAL_ID}/prod/GET/orders/7", False))
    finally:
        gw.close()


# -- the backend's view -----------------------------------------------------------------------

def test_private_backend_headers(gateway, tmp_path) -> None:
    req = call(host(PRIVATE_ID), "/prod/orders/7?x=1", "GET", ("x-amzn-vpce-id", "vpce-spoofed"),
               ("X-Amzn-Vpc-Id", "vpc-spoofed"), ("X-Forwarded-For", "192.0.2.1"))
    forward = gateway.route(req)
    head = forward.head.decode()
    lines = head.split("\r\n")
    assert lines[0] == "GET /7?x=1 HTTP/1.1"
    sent = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(": ")
            assert name.lower() not in sent, f"{name} twice"
            sent[name.lower()] = value
    assert sent["x-amzn-vpc-id"] == VPC and sent["x-amzn-vpce-id"] == VPCE
    assert sent["x-amzn-vpce-config"] == "1"
    assert sent["x-amzn-tls-version"] == "TLSv1.2"
    assert sent["x-amzn-cipher-suite"] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert sent["x-forwarded-for"] == "192.0.2.1, 10.1.1.10"
    assert sent["x-amzn-apigateway-api-id"] == PRIVATE_ID
    gateway.response(req, forward, 200, b"", b"ok")
    line = (tmp_path / "private-orders" / "prod.log").read_text().splitlines()[-1]
    assert line.startswith("10.1.1.10 - - [") and '" 200 2 ' in line


def test_regional_backend_headers_have_no_vpc_fields(gateway) -> None:
    head = gateway.route(call(host(REGIONAL_ID), public=True)).head.decode().lower()
    assert "x-amzn-vpc" not in head and "x-forwarded-for: 198.51.100.7\r\n" in head


# -- configuration ----------------------------------------------------------------------------

def _broken(tmp_path, change) -> str:
    doc = private_config(tmp_path)
    change(doc)
    with pytest.raises(ConfigError) as refused:
        ApigwConfig.from_json(doc)
    return str(refused.value)


CONFIG_ERRORS = [
    (lambda d: d["apis"][3].update(endpoint="EDGE"), "apis[3].endpoint: 'EDGE' is not one of"),
    (lambda d: d["apis"][1].update(endpoint="PRIVATE"), "apis[1].endpoint: only a REST API"),
    (lambda d: d["apis"][0].update(vpc_endpoints=[VPCE]),
     "apis[0].vpc_endpoints: only a PRIVATE API"),
    (lambda d: d["apis"][2].update(vpc_endpoints=["vpce-nope"]),
     "apis[2].vpc_endpoints[0]: unknown VPC endpoint 'vpce-nope'"),
    (lambda d: d["apis"][2]["policy"]["Statement"][1]["Condition"].update(
        StringNotEqualz={"aws:SourceVpce": VPCE}),
     "apis[2].policy.Statement[1].Condition.StringNotEqualz: unknown condition operator"),
    (lambda d: d["apis"][2]["policy"]["Statement"][0].update(Action="s3:*"),
     "apis[2].policy.Statement[0].Action: 's3:*' is not an execute-api action"),
    (lambda d: d["vpc_endpoints"][VPCE].pop("vpc_id"), f"vpc_endpoints.{VPCE}: 'vpc_id' is missing"),
    (lambda d: d["listeners"][2].update(proxy_protocol="yes"),
     "listeners[2].proxy_protocol: 'yes' is not true or false"),
]


@pytest.mark.parametrize("change,message", CONFIG_ERRORS, ids=[m for _, m in CONFIG_ERRORS])
def test_config_errors_name_the_field(tmp_path, change, message) -> None:
    assert message in _broken(tmp_path, change)


def test_config_reads_the_contract_fields(tmp_path) -> None:
    config = ApigwConfig.from_json(private_config(tmp_path))
    assert [listener.proxy_protocol for listener in config.listeners] == [False, False, True]
    endpoint = config.vpc_endpoints[0]
    assert (endpoint.id, endpoint.vpc_id, endpoint.dns_names) == (VPCE, VPC, (EP_NAME, EP_ZONAL))
    private = config.apis[2]
    assert (private.endpoint, private.vpc_endpoints) == ("PRIVATE", (VPCE,))
    assert private.policy is not None and config.apis[3].policy is None
    assert config.apis[0].endpoint == "REGIONAL"
    json.dumps(CONTRACT)                                 # the shared example is unchanged
    assert "vpc_endpoints" not in CONTRACT


# -- the coordinator's compile writes what this front end reads ---------------------------------

def test_compiled_lab_config_is_read_and_served(tmp_path) -> None:
    from pathlib import Path

    from dataplane.compile.api_gateway import frontend_config
    from dataplane.model import loads
    from dataplane.model.api_gateway import api_id
    text = (Path(__file__).resolve().parents[2] / "examples" / "api-gateway.yaml").read_text()
    text = text.replace("vpcs:\n  shop:\n", "vpcs:\n  corp:\n    cidr: 10.1.0.0/16\n"
                        "    subnets:\n      a: {cidr: 10.1.1.0/24, az: us-east-1a}\n"
                        "    security_groups:\n      ep-443:\n        ingress:\n"
                        "          - {protocol: tcp, ports: 443, source: 10.1.0.0/16}\n"
                        "    endpoints:\n      api-ep: {service: execute-api, subnets: [a], "
                        "security_groups: [ep-443], private_dns: true}\n  shop:\n", 1)
    text = text.replace("    orders:\n      type: REST\n",
                        "    orders:\n      type: REST\n      endpoint: PRIVATE\n"
                        "      vpc_endpoints: [corp/api-ep]\n      policy:\n        Statement:\n"
                        "          - {Effect: Allow, Principal: '*', Action: execute-api:Invoke, "
                        "Resource: 'execute-api:/*'}\n"
                        "          - {Effect: Deny, Principal: '*', Action: execute-api:Invoke, "
                        "Resource: 'execute-api:/*', Condition: {StringNotEquals: "
                        "{aws:SourceVpce: corp/api-ep}}}\n", 1)
    lab = loads(text)
    doc = frontend_config(lab, str(tmp_path))
    doc["log_dir"] = str(tmp_path / "logs")
    config = ApigwConfig.from_json(doc)
    assert any(listener.proxy_protocol for listener in config.listeners)
    endpoint, = config.vpc_endpoints
    gw = ApiGateway(config)
    try:
        orders = api_id(lab.name, "orders")
        ok = call(host(orders), "/prod/orders/1", vpce=endpoint.id)
        assert isinstance(gw.route(ok), Forward)
        status, _, body = answer(gw.route(call(host(orders), "/prod/orders/1",
                                               vpce="vpce-11111111111111111")))
        assert status == 403                             # not an endpoint of the lab
        assert isinstance(gw.route(call(endpoint.dns_names[0], "/prod/orders/1", "GET",
                                        ("x-apigw-api-id", orders), vpce=endpoint.id)), Forward)
        assert isinstance(gw.route(call(host(f"{orders}-{endpoint.id}"), "/prod/orders/1",
                                        vpce=endpoint.id)), Forward)
    finally:
        gw.close()
