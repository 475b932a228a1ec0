"""The ALB's personality without sockets (dataplane/services/alb): requests in, Forward
decisions and response bytes out — headers to targets (X-Forwarded-For modes, 463,
X-Amzn-Trace-Id), redirects, fixed responses, the generated pages byte for byte, the
engine's error kinds, and access-log lines."""
from __future__ import annotations

import copy
import io
import random
import re
import time

import pytest
from alb_example import CONTRACT

from dataplane.services.alb import errors, headers
from dataplane.services.alb.config import AlbConfig
from dataplane.services.alb.personality import Alb, Redirect
from dataplane.services.alb.config import Action
from dataplane.services.proxy.personality import ERRORS, Forward, Request

NOW = 1_796_300_000.0
TRACE = r"1-[0-9a-f]{8}-[0-9a-f]{24}"


def make(**changes) -> tuple[Alb, io.StringIO]:
    doc = copy.deepcopy(CONTRACT)
    doc.update(changes)
    log = io.StringIO()
    return Alb(AlbConfig.from_json(doc), rng=random.Random(3), log=log), log


@pytest.fixture
def alb() -> Alb:
    return make()[0]


def request(target: str = "/", method: str = "GET", *extra: tuple[str, str],
            host: str = "shop.example.com", port: int = 80, client: str = "192.0.2.7",
            keep_alive: bool = True, tls=False, at: float = NOW) -> Request:
    return Request(method, target, "1.1", [("Host", host), *extra], keep_alive,
                   (client, 40000), ("10.0.1.5", port), tls, at, 0.0)


def head_headers(forward: Forward) -> dict[str, str]:
    lines = forward.head.decode().split("\r\n")
    return dict(line.split(": ", 1) for line in lines[1:] if line)


def split(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    return lines[0], dict(line.split(": ", 1) for line in lines[1:]), body


# ---- forwarding --------------------------------------------------------------------------------

def test_forward_head_keeps_host_and_drops_hop_by_hop(alb: Alb) -> None:
    forward = alb.route(request("/shop?a=1", "POST", ("Connection", "keep-alive, X-Y"),
                                ("Keep-Alive", "timeout=5"), ("X-Forwarded-Proto", "ftp"),
                                ("X-Forwarded-Port", "1"), ("Content-Length", "3"),
                                ("Accept", "*/*")))
    assert isinstance(forward, Forward)
    assert forward.head.startswith(b"POST /shop?a=1 HTTP/1.1\r\nHost: shop.example.com\r\n")
    sent = head_headers(forward)
    assert "Connection" not in sent and "Keep-Alive" not in sent and "Content-Length" not in sent
    assert sent["Accept"] == "*/*"
    assert (sent["X-Forwarded-Proto"], sent["X-Forwarded-Port"]) == ("http", "80")
    assert sent["X-Forwarded-For"] == "192.0.2.7"
    assert forward.timeout_s == 60.0
    assert forward.group.addresses in (("10.0.1.4",), ("10.0.2.9",)) and forward.group.port == 8080


def test_https_listener_says_https_and_its_port_and_logs_tls() -> None:
    alb, log = make()
    tls = ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLSv1.2", "shop.example.com")
    req = request("/", port=443, tls=tls)
    forward = alb.route(req)
    sent = head_headers(forward)
    assert (sent["X-Forwarded-Proto"], sent["X-Forwarded-Port"]) == ("https", "443")
    alb.response(req, forward, 204, b"", b"")
    entry = log.getvalue()
    assert entry.startswith("https ")
    assert " ECDHE-ECDSA-AES128-GCM-SHA256 TLSv1.2 arn:" in entry
    assert '" "shop.example.com" "-" 0 ' in entry
    alb.route(request("/", "TRACE", port=443, tls=True))      # TLS details unknown: "-"
    assert log.getvalue().splitlines()[-1].split(" ")[16:18] == ["-", "-"]


@pytest.mark.parametrize("mode, client_port, sent_xff, expected", [
    ("append", False, None, "192.0.2.7"),
    ("append", False, ["198.51.100.1, 198.51.100.2"], "198.51.100.1, 198.51.100.2, 192.0.2.7"),
    ("append", False, ["198.51.100.1", "198.51.100.2"], "198.51.100.1, 198.51.100.2, 192.0.2.7"),
    ("append", True, None, "192.0.2.7:40000"),
    ("preserve", False, ["198.51.100.1"], "198.51.100.1"),
    ("preserve", False, None, None),
    ("remove", False, ["198.51.100.1"], None),
])
def test_x_forwarded_for_modes(mode, client_port, sent_xff, expected) -> None:
    alb, _ = make(xff_mode=mode, xff_client_port=client_port)
    extra = [("X-Forwarded-For", v) for v in sent_xff or []]
    sent = head_headers(alb.route(request("/", "GET", *extra)))
    assert sent.get("X-Forwarded-For") == expected


def test_client_port_of_an_ipv6_client_is_bracketed() -> None:
    assert headers.client_address("2001:db8::1", 443, True) == "[2001:db8::1]:443"
    assert headers.client_address("2001:db8::1", 443, False) == "2001:db8::1"


def test_463_over_30_forwarded_addresses(alb: Alb) -> None:
    thirty = ", ".join(f"198.51.100.{i}" for i in range(30))
    assert isinstance(alb.route(request("/", "GET", ("X-Forwarded-For", thirty))), Forward)
    data = alb.route(request("/", "GET", ("X-Forwarded-For", thirty), ("X-Forwarded-For", "1.2.3.4")))
    line, got, body = split(data)
    assert line == "HTTP/1.1 463 " and body == errors.page(463)
    assert alb.generated["463"] == 1
    assert headers.xff_count(["a, b", "c", " "]) == 3


@pytest.mark.parametrize("sent, expected", [
    (None, rf"Root={TRACE}"),
    ("Root=1-67891233-abcdef012345678912345678",
     rf"Self={TRACE};Root=1-67891233-abcdef012345678912345678"),
    ("Self=1-11111111-111111111111111111111111;Root=1-67891233-abcdef012345678912345678;Foo=bar",
     rf"Self={TRACE};Root=1-67891233-abcdef012345678912345678;Foo=bar"),
    ("Foo=bar", rf"Root={TRACE};Foo=bar"),
    ("Root=1-67891233-abcdef012345678912345678;" + "x" * 8000, rf"Root={TRACE}"),
])
def test_trace_id_rules(alb: Alb, sent: str | None, expected: str) -> None:
    extra = [("X-Amzn-Trace-Id", sent)] if sent else []
    value = head_headers(alb.route(request("/", "GET", *extra)))["X-Amzn-Trace-Id"]
    assert re.fullmatch(expected, value), value
    assert "1-11111111-" not in value


def test_rules_pick_the_action(alb: Alb) -> None:
    # priority 10: /api/* weighted 3:1 over api-tg (no targets: 503) and canary-tg
    answers = [alb.route(request("/api/x")) for _ in range(200)]
    canary = [a for a in answers if isinstance(a, Forward)]
    assert all(a.group.addresses == ("10.0.1.7",) for a in canary)
    assert 20 <= len(canary) <= 80                 # weight 1 of 4
    assert all(split(a)[0] == "HTTP/1.1 503 Service Temporarily Unavailable"
               for a in answers if isinstance(a, bytes))
    status_line, got, body = split(alb.route(request("/", host="admin.shop.test")))
    assert (status_line, got["Content-Type"], body) == ("HTTP/1.1 403 Forbidden", "text/plain", b"no")
    assert got["Server"] == "awselb/2.0" and got["Content-Length"] == "2"
    assert alb.stats()["listeners"]["80"]["rules"]["20"] == 1


def test_redirect_substitution(alb: Alb) -> None:
    data = alb.route(request("/old/page?x=1", "POST", ("X-Debug", "1"), host="shop.test:80"))
    status_line, got, body = split(data)
    assert status_line == "HTTP/1.1 301 Moved Permanently"
    assert got["Location"] == "http://shop.test:80/debug?x=1"
    assert body == errors.page(301)


@pytest.mark.parametrize("fields, expected", [
    ({}, "https://www.example.com:443/a/b?q=1"),
    ({"protocol": "HTTPS", "port": "8443", "path": "/new/#{path}", "query": ""},
     "https://www.example.com:8443/new/a/b"),
    ({"host": "#{host}.eu", "path": "/#{path}/x", "query": "from=#{host}&#{query}"},
     "https://www.example.com.eu:443/a/b/x?from=www.example.com&q=1"),
    ({"protocol": "HTTP", "port": "#{port}", "path": "/"}, "http://www.example.com:443/?q=1"),
])
def test_redirect_keywords(fields: dict, expected: str) -> None:
    action = Redirect(Action.from_json({"type": "redirect", "status": 302, **fields}))
    assert action.location("HTTPS", "www.example.com", 443, "/a/b", "q=1") == expected


# ---- generated answers ---------------------------------------------------------------------------

def test_error_pages_byte_exact() -> None:
    assert errors.page(502) == (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
                                b"<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
                                b"</body>\r\n</html>\r\n")
    assert len(errors.page(504)) == 132            # AWS's 504 capture: Content-Length 132
    assert b"<title>503 Service Temporarily Unavailable</title>" in errors.page(503)
    data = errors.generated(504, True, NOW)
    assert data == (b"HTTP/1.1 504 Gateway Time-out\r\nServer: awselb/2.0\r\n"
                    b"Date: Thu, 03 Dec 2026 12:13:20 GMT\r\nContent-Type: text/html\r\n"
                    b"Content-Length: 132\r\nConnection: keep-alive\r\n\r\n" + errors.page(504))


def test_trace_is_405(alb: Alb) -> None:
    status_line, got, body = split(alb.route(request("/", "TRACE")))
    assert status_line == "HTTP/1.1 405 Not Allowed" and body == errors.page(405)
    assert got["Server"] == "awselb/2.0" and got["Content-Type"] == "text/html"


def test_every_engine_kind_has_a_status() -> None:
    assert set(errors.ENGINE_STATUS) == set(ERRORS)


@pytest.mark.parametrize("kind, status", [
    ("connect_failed", 502), ("backend_closed", 502), ("backend_bad_response", 502),
    ("response_too_large", 502), ("connect_timeout", 504), ("timeout", 504)])
def test_backend_failures(kind: str, status: int) -> None:
    alb, log = make()
    req = request("/x", at=time.time())
    forward = alb.route(req)
    target = forward.context.target
    assert target.outstanding == 1
    data = alb.error(kind, req, forward, "detail")
    assert split(data)[0].startswith(f"HTTP/1.1 {status} ") and target.outstanding == 0
    fields = log.getvalue().split(" ")
    assert (fields[4], fields[6], fields[8], fields[9]) == (target.address, "-1", str(status), "-")
    assert 0.0 <= float(fields[5]) < 0.1        # routing took that long (a busy machine: > 0)


@pytest.mark.parametrize("kind, status", [
    ("bad_request", 400), ("head_too_large", 400), ("unsupported_transfer_coding", 501),
    ("read_timeout", 408), ("body_too_large", 413)])
def test_front_door_refusals(kind: str, status: int) -> None:
    alb, log = make()
    data = alb.error(kind, None, None, "detail")
    line, got, body = split(data)
    assert line.startswith(f"HTTP/1.1 {status} ") and body == errors.page(status)
    assert got["Connection"] == "close"
    assert log.getvalue().split(" ")[8] == str(status)
    assert alb.error("client_closed", None, None, "gone") is None


def test_client_that_leaves_is_logged_460(alb: Alb) -> None:
    alb, log = make()
    req = request("/x")
    forward = alb.route(req)
    alb.closed(req, forward, "reset")
    assert forward.context.target.outstanding == 0 and alb.generated["460"] == 1
    assert log.getvalue().split(" ")[8] == "460"


def test_response_and_access_log_line(alb: Alb) -> None:
    alb, log = make()
    req = request("/page?a=1", "GET", ("User-Agent", "curl/8"), ("X-Forwarded-For", "10.9.9.9"),
                  at=NOW + 0.25)
    forward = alb.route(req)
    data = alb.response(req, forward, 200, b"Content-Type: text/plain\r\n"
                        b"Transfer-Encoding: chunked\r\nconnection: keep-alive\r\n"
                        b"Server: target\r\nContent-Length: 5\r\n", b"hello")
    status_line, got, body = split(data)
    assert (status_line, body, got["Server"], got["Content-Length"]) == \
        ("HTTP/1.1 200 OK", b"hello", "target", "5")
    assert "Transfer-Encoding" not in got and got["Connection"] == "keep-alive"
    assert data.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: target\r\n"
                           b"Content-Length: 5\r\nConnection: keep-alive\r\n\r\nhello")
    entry = log.getvalue()
    assert entry.endswith('"-" "-"\n') and entry.count("\n") == 1
    fields = entry.split(" ")
    assert fields[0] == "http" and fields[2] == "app/web-alb/50dc6c495c0c9188"
    assert fields[3] == "192.0.2.7:40000" and fields[4] == forward.context.target.address
    assert (fields[8], fields[9]) == ("200", "200") and int(fields[11]) == len(data)
    assert '"GET http://shop.example.com:80/page?a=1 HTTP/1.1" "curl/8" - - ' \
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-tg/" in entry
    assert re.search(r' 0 2026-12-03T12:13:20\.250000Z "forward" "-" "-" "10\.0\.[12]\.[49]:8080" '
                     r'"200" "-" "-"\n$', entry), entry


def test_head_response_keeps_the_targets_length(alb: Alb) -> None:
    req = request("/", "HEAD")
    forward = alb.route(req)
    got = split(alb.response(req, forward, 200, b"content-length:  1234\r\n", b""))[1]
    assert got["Content-Length"] == "1234"


@pytest.mark.parametrize("request_line, user_agent, trace, tls", [
    ("GET http://a:80/x HTTP/1.1", "curl/8", "Root=1-67891233-abcdef012345678912345678", None),
    ('GET http://a:80/"q"\\ HTTP/1.1', 'a "b" \\c', 'Self=1-1-2;Root=x;My="1"',
     ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLSv1.2", "shop.example.com")),
    ("GET http://a:80/ HTTP/1.0", None, "Root=1-2-3", ("AES128-SHA", "TLSv1.2", None)),
])
def test_a_forwarded_line_is_the_general_line(request_line, user_agent, trace, tls) -> None:
    """accesslog.forwarded (the answered request's line, made with fewer steps) writes what
    accesslog.line writes for the same request, byte for byte — also for negative times
    (a clock step) and text that needs escaping."""
    from dataplane.services.alb import accesslog
    args = ("https", NOW + 0.123456, "app/x/1", "192.0.2.7:40000", "10.0.2.20:8080")
    times = (0.0004, -0.001, 1.5)
    rest = (98, 310, request_line, user_agent, tls, "arn:aws:tg", trace, 10, NOW - 0.5)
    general = accesslog.line(*args, *times, 201, 201, rest[0], rest[1], rest[2], rest[3],
                             rest[4], rest[5], rest[6], rest[7], rest[8], "forward", None)
    assert accesslog.forwarded(*args, *times, 201, *rest) == general
