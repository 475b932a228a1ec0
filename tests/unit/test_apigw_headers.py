"""Header rules (dataplane/services/apigw/headers.py, AWS-FACTS-HTTP 1.4-1.5): what backends and
clients get from REST and HTTP APIs, and the IDs' forms."""
from __future__ import annotations

import re

from dataplane.services.apigw import headers

NOW = 1_796_300_000.0      # 2026-12-03


def parse(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    pairs = [tuple(line.split(": ", 1)) for line in lines[1:] if line]
    return lines[0], pairs  # type: ignore[return-value]


def names(pairs) -> list[str]:
    return [n.lower() for n, _ in pairs]


CLIENT = [("Host", "abc.execute-api.us-east-1.amazonaws.com"), ("Connection", "keep-alive"),
          ("Content-Length", "3"), ("Content-MD5", "x"), ("Expect", "100-continue"),
          ("Max-Forwards", "3"), ("TE", "trailers"), ("Transfer-Encoding", "chunked"),
          ("Upgrade", "h2c"), ("X-Custom", "kept"), ("X-Forwarded-For", "192.0.2.1"),
          ("X-Forwarded-Port", "1"), ("X-Forwarded-Proto", "gopher"),
          ("Authorization", "AWS4-HMAC-SHA256 Credential=x"), ("Forwarded", "for=192.0.2.1")]


def test_rest_backend_request() -> None:
    line, pairs = parse(headers.rest_backend_head("POST", "/42?x=1", "orders.shop.internal", CLIENT,
                                                  "a1b2c3d4e5", "10.9.0.2", 443, "https", NOW))
    sent = dict((n.lower(), v) for n, v in pairs)
    assert line == "POST /42?x=1 HTTP/1.1"
    assert sent["host"] == "orders.shop.internal"
    for dropped in ("connection", "content-length", "content-md5", "expect", "max-forwards", "te",
                    "transfer-encoding", "upgrade", "authorization"):
        assert dropped not in sent, dropped
    assert names(pairs).count("host") == 1
    assert sent["x-custom"] == "kept"
    assert sent["x-amzn-apigateway-api-id"] == "a1b2c3d4e5"
    assert sent["user-agent"] == "AmazonAPIGateway_a1b2c3d4e5"       # none came from the client
    assert sent["x-forwarded-for"] == "192.0.2.1, 10.9.0.2"
    assert (sent["x-forwarded-port"], sent["x-forwarded-proto"]) == ("443", "https")
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", sent["x-amzn-trace-id"])
    assert sent["x-amzn-trace-id"][7:15] == "%08x" % int(NOW)


def test_rest_keeps_a_plain_authorization_user_agent_and_trace() -> None:
    _, pairs = parse(headers.rest_backend_head(
        "GET", "/", "h", [("Authorization", "Bearer t"), ("User-Agent", "curl/8"),
                          ("X-Amzn-Trace-Id", "Root=1-5f84c7a9-0123456789abcdef01234567")],
        "id", "10.0.0.1", 80, "http", NOW))
    sent = dict((n.lower(), v) for n, v in pairs)
    assert sent["authorization"] == "Bearer t" and sent["user-agent"] == "curl/8"
    assert sent["x-amzn-trace-id"] == "Root=1-5f84c7a9-0123456789abcdef01234567"


def test_http_api_backend_request() -> None:
    line, pairs = parse(headers.http_backend_head("GET", "/test/items/1", "web-nlb.elb", CLIENT,
                                                  "f6.execute-api.us-east-1.amazonaws.com",
                                                  "10.9.0.2", "203.0.113.1", 80, "http", NOW))
    sent = dict((n.lower(), v) for n, v in pairs)
    assert line == "GET /test/items/1 HTTP/1.1" and sent["host"] == "web-nlb.elb"
    for dropped in ("connection", "content-length", "te", "transfer-encoding", "upgrade", "expect"):
        assert dropped not in sent, dropped
    assert sent["forwarded"] == ("for=192.0.2.1, by=203.0.113.1;for=10.9.0.2;"
                                 "host=f6.execute-api.us-east-1.amazonaws.com;proto=http")
    assert sent["x-forwarded-for"] == "192.0.2.1, 10.9.0.2"
    assert sent["x-amzn-trace-id"].startswith("Root=1-")
    assert "x-amzn-apigateway-api-id" not in sent


BACKEND = [("Server", "nginx"), ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"), ("Connection", "close"),
           ("Content-Length", "2"), ("Transfer-Encoding", "chunked"), ("Via", "1.1 x"),
           ("Content-Encoding", "gzip"), ("X-App", "1")]


def test_rest_response_remaps_and_adds_ids() -> None:
    data = headers.rest_response(201, BACKEND, b"ok", True, "rid", "ext=", NOW)
    head, body = data.split(b"\r\n\r\n")
    line, pairs = parse(head)
    got = dict((n, v) for n, v in pairs)
    assert line == "HTTP/1.1 201 Created" and body == b"ok"
    assert got["x-amzn-Remapped-Server"] == "nginx"
    assert got["x-amzn-Remapped-Date"] == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert got["x-amzn-Remapped-Connection"] == "close"
    assert got["x-amzn-Remapped-Content-Length"] == "2"
    assert got["Connection"] == "keep-alive" and got["Content-Length"] == "2"
    assert got["Content-Type"] == "application/json"                 # the default
    assert (got["x-amzn-RequestId"], got["x-amz-apigw-id"]) == ("rid", "ext=")
    for dropped in ("transfer-encoding", "via", "content-encoding", "server"):
        assert dropped not in names(pairs), dropped
    assert got["X-App"] == "1" and "X-Amzn-Trace-Id" not in got


def test_http_api_response() -> None:
    data = headers.http_response(200, BACKEND, b"ok", False, "Mc7UVioPPHcEKPA=", NOW)
    _, pairs = parse(data.split(b"\r\n\r\n")[0])
    got = dict((n.lower(), v) for n, v in pairs)
    assert got["server"] == "nginx" and got["date"] == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert got["connection"] == "close" and got["content-length"] == "2"
    assert got["apigw-requestid"] == "Mc7UVioPPHcEKPA="
    assert "transfer-encoding" not in got and names(pairs).count("connection") == 1


def test_id_forms() -> None:
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        headers.request_id())
    assert re.fullmatch(r"[A-Za-z0-9+/]{15}=", headers.extended_id())
    assert len({headers.request_id() for _ in range(1000)}) == 1000
    assert headers.http_date(NOW) == "Thu, 03 Dec 2026 12:13:20 GMT"
