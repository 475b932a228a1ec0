"""API Gateway's front end for real, in scratch namespaces (`tfe<pid>-…`): curl and raw
sockets against `python -m dataplane.services.apigw`, backends made of http.server.

    tfe<pid>-fe    lo: 10.99.0.1 (the front end, :80 and :443), 10.99.0.2 (a backend
                   in API Gateway's own namespace, as a REST link's endpoint ENI is),
                   10.99.0.3 (nothing listens: connections are refused)
    tfe<pid>-link  lo: 10.98.0.5 (a backend reached only through this namespace, as an
                   HTTP API's V2 link is), 10.98.0.6 (nothing listens)

Nothing here touches the root namespace: every socket is opened inside these two.
"""
from __future__ import annotations

import datetime
import json
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dataplane.forwarder import control
from netns_setup import nsenter
from netns_setup.scratch import Scratch

from .http_text import parse_response

pytestmark = pytest.mark.root
HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
BACKEND = HERE / "apigw_backend.py"
FE, REST_BACKEND, NOBODY = "10.99.0.1", "10.99.0.2", "10.99.0.3"
LINK_BACKEND, LINK_NOBODY = "10.98.0.5", "10.98.0.6"
REST_ID, HTTP_ID, LIMITED_ID = "a1b2c3d4e5", "f6g7h8i9j0", "k1l2m3n4o5"
REST_HOST = f"{REST_ID}.execute-api.us-east-1.amazonaws.com"
HTTP_HOST = f"{HTTP_ID}.execute-api.us-east-1.amazonaws.com"
LIMITED_HOST = f"{LIMITED_ID}.execute-api.us-east-1.amazonaws.com"
HEADER_TIMEOUT_S = 1.0


def route(key: str, link: str, addresses: list[str], uri: str | None = None,
          timeout_ms: int = 29000, host: str = "orders.shop.internal") -> dict:
    return {"key": key, "link": link, "uri": uri, "timeout_ms": timeout_ms, "host": host,
            "addresses": addresses, "port": 8080}


def config(tmp: pathlib.Path, link_ns: str) -> dict:
    shop = "http://orders.shop.internal"
    return {
        "version": 1, "lab": "tfe", "region": "us-east-1", "account_id": "123456789012",
        "listeners": [{"address": FE, "port": 80, "tls": False},
                      {"address": FE, "port": 443, "tls": True}],
        "tls": {"cert": str(tmp / "server.crt"), "key": str(tmp / "server.key")},
        "socket": str(tmp / "apigw.sock"), "log_dir": str(tmp / "logs"),
        "account_throttle": {"rate": 10000, "burst": 5000},
        "links": {
            "rest-link": {"id": "vpclink-rest", "type": "REST", "state": "AVAILABLE",
                          "message": None, "netns": None},
            "app-link": {"id": "vpclink-app", "type": "HTTP", "state": "AVAILABLE",
                         "message": None, "netns": link_ns},
            "bad-link": {"id": "vpclink-bad", "type": "REST", "state": "FAILED",
                         "message": "NLB is already associated with another VPC Endpoint Service",
                         "netns": None}},
        "apis": [
            {"id": REST_ID, "name": "orders", "type": "REST", "stages": ["prod"], "throttle": None,
             "routes": [
                 route("ANY /orders/{proxy+}", "rest-link", [REST_BACKEND], f"{shop}/{{proxy}}"),
                 route("GET /slow/{ms}", "rest-link", [REST_BACKEND], f"{shop}/sleep/{{ms}}",
                       timeout_ms=300),
                 route("GET /refused", "rest-link", [NOBODY], f"{shop}/refused"),
                 route("GET /broken", "bad-link", [REST_BACKEND], f"{shop}/broken"),
                 route("GET /junk", "rest-link", [REST_BACKEND], f"{shop}/junk/x")]},
            {"id": HTTP_ID, "name": "catalog", "type": "HTTP", "stages": ["$default", "test"],
             "throttle": None,
             "routes": [
                 route("GET /items/{id}", "app-link", [LINK_BACKEND], host="web-nlb.elb"),
                 route("ANY /{proxy+}", "app-link", [LINK_BACKEND], host="web-nlb.elb"),
                 route("GET /sleep/{ms}", "app-link", [LINK_BACKEND], timeout_ms=300,
                       host="web-nlb.elb"),
                 route("GET /refused", "app-link", [LINK_NOBODY], host="web-nlb.elb")]},
            {"id": LIMITED_ID, "name": "limited", "type": "HTTP", "stages": ["$default"],
             "throttle": {"rate": 1, "burst": 2},
             "routes": [route("GET /x", "app-link", [LINK_BACKEND], host="web-nlb.elb")]},
        ]}


def make_certificates(tmp: pathlib.Path) -> None:
    """A CA and a server certificate for *.execute-api.us-east-1.amazonaws.com."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tfe test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, REST_HOST)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("*.execute-api.us-east-1.amazonaws.com")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                                     + ca.public_bytes(serialization.Encoding.PEM))
    (tmp / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


def start(ns: str, *cmd: str, ready: str) -> subprocess.Popen:
    """A process inside `ns`, once it printed a line starting with `ready`."""
    proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    line = proc.stdout.readline()
    if not line.startswith(ready):
        proc.kill()
        raise AssertionError(f"{cmd} did not start: {line}{proc.stderr.read()}")
    return proc


class Lab:
    def __init__(self, scratch: Scratch, tmp: pathlib.Path, fe: subprocess.Popen) -> None:
        self.ns, self.link_ns = scratch.name("fe"), scratch.name("link")
        self.tmp, self.fe = tmp, fe
        self.socket = str(tmp / "apigw.sock")

    def curl(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns, "curl", "-sS", "--max-time",
                               "15", *args], capture_output=True, text=True, timeout=timeout)

    def get(self, host: str, path: str, *args: str) -> tuple[int, dict[str, str], str]:
        """(status, headers lower-cased, body) of one request over plain HTTP."""
        proc = self.curl("-i", "-H", f"Host: {host}", *args, f"http://{FE}{path}")
        assert proc.returncode == 0, proc.stderr
        return parse_response(proc.stdout)

    def raw(self, fn) -> object:
        """`fn()` run in a child inside the front end's namespace (raw-socket clients)."""
        return nsenter.in_netns(self.ns, fn)

    def stats(self) -> dict:
        return control.call(self.socket, "stats", timeout=5)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("apigw")
    make_certificates(tmp)
    with Scratch("tfe-") as scratch:
        fe, link = scratch.namespace("fe"), scratch.namespace("link")
        for address in (FE, REST_BACKEND, NOBODY):
            scratch.address(fe, "lo", address, 32)
        for address in (LINK_BACKEND, LINK_NOBODY):
            scratch.address(link, "lo", address, 32)
        (tmp / "apigw.json").write_text(json.dumps(config(tmp, link)))
        backends = [start(fe, sys.executable, str(BACKEND), REST_BACKEND, "8080", ready="ready"),
                    start(link, sys.executable, str(BACKEND), LINK_BACKEND, "8080", ready="ready")]
        front = start(fe, sys.executable, "-m", "dataplane.services.apigw", "--config",
                      str(tmp / "apigw.json"), "--header-timeout", str(HEADER_TIMEOUT_S),
                      ready="apigw ")
        try:
            yield Lab(scratch, tmp, front)
        finally:
            for proc in [front, *backends]:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)
                proc.stdout.close()
                proc.stderr.close()


def alive(lab: Lab) -> None:
    assert lab.fe.poll() is None, lab.fe.stderr.read()
    assert control.call(lab.socket, "ping", timeout=5)["pid"] == lab.fe.pid


# ---- proxying ---------------------------------------------------------------------------------

def test_rest_request_reaches_the_backend_rewritten(lab: Lab) -> None:
    status, headers, body = lab.get(REST_HOST, "/prod/orders/42/lines?x=1",
                                    "-H", "User-Agent: tfe-client", "-H", "X-Forwarded-For: 192.0.2.9")
    assert status == 200, body
    seen = json.loads(body)
    sent = {k.lower(): v for k, v in seen["headers"]}
    assert seen["path"] == "/42/lines?x=1"             # uri /{proxy} + the query
    assert sent["host"] == "orders.shop.internal"
    assert sent["x-amzn-apigateway-api-id"] == REST_ID
    assert sent["user-agent"] == "tfe-client"
    assert sent["x-forwarded-for"] == f"192.0.2.9, {FE}"
    assert sent["x-forwarded-proto"] == "http" and sent["x-forwarded-port"] == "80"
    assert sent["x-amzn-trace-id"].startswith("Root=1-")
    assert headers["x-amzn-remapped-server"] == "apigw-test-backend"
    assert "x-amzn-remapped-content-length" in headers and "x-amzn-remapped-date" in headers
    assert len(headers["x-amzn-requestid"]) == 36 and headers["x-amz-apigw-id"].endswith("=")
    assert headers["content-length"] == str(len(body))


def test_http_api_keeps_the_stage_and_goes_through_the_link_namespace(lab: Lab) -> None:
    status, headers, body = lab.get(HTTP_HOST, "/test/items/7?q=a%20b")
    assert status == 200, body
    seen = json.loads(body)
    sent = {k.lower(): v for k, v in seen["headers"]}
    assert seen["path"] == "/test/items/7?q=a%20b"
    assert sent["host"] == "web-nlb.elb"
    assert sent["forwarded"] == f"by={FE};for={FE};host={HTTP_HOST};proto=http"
    assert sent["x-forwarded-for"] == FE
    assert seen["peer"][0] == "10.98.0.5"   # the backend saw a connection from the link's namespace
    assert headers["apigw-requestid"].endswith("=") and "x-amzn-requestid" not in headers
    # $default takes a path whose first segment is not a stage, whole
    status, _, body = lab.get(HTTP_HOST, "/other/thing")
    assert status == 200 and json.loads(body)["path"] == "/other/thing"


def test_chunked_bodies_both_ways_and_keep_alive_reuse(lab: Lab) -> None:
    proc = lab.curl("-H", f"Host: {REST_HOST}", "-H", "Transfer-Encoding: chunked",
                    "--data-binary", "x" * 5000, f"http://{FE}/prod/orders/chunked/a",
                    "-w", "\n%{num_connects}\n", "-H", f"Host: {REST_HOST}",
                    f"http://{FE}/prod/orders/chunked/b")
    assert proc.returncode == 0, proc.stderr
    first, connects1, second, connects2 = proc.stdout.strip().split("\n")
    a, b = json.loads(first), json.loads(second)
    assert a["body_len"] == 5000 and a["method"] == "POST"
    assert (connects1, connects2) == ("1", "0")          # curl kept its connection
    assert a["peer"] == b["peer"]                        # and so did the front end to the backend
    status, headers, body = lab.get(REST_HOST, "/prod/orders/head", "-I")
    assert status == 200 and body == "" and int(headers["x-amzn-remapped-content-length"]) > 0
    assert lab.get(REST_HOST, "/prod/orders/after-head")[0] == 200


# ---- errors -------------------------------------------------------------------------------------

def test_routing_errors(lab: Lab) -> None:
    status, headers, body = lab.get(REST_HOST, "/prod/nothing")
    assert (status, body) == (403, '{"message":"Missing Authentication Token"}')
    assert headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert lab.get(REST_HOST, "/beta/orders/1")[0] == 403          # unknown stage
    status, _, body = lab.get(HTTP_HOST, "/test/")
    assert (status, body) == (404, '{"message":"Not Found"}')
    status, headers, body = lab.get("zzzzzzzzzz.execute-api.us-east-1.amazonaws.com", "/prod/x")
    assert (status, body, headers["x-amzn-errortype"]) == (403, '{"message":"Forbidden"}',
                                                             "ForbiddenException")


def test_integration_failures(lab: Lab) -> None:
    status, _, body = lab.get(REST_HOST, "/prod/refused")
    assert (status, body) == (500, '{"message": "Internal server error"}')
    status, _, body = lab.get(REST_HOST, "/prod/broken")
    assert (status, body) == (500, '{"message": "Internal server error"}')
    status, _, body = lab.get(REST_HOST, "/prod/junk")           # the backend answers junk
    assert (status, body) == (500, '{"message": "Internal server error"}')
    status, _, body = lab.get(REST_HOST, "/prod/orders/close/now")  # it closes without a word
    assert (status, body) == (500, '{"message": "Internal server error"}')
    status, _, body = lab.get(HTTP_HOST, "/refused")
    assert (status, body) == (503, '{"message":"Service Unavailable"}')
    log = (lab.tmp / "logs" / "catalog" / "$default.log").read_text().splitlines()
    refused = [json.loads(line) for line in log if '"/refused"' in line or "refused" in line]
    assert refused and refused[-1]["status"] == "503"
    assert "10.98.0.6:8080" in refused[-1]["integrationErrorMessage"]
    rest_log = (lab.tmp / "logs" / "orders" / "prod.log").read_text()
    assert '"GET /broken HTTP/1.1" 500 36 ' in rest_log


def test_timeouts(lab: Lab) -> None:
    started = time.monotonic()
    status, _, body = lab.get(REST_HOST, "/prod/slow/2000")
    assert (status, body) == (504, '{"message": "Endpoint request timed out"}')
    status, _, body = lab.get(HTTP_HOST, "/sleep/2000")
    assert (status, body) == (503, '{"message":"Service Unavailable"}')
    assert time.monotonic() - started < 3.5         # each answered at its 300 ms deadline
    assert lab.get(REST_HOST, "/prod/slow/10")[0] == 200


def test_body_over_10_mb_is_413(lab: Lab) -> None:
    big = lab.tmp / "big.bin"
    big.write_bytes(b"x" * (11 * 1024 * 1024))
    proc = lab.curl("-i", "-H", f"Host: {REST_HOST}", "--data-binary", f"@{big}",
                    f"http://{FE}/prod/orders/upload")
    status, headers, body = parse_response(proc.stdout)
    assert status == 413
    assert body == "HTTP content length exceeded 10485760 bytes."
    assert headers["content-type"] == "text; charset=utf-8"
    assert "x-amzn-requestid" not in headers


def test_oversize_head_is_431(lab: Lab) -> None:
    status, _, body = lab.get(REST_HOST, "/prod/orders/1", "-H", "X-Big: " + "y" * 10_300)
    assert status == 431 and "Request Header Fields Too Large" in body
    assert lab.get(REST_HOST, "/prod/orders/1", "-H", "X-Big: " + "y" * 9_000)[0] == 200


def test_throttle_429(lab: Lab) -> None:
    statuses = [lab.get(LIMITED_HOST, "/x")[0] for _ in range(4)]
    assert statuses[:2] == [200, 200] and 429 in statuses[2:]
    status, _, body = lab.get(LIMITED_HOST, "/x")
    assert (status, body) in ((429, '{"message":"Too Many Requests"}'), (200, body))


# ---- TLS -----------------------------------------------------------------------------------------

def test_tls_12_verifies_with_the_ca_and_13_only_is_refused(lab: Lab) -> None:
    resolve = f"{REST_HOST}:443:{FE}"
    proc = lab.curl("--cacert", str(lab.tmp / "ca.crt"), "--resolve", resolve,
                    "-w", "%{http_code} %{ssl_verify_result}", "-o", "/dev/null",
                    f"https://{REST_HOST}/prod/orders/tls")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "200 0"
    proc = lab.curl("--cacert", str(lab.tmp / "ca.crt"), "--resolve", resolve, "--tlsv1.3",
                    f"https://{REST_HOST}/prod/orders/tls")
    assert proc.returncode != 0


# ---- bad clients ---------------------------------------------------------------------------------

def _raw(data: bytes, close_early: bool = False, wait: float = 5.0) -> bytes:
    with socket.create_connection((FE, 80), timeout=wait) as s:
        s.sendall(data)
        if close_early:
            return b""
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except socket.timeout:
            pass
        return b"".join(chunks)


def test_bad_clients_leave_the_process_alive(lab: Lab) -> None:
    before = lab.stats()["errors"]
    reply = lab.raw(lambda: _raw(b"NOT HTTP AT ALL\r\n\r\n"))
    assert reply.startswith(b"HTTP/1.1 400 ")
    head = f"POST /prod/orders/x HTTP/1.1\r\nHost: {REST_HOST}\r\nContent-Length: 1000\r\n\r\n"
    lab.raw(lambda: _raw(head.encode() + b"only part of it", close_early=True))
    started = time.monotonic()
    reply = lab.raw(lambda: _raw(b"GET /prod/orders/x HTTP/1.1\r\nHost: slow"))   # slowloris
    assert reply == b"" and time.monotonic() - started < HEADER_TIMEOUT_S + 3
    time.sleep(0.3)
    after = lab.stats()["errors"]
    assert after["bad_request"] == before["bad_request"] + 1
    assert after["client_closed"] == before["client_closed"] + 1
    assert after["read_timeout"] == before["read_timeout"] + 1
    alive(lab)


def test_pipelined_requests_are_answered_in_order(lab: Lab) -> None:
    one = f"GET /prod/orders/p1 HTTP/1.1\r\nHost: {REST_HOST}\r\n\r\n"
    two = f"GET /prod/orders/p2 HTTP/1.1\r\nHost: {REST_HOST}\r\nConnection: close\r\n\r\n"
    reply = lab.raw(lambda: _raw((one + two).encode()))
    assert reply.count(b"HTTP/1.1 200 OK") == 2
    assert reply.index(b'"/p1"') < reply.index(b'"/p2"')


def test_stats_and_sigterm(lab: Lab) -> None:
    stats = lab.stats()
    assert stats["requests"] > 0 and stats["stages"]["orders/prod"] > 0
    assert stats["responses"]["2xx"] > 0 and stats["errors"]["timeout"] >= 2
    assert stats["gateway_errors"]["integration_timeout"] >= 2
    with pytest.raises(control.ControlError, match="unknown command 'nope'"):
        control.call(lab.socket, "nope", timeout=5)
    alive(lab)
    lab.fe.send_signal(signal.SIGTERM)
    assert lab.fe.wait(timeout=5) == 0
    assert not os.path.exists(lab.socket)
