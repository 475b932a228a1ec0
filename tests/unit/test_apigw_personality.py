"""API Gateway's personality without sockets: requests in, Forward decisions and response
bytes out — error mapping (dataplane/services/apigw/errors.py), throttling, access log lines."""
from __future__ import annotations

import copy
import json
import re

import pytest
from apigw_example import CONTRACT

from dataplane.services.apigw import accesslog, errors
from dataplane.services.apigw.config import ApigwConfig
from dataplane.services.apigw.personality import ApiGateway
from dataplane.services.apigw.throttle import TokenBucket, admit
from dataplane.services.proxy.personality import Forward, Request

REST_HOST = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
HTTP_HOST = "f6g7h8i9j0.execute-api.us-east-1.amazonaws.com"
NOW = 1_796_300_000.0


@pytest.fixture
def gateway(tmp_path):
    doc = copy.deepcopy(CONTRACT)
    doc["log_dir"] = str(tmp_path)
    doc["apis"][0]["routes"].append({**doc["apis"][0]["routes"][0], "key": "GET /broken",
                                     "link": "bad-link"})
    gw = ApiGateway(ApigwConfig.from_json(doc))
    yield gw
    gw.close()


def request(host: str, target: str, method: str = "GET", *extra: tuple[str, str],
            keep_alive: bool = True) -> Request:
    return Request(method, target, "1.1", [("Host", host), *extra], keep_alive,
                   ("10.9.0.2", 40000), ("203.0.113.1", 443), True, NOW, 0.0)


def split(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    return int(lines[0].split()[1]), dict(line.split(": ", 1) for line in lines[1:]), body


def log_lines(tmp_path, api: str, stage: str) -> list[str]:
    return (tmp_path / api / f"{stage}.log").read_text().splitlines()


def test_rest_forward(gateway: ApiGateway, tmp_path) -> None:
    forward = gateway.route(request(REST_HOST + ":443", "/prod/orders/7/lines?a=1", "POST"))
    assert isinstance(forward, Forward)
    assert forward.head.startswith(b"POST /7/lines?a=1 HTTP/1.1\r\nHost: orders.shop.internal\r\n")
    assert forward.timeout_s == 29.0
    assert forward.group.addresses == ("10.0.0.5", "10.0.16.5") and forward.group.netns is None
    assert b"X-Forwarded-Port: 443\r\nX-Forwarded-Proto: https\r\n" in forward.head
    data = gateway.response(request(REST_HOST, "/prod/orders/7/lines", "POST"), forward, 200,
                            b"Content-Type: text/plain\r\n", b"fine")
    status, got, body = split(data)
    assert (status, body, got["Content-Type"]) == (200, b"fine", "text/plain")
    line, = log_lines(tmp_path, "orders", "prod")
    assert re.fullmatch(r'10\.9\.0\.2 - - \[03/Dec/2026:12:13:20 \+0000\] "POST /orders/\{proxy\+\} '
                        r'HTTP/1\.1" 200 4 [0-9a-f-]{36} [A-Za-z0-9+/]{15}=', line)


def test_http_api_forward_keeps_the_stage_and_uses_the_links_namespace(gateway, tmp_path) -> None:
    forward = gateway.route(request(HTTP_HOST, "/test/items/9?q=1"))
    assert forward.head.startswith(b"GET /test/items/9?q=1 HTTP/1.1\r\n"
                                   b"Host: web-nlb-0123456789abcdef.elb.us-east-1.amazonaws.com\r\n")
    assert forward.group.netns == "demo.apigw.app-link" and forward.timeout_s == 30.0
    gateway.response(request(HTTP_HOST, "/test/items/9"), forward, 200, b"", b"{}")
    entry = json.loads(log_lines(tmp_path, "catalog", "test")[0])
    assert entry["routeKey"] == "GET /items/{id}" and entry["status"] == "200"
    assert entry["responseLength"] == "2" and entry["integrationErrorMessage"] == "-"
    assert entry["integrationLatency"].isdigit() and entry["protocol"] == "HTTP/1.1"


# (host, target, method) -> (status, body, x-amzn-ErrorType or None, log file or None)
ROUTING_ERRORS = [
    ("other.example.com", "/prod/orders/1", "GET", 403, b'{"message":"Forbidden"}', "ForbiddenException", None),
    (REST_HOST, "/beta/orders/1", "GET", 403, b'{"message":"Missing Authentication Token"}',
     "MissingAuthenticationTokenException", None),                     # no stage: no log line
    (REST_HOST, "/prod/nothing", "GET", 403, b'{"message":"Missing Authentication Token"}',
     "MissingAuthenticationTokenException", ("orders", "prod")),
    (HTTP_HOST, "/test/nothing", "GET", 404, b'{"message":"Not Found"}', None, ("catalog", "test")),
    (HTTP_HOST, "/items/1", "POST", 404, b'{"message":"Not Found"}', None, ("catalog", "$default")),
    (REST_HOST, "/prod/broken", "GET", 500, b'{"message": "Internal server error"}',
     "InternalServerErrorException", ("orders", "prod")),
]


@pytest.mark.parametrize("host,target,method,status,body,error_type,log", ROUTING_ERRORS)
def test_routing_errors(gateway, tmp_path, host, target, method, status, body, error_type, log):
    data = gateway.route(request(host, target, method))
    got_status, got, got_body = split(data)
    assert (got_status, got_body) == (status, body)
    assert got.get("x-amzn-ErrorType") == error_type
    assert got["Content-Length"] == str(len(body)) and got["Content-Type"] == "application/json"
    if host == HTTP_HOST:
        assert "apigw-requestid" in got and "x-amzn-RequestId" not in got
    else:
        assert "x-amzn-RequestId" in got and "x-amz-apigw-id" in got
    if log:
        assert len(log_lines(tmp_path, *log)) == 1


def test_failed_link_logs_its_message(gateway, tmp_path) -> None:
    forward = gateway.route(request(HTTP_HOST, "/items/1"))
    gateway.error("connect_failed", request(HTTP_HOST, "/items/1"), forward, "10.0.1.6:80: refused")
    entry = json.loads(log_lines(tmp_path, "catalog", "$default")[0])
    assert entry["status"] == "503" and entry["integrationErrorMessage"] == "10.0.1.6:80: refused"


# engine kind -> (REST status, REST body), (HTTP status, HTTP body)
ENGINE_ERRORS = [
    ("connect_failed", 500, b'{"message": "Internal server error"}', 503, b'{"message":"Service Unavailable"}'),
    ("backend_closed", 500, b'{"message": "Internal server error"}', 503, b'{"message":"Service Unavailable"}'),
    ("backend_bad_response", 500, b'{"message": "Internal server error"}', 500, b'{"message":"Internal Server Error"}'),
    ("response_too_large", 500, b'{"message": "Internal server error"}', 500, b'{"message":"Internal Server Error"}'),
    ("timeout", 504, b'{"message": "Endpoint request timed out"}', 503, b'{"message":"Service Unavailable"}'),
]


@pytest.mark.parametrize("kind,rest_status,rest_body,http_status,http_body", ENGINE_ERRORS)
def test_engine_errors_map_to_gateway_errors(gateway, kind, rest_status, rest_body, http_status,
                                             http_body) -> None:
    for host, target, status, body in ((REST_HOST, "/prod/orders/1", rest_status, rest_body),
                                       (HTTP_HOST, "/items/1", http_status, http_body)):
        req = request(host, target)
        forward = gateway.route(req)
        assert split(gateway.error(kind, req, forward, "why"))[::2] == (status, body)


def test_front_door_refusals(gateway) -> None:
    status, got, body = split(gateway.error("body_too_large", None, None, "big"))
    assert (status, body) == (413, b"HTTP content length exceeded 10485760 bytes.")
    assert len(body) == 44 and got["Content-Type"] == "text; charset=utf-8"
    assert got["Connection"] == "close" and "x-amzn-RequestId" not in got
    assert split(gateway.error("head_too_large", None, None, ""))[0] == 431
    assert split(gateway.error("bad_request", None, None, ""))[0] == 400
    assert gateway.error("read_timeout", None, None, "") is None
    assert gateway.error("client_closed", request(REST_HOST, "/"), None, "") is None


def test_client_request_id_overrides_rest_request_id(gateway) -> None:
    data = gateway.route(request(REST_HOST, "/prod/nothing", "GET", ("x-amzn-RequestId", "123344566")))
    assert split(data)[1]["x-amzn-RequestId"] == "123344566"


def test_throttle_per_stage_then_account(gateway, tmp_path) -> None:
    statuses = [gateway.route(request(HTTP_HOST, "/items/1")) for _ in range(60)]
    refused = [s for s in statuses if isinstance(s, bytes)]
    assert len(statuses) - len(refused) >= 50        # the stage's burst of 50 (plus refill)
    assert refused and split(refused[0])[::2] == (429, b'{"message":"Too Many Requests"}')
    assert isinstance(gateway.route(request(HTTP_HOST, "/test/items/1")), Forward)  # another stage
    assert gateway.stats()["stages"]["catalog/$default"] == 60


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5) and not bucket.take(0.5)       # 2 a second: one more after 0.5 s
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]   # capped at burst
    account = TokenBucket(rate=0, burst=1, now=0.0)
    stage = TokenBucket(rate=0, burst=5, now=0.0)
    assert admit(stage, account, 0.0) and not admit(stage, account, 0.0)
    refused_stage = TokenBucket(rate=0, burst=0, now=0.0)
    spare = TokenBucket(rate=0, burst=1, now=0.0)
    assert not admit(refused_stage, spare, 0.0) and spare.take(0.0)  # the account kept its token


def test_access_log_lines() -> None:
    assert accesslog.clf_time(NOW) == "03/Dec/2026:12:13:20 +0000"
    assert accesslog.rest_line("10.0.0.1", NOW, "GET", "/pets", 200, 19, "rid", "ext=") == \
        '10.0.0.1 - - [03/Dec/2026:12:13:20 +0000] "GET /pets HTTP/1.1" 200 19 rid ext=\n'
    entry = json.loads(accesslog.http_line("id=", "10.0.0.1", NOW, "GET",
                                           accesslog.json_string('GET /a/"{b}"'), 503, 33,
                                           None, 'refused "x"\n'))
    assert list(entry) == ["requestId", "ip", "requestTime", "httpMethod", "routeKey", "status",
                           "protocol", "responseLength", "integrationLatency",
                           "integrationErrorMessage"]
    assert entry["integrationLatency"] == "-" and entry["integrationErrorMessage"] == 'refused "x"\n'
    assert entry["routeKey"] == 'GET /a/"{b}"' and entry["status"] == "503"
    assert json.loads(accesslog.http_line("i", "ip", NOW, "GET", '"-"', 200, 0, 12, None)) \
        ["integrationErrorMessage"] == "-"


def test_error_table_is_complete() -> None:
    from dataplane.services.proxy.personality import ERRORS
    assert set(errors.ENGINE_ERRORS) | set(errors.FRONT_DOOR) == set(ERRORS)
    assert set(errors.ENGINE_ERRORS.values()) <= set(errors.GATEWAY_ERRORS)
