"""API Gateway's front end serving private REST APIs, for real, in a scratch namespace
(`tpa<pid>-fe`): the test's own client plays the execute-api endpoint service — it writes
a PROXY protocol v2 header (built here, byte by byte, as AWS's NLB writes it) on a TCP
connection to the private listener, then does TLS 1.2 and HTTP on the same connection.

    tpa<pid>-fe   lo: 10.97.0.1   the public listener (:80, :443)
                      10.97.0.254 the private listener (:443, TLS, PROXY protocol)
                      10.97.0.2   a backend (:8080) that answers with what it saw

The calls claim to come from 10.1.1.10:40001 in VPC corp through endpoint ENI
10.1.1.50:443 (the header's source and destination); the TCP peer the front end really
sees is the test's own socket. Nothing here touches the root namespace.
"""
from __future__ import annotations

import errno
import json
import os
import pathlib
import socket
import ssl
import signal
import struct
import subprocess
import sys
import time

import pytest

from dataplane.forwarder import control
from netns_setup import nsenter
from netns_setup.scratch import Scratch

from .test_apigw_frontend import HERE, make_certificates, parse_response, start

pytestmark = pytest.mark.root
BACKEND = HERE / "apigw_backend.py"
PUBLIC, PRIVATE, BACKEND_IP = "10.97.0.1", "10.97.0.254", "10.97.0.2"
CLIENT, ENI = ("10.1.1.10", 40001), ("10.1.1.50", 443)
PRIVATE_ID, BARE_ID, REGIONAL_ID = "p1q2r3s4t5", "n0p0l1cy00", "a1b2c3d4e5"
VPCE, OTHER_VPCE = "vpce-0a1b2c3d4e5f60718", "vpce-0123456789abcdef0"
VPC, OTHER_VPC = "vpc-0f1e2d3c4b5a69788", "vpc-0aaaaaaaaaaaaaaaa"
EP_NAME = f"{VPCE}-ab12cd34.execute-api.us-east-1.vpce.amazonaws.com"
ARN = f"arn:aws:execute-api:us-east-1:123456789012:{PRIVATE_ID}"


def host(api_id: str) -> str:
    return f"{api_id}.execute-api.us-east-1.amazonaws.com"


def proxy_v2(vpce: str | None, command: int = 0x21) -> bytes:
    """A PROXY v2 header as AWS's NLB writes it for a PrivateLink flow: IPv4 TCP, the
    client and the endpoint ENI, a vpce TLV (0xEA, subtype 0x01) and NOOP padding."""
    if command == 0x20:                                   # LOCAL, no addresses
        return b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"
    tlvs = b""
    if vpce:
        value = b"\x01" + vpce.encode("ascii")
        tlvs += b"\xEA" + struct.pack("!H", len(value)) + value
    tlvs += b"\x04\x00\x05" + bytes(5)
    body = (socket.inet_aton(CLIENT[0]) + socket.inet_aton(ENI[0])
            + struct.pack("!HH", CLIENT[1], ENI[1]) + tlvs)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([command, 0x11]) + struct.pack("!H", len(body)) + body


def config(tmp: pathlib.Path) -> dict:
    route = {"key": "ANY /orders/{proxy+}", "link": "rest-link",
             "uri": "http://orders.shop.internal/{proxy}", "timeout_ms": 29000,
             "host": "orders.shop.internal", "addresses": [BACKEND_IP], "port": 8080}
    return {
        "version": 1, "lab": "tpa", "region": "us-east-1", "account_id": "123456789012",
        "listeners": [{"address": PUBLIC, "port": 80, "tls": False},
                      {"address": PUBLIC, "port": 443, "tls": True},
                      {"address": PRIVATE, "port": 443, "tls": True, "proxy_protocol": True}],
        "tls": {"cert": str(tmp / "server.crt"), "key": str(tmp / "server.key")},
        "socket": str(tmp / "apigw.sock"), "log_dir": str(tmp / "logs"),
        "links": {"rest-link": {"id": "vpclink-rest", "type": "REST", "state": "AVAILABLE",
                                "message": None, "netns": None}},
        "vpc_endpoints": {
            VPCE: {"ref": "corp/api-ep", "vpc": "corp", "vpc_id": VPC, "private_dns": True,
                   "dns_names": [EP_NAME]},
            OTHER_VPCE: {"ref": "lab/api-ep", "vpc": "lab", "vpc_id": OTHER_VPC,
                         "private_dns": True, "dns_names": []}},
        "apis": [
            {"id": PRIVATE_ID, "name": "orders", "type": "REST", "endpoint": "PRIVATE",
             "vpc_endpoints": [VPCE], "stages": ["prod"], "throttle": None, "routes": [route],
             "policy": {"Version": "2012-10-17", "Statement": [
                 {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke",
                  "Resource": f"{ARN}/*"},
                 {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke",
                  "Resource": f"{ARN}/*",
                  "Condition": {"StringNotEquals": {"aws:SourceVpce": VPCE}}}]}},
            {"id": BARE_ID, "name": "bare", "type": "REST", "endpoint": "PRIVATE",
             "stages": ["prod"], "throttle": None, "routes": [route], "policy": None},
            {"id": REGIONAL_ID, "name": "public", "type": "REST", "stages": ["prod"],
             "throttle": None, "routes": [route]}]}


class Lab:
    def __init__(self, ns: str, tmp: pathlib.Path, fe: subprocess.Popen) -> None:
        self.ns, self.tmp, self.fe = ns, tmp, fe
        self.socket = str(tmp / "apigw.sock")

    def call(self, host_name: str, path: str = "/prod/orders/7", *headers: str,
             header: bytes | None = None, address: str = PRIVATE) -> tuple[int, dict, str, str]:
        """(status, headers, body, the cipher the client negotiated) of one HTTPS request,
        on a connection that starts with `header` (None: no PROXY header at all)."""
        ca = str(self.tmp / "ca.crt")
        # the test CA signs *.execute-api.us-east-1.amazonaws.com; an endpoint's own name is
        # sent in Host with SNI one of those (SNI and Host need not agree)
        sni = host_name if host_name.endswith(host("")) else host(PRIVATE_ID)
        lines = "".join(f"{h}\r\n" for h in headers)
        request = (f"GET {path} HTTP/1.1\r\nHost: {host_name}\r\n{lines}"
                   "Connection: close\r\n\r\n").encode()

        def run() -> tuple[str, str]:
            context = ssl.create_default_context(cafile=ca)
            context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
            with socket.create_connection((address, 443), timeout=10) as raw:
                if header is not None:
                    raw.sendall(header)
                with context.wrap_socket(raw, server_hostname=sni) as tls:
                    tls.sendall(request)
                    chunks = []
                    while chunk := tls.recv(65536):
                        chunks.append(chunk)
                    return b"".join(chunks).decode("latin-1"), tls.cipher()[0]

        text, cipher = nsenter.in_netns(self.ns, run)
        status, got, body = parse_response(text)
        return status, got, body, cipher

    def raw(self, data: bytes) -> bytes:
        """What the private listener answers to `data` sent alone (then half-closed); a
        reset (closing with our bytes unread makes the kernel send one) answers nothing."""
        def run() -> bytes:
            with socket.create_connection((PRIVATE, 443), timeout=10) as s:
                chunks = []
                try:
                    if data:
                        s.sendall(data)
                    s.shutdown(socket.SHUT_WR)
                    while chunk := s.recv(65536):
                        chunks.append(chunk)
                except OSError as exc:       # reset already, or not connected any more
                    if exc.errno not in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN):
                        raise
                return b"".join(chunks)
        return nsenter.in_netns(self.ns, run)

    def stats(self) -> dict:
        return control.call(self.socket, "stats", timeout=5)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("apigw-private")
    make_certificates(tmp)
    with Scratch("tpa-") as scratch:
        ns = scratch.namespace("fe")
        for address in (PUBLIC, PRIVATE, BACKEND_IP):
            scratch.address(ns, "lo", address, 32)
        (tmp / "apigw.json").write_text(json.dumps(config(tmp)))
        procs = [start(ns, sys.executable, str(BACKEND), BACKEND_IP, "8080", ready="ready")]
        procs.append(start(ns, sys.executable, "-m", "dataplane.services.apigw", "--config",
                           str(tmp / "apigw.json"), "--header-timeout", "1", ready="apigw "))
        try:
            yield Lab(ns, tmp, procs[1])
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)
                proc.stdout.close()
                proc.stderr.close()


FORMS = [("private DNS name", host(PRIVATE_ID), ()),
         ("endpoint name + x-apigw-api-id", EP_NAME, (f"x-apigw-api-id: {PRIVATE_ID}",)),
         ("<api-id>-<vpce-id> alias", host(f"{PRIVATE_ID}-{VPCE}"), ())]


@pytest.mark.parametrize("name,host_name,headers", FORMS, ids=[f[0] for f in FORMS])
def test_each_name_form_is_allowed_and_the_backend_sees_the_vpc(lab, name, host_name,
                                                                  headers) -> None:
    status, _, body, cipher = lab.call(host_name, "/prod/orders/7", *headers,
                                       header=proxy_v2(VPCE))
    assert status == 200, body
    seen = json.loads(body)
    sent = {k.lower(): v for k, v in seen["headers"]}
    assert seen["path"] == "/7"
    assert sent["x-amzn-vpc-id"] == VPC and sent["x-amzn-vpce-id"] == VPCE
    assert sent["x-amzn-vpce-config"] == "1" and sent["x-amzn-tls-version"] == "TLSv1.2"
    assert sent["x-amzn-cipher-suite"] == cipher
    assert sent["x-forwarded-for"] == CLIENT[0]


def test_explicit_deny_from_another_endpoint(lab) -> None:
    status, got, body, _ = lab.call(host(PRIVATE_ID), header=proxy_v2(OTHER_VPCE))
    assert status == 403 and got["x-amzn-errortype"] == "AccessDeniedException"
    assert body == ('{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke'
                    ' on resource: arn:aws:execute-api:us-east-1:********9012:'
                    f'{PRIVATE_ID}/prod/GET/orders/7 with an explicit deny"}}')


def test_implicit_deny_without_a_policy(lab) -> None:
    status, got, body, _ = lab.call(host(BARE_ID), "/prod/orders/x", header=proxy_v2(VPCE))
    assert status == 403 and got["x-amzn-errortype"] == "AccessDeniedException"
    assert body == ('{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke'
                    ' on resource: arn:aws:execute-api:us-east-1:********9012:'
                    f'{BARE_ID}/prod/GET/orders/x"}}')


FORBIDDEN = [("a public API through the endpoint", host(REGIONAL_ID), (), VPCE, PRIVATE),
             ("the endpoint's name without x-apigw-api-id", EP_NAME, (), VPCE, PRIVATE),
             ("an alias of an endpoint not associated", host(f"{PRIVATE_ID}-{OTHER_VPCE}"), (),
              OTHER_VPCE, PRIVATE),
             ("the private API on the public listener", host(PRIVATE_ID), (), None, PUBLIC)]


@pytest.mark.parametrize("name,host_name,headers,vpce,address", FORBIDDEN,
                         ids=[f[0] for f in FORBIDDEN])
def test_forbidden(lab, name, host_name, headers, vpce, address) -> None:
    status, got, body, _ = lab.call(host_name, "/prod/orders/7", *headers,
                                    header=proxy_v2(vpce) if address == PRIVATE else None,
                                    address=address)
    assert (status, body) == (403, '{"message":"Forbidden"}')
    assert got["x-amzn-errortype"] == "ForbiddenException"


def test_public_listener_still_serves_the_regional_api(lab) -> None:
    status, _, body, _ = lab.call(host(REGIONAL_ID), header=None, address=PUBLIC)
    assert status == 200 and "x-amzn-vpc" not in body.lower()


def test_access_log_has_the_clients_private_address(lab) -> None:
    lab.call(host(PRIVATE_ID), "/prod/orders/logged", header=proxy_v2(VPCE))
    log = (lab.tmp / "logs" / "orders" / "prod.log").read_text().splitlines()
    assert any(line.startswith(f"{CLIENT[0]} - - [") and '" 200 ' in line for line in log)


def test_missing_or_bad_header_closes_and_counts(lab) -> None:
    before = lab.stats()["errors"]["bad_proxy_header"]
    with pytest.raises(RuntimeError, match="SSL|EOF|reset|closed"):
        lab.call(host(PRIVATE_ID), header=None)       # TLS straight away: no header
    assert lab.raw(b"GET /prod/orders/1 HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    assert lab.raw(proxy_v2(VPCE)[:20]) == b""         # cut short
    assert lab.raw(b"") == b""                          # connect and close: not counted
    stats = lab.stats()
    assert stats["errors"]["bad_proxy_header"] == before + 3
    assert stats["proxy_protocol"]["PROXY"] >= len(FORMS)


def test_local_header_is_served_without_a_client(lab) -> None:
    local = lab.stats()["proxy_protocol"]["LOCAL"]
    status, _, body, _ = lab.call(host(PRIVATE_ID), header=proxy_v2(None, command=0x20))
    assert (status, body) == (403, '{"message":"Forbidden"}')
    assert lab.stats()["proxy_protocol"]["LOCAL"] == local + 1
    assert control.call(lab.socket, "ping", timeout=5)["pid"] > 0


def test_sigterm_with_a_header_half_read(lab) -> None:
    pid = lab.fe.pid

    def half_then_stop() -> float:
        with socket.create_connection((PRIVATE, 443), timeout=10) as s:
            s.sendall(proxy_v2(VPCE)[:10])               # a header being read ...
            time.sleep(0.2)
            started = time.monotonic()
            os.kill(pid, signal.SIGTERM)                 # ... when the front end stops
            assert s.recv(100) == b""
            return time.monotonic() - started
    # closed by the stop, not by the 1 s header timeout
    assert nsenter.in_netns(lab.ns, half_then_stop) < 0.9
    assert lab.fe.wait(timeout=5) == 0
    assert not pathlib.Path(lab.socket).exists()
