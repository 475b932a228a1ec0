"""An ALB node for real, in scratch namespaces (`tal-<pid>-…`): curl and raw sockets
against `python -m dataplane.services.alb`, targets made of tests/integration/http_echo.py.

    tal-<pid>-cli   eth0 10.77.1.2/24 (the client)
    tal-<pid>-alb   c0 10.77.1.1/24 (the node: :80 HTTP, :443 HTTPS), t0 10.77.2.1/24
    tal-<pid>-tgt   eth0 10.77.2.2/24: targets on ports 8081 (a), 8082 (b), 8083 (bad:
                    /healthz answers 500), 8084 and 8085 (fo1, fo2: both 500); nothing
                    listens on 8090

Target groups: `web-tg` (a, b: round robin, both healthy), `mixed-tg` (a, bad: bad turns
unhealthy and gets no traffic), `failopen-tg` (fo1, fo2: all unhealthy, so traffic goes
to both), `empty-tg` (no targets: 503), `refused-tg` (8090, checks disabled: 502).
Health checks every second, 1 s timeout, thresholds 2. The idle timeout is 2 s, so a
target that sleeps 5 s gives a 504 quickly. Nothing here touches the root namespace.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from dataplane.forwarder import control
from dataplane.lab import ca
from netns_setup import nsenter
from netns_setup.scratch import Scratch

from .http_text import parse_response

pytestmark = pytest.mark.root
HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
ECHO = HERE / "http_echo.py"
NODE, CLIENT, NODE_T, TARGETS = "10.77.1.1", "10.77.1.2", "10.77.2.1", "10.77.2.2"
ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
HOST = "shop.alb.test"


def tg(name: str, ports: list[int], enabled: bool = True, algorithm: str = "round_robin") -> dict:
    return {"arn": f"{ARN}:targetgroup/{name}/73e2d6bc24d8a067", "protocol": "HTTP",
            "port": 8080, "algorithm": algorithm,
            "targets": [{"id": f"t{port}", "ip": TARGETS, "port": port} for port in ports],
            "health_check": {"enabled": enabled, "protocol": "HTTP", "port": None,
                             "path": "/healthz", "interval": 1, "timeout": 1,
                             "healthy_threshold": 2, "unhealthy_threshold": 2,
                             "matcher": "200-299"}}


def forward(name: str) -> dict:
    return {"type": "forward", "target_groups": [{"name": name, "weight": 1}]}


def path_rule(priority: int, pattern: str, action: dict) -> dict:
    return {"priority": priority, "conditions": [{"field": "path-pattern", "values": [pattern]}],
            "action": action}


def config(tmp: pathlib.Path, cert: dict) -> dict:
    rules = [
        path_rule(1, "/fixed", {"type": "fixed-response", "status": 200,
                                "content_type": "text/plain", "body": "fixed body"}),
        path_rule(2, "/go/*", {"type": "redirect", "protocol": "HTTPS", "host": "#{host}",
                               "port": "443", "path": "/new/#{path}", "query": "#{query}",
                               "status": 302}),
        path_rule(3, "/empty/*", forward("empty-tg")),
        path_rule(4, "/refused/*", forward("refused-tg")),
        path_rule(5, "/fo/*", forward("failopen-tg")),
        path_rule(6, "/mixed/*", forward("mixed-tg")),
    ]
    return {
        "version": 1, "lab": "tal", "region": "us-east-1", "account_id": "123456789012",
        "vpc": "shop", "name": "web-alb", "arn": f"{ARN}:loadbalancer/app/web-alb/50dc6c495c0c9188",
        "dns_name": "internal-web-alb-1.us-east-1.elb.amazonaws.com",
        "node": {"az": "us-east-1a", "subnet": "a", "address": NODE},
        "idle_timeout": 2, "xff_mode": "append", "xff_client_port": False,
        "socket": str(tmp / "alb.sock"), "access_log": str(tmp / "alb.log"),
        "listeners": [
            {"port": 80, "protocol": "HTTP", "tls": None, "rules": rules,
             "default": forward("web-tg")},
            {"port": 443, "protocol": "HTTPS", "tls": {"cert": cert["cert"], "key": cert["key"]},
             "rules": [], "default": forward("web-tg")}],
        "target_groups": {
            "web-tg": tg("web-tg", [8081, 8082]),
            "mixed-tg": tg("mixed-tg", [8081, 8083]),
            "failopen-tg": tg("failopen-tg", [8084, 8085]),
            "empty-tg": tg("empty-tg", []),
            "refused-tg": tg("refused-tg", [8090], enabled=False)}}


def start(ns: str, *cmd: str) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, *cmd], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))


def wait_listening(ns: str, address: str, port: int, proc: subprocess.Popen) -> None:
    def probe() -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((address, port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False
    if not nsenter.in_netns(ns, probe):
        proc.kill()
        raise AssertionError(f"nothing listens on {address}:{port}: {proc.stderr.read()}")


class Lab:
    def __init__(self, scratch: Scratch, tmp: pathlib.Path, node: subprocess.Popen,
                 bundle: str) -> None:
        self.cli, self.alb = scratch.name("cli"), scratch.name("alb")
        self.tmp, self.node, self.bundle = tmp, node, bundle
        self.socket = str(tmp / "alb.sock")

    def curl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.cli, "curl", "-sS", "--max-time",
                               "15", *args], capture_output=True, text=True, timeout=20)

    def get(self, path: str, *args: str, host: str = HOST) -> tuple[int, dict[str, str], str]:
        proc = self.curl("-i", "-H", f"Host: {host}", *args, f"http://{NODE}{path}")
        assert proc.returncode == 0, proc.stderr
        return parse_response(proc.stdout)

    def raw(self, data: bytes) -> bytes:
        """Sends `data` from the client namespace and returns everything the node answers."""
        def exchange() -> bytes:
            with socket.create_connection((NODE, 80), timeout=10) as sock:
                sock.sendall(data)
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
                return b"".join(chunks)
        return nsenter.in_netns(self.cli, exchange)

    def call(self, cmd: str) -> dict:
        return control.call(self.socket, cmd, timeout=5)

    def wait_health(self, group: str, states: list[str]) -> list[dict]:
        deadline = time.monotonic() + 15
        while True:
            targets = self.call("health")["target_groups"][group]
            if [t["state"] for t in targets] == states or time.monotonic() > deadline:
                assert [t["state"] for t in targets] == states, targets
                return targets
            time.sleep(0.2)

    def log_lines(self) -> list[str]:
        return (self.tmp / "alb.log").read_text().splitlines()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("alb")
    cert = ca.make(str(tmp), "tal", "alb", [HOST, "*.alb.test"])
    procs: list[subprocess.Popen] = []
    with Scratch("tal-") as scratch:
        cli, alb, tgt = scratch.namespace("cli"), scratch.namespace("alb"), scratch.namespace("tgt")
        scratch.veth(cli, "eth0", alb, "c0")
        scratch.veth(alb, "t0", tgt, "eth0")
        scratch.address(cli, "eth0", CLIENT, 24)
        scratch.address(alb, "c0", NODE, 24)
        scratch.address(alb, "t0", NODE_T, 24)
        scratch.address(tgt, "eth0", TARGETS, 24)
        try:
            for tag, port, health in (("a", 8081, 200), ("b", 8082, 200), ("bad", 8083, 500),
                                      ("fo1", 8084, 500), ("fo2", 8085, 500)):
                procs.append(start(tgt, sys.executable, str(ECHO), tag, str(port), str(health)))
                wait_listening(tgt, TARGETS, port, procs[-1])
            (tmp / "alb.json").write_text(json.dumps(config(tmp, cert)))
            node = start(alb, sys.executable, "-m", "dataplane.services.alb", "--config",
                         str(tmp / "alb.json"))
            procs.append(node)
            line = node.stdout.readline()
            assert line.startswith(f"alb {node.pid}: web-alb node {NODE}: http://{NODE}:80, "
                                   f"https://{NODE}:443, control "), \
                f"{line}{node.stderr.read() if node.poll() is not None else ''}"
            yield Lab(scratch, tmp, node, cert["bundle"])
        finally:
            for proc in reversed(procs):
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)
                proc.stdout.close()
                proc.stderr.close()


# ---- forwarding and health ------------------------------------------------------------------

def test_forward_round_robin_over_two_targets_with_aws_headers(lab: Lab) -> None:
    assert lab.call("ping")["pid"] == lab.node.pid
    lab.wait_health("web-tg", ["healthy", "healthy"])
    tags = []
    for _ in range(4):
        status, headers, body = lab.get("/hello?x=1", "-H", "X-Forwarded-For: 192.0.2.9",
                                        "-H", "X-Forwarded-Proto: ftp")
        assert status == 200, body
        seen = json.loads(body)
        tags.append(seen["tag"])
    sent = {k.lower(): v for k, v in seen["headers"]}
    assert seen["path"] == "/hello?x=1" and seen["peer"] == NODE_T
    assert sent["host"] == HOST
    assert sent["x-forwarded-for"] == f"192.0.2.9, {CLIENT}"
    assert (sent["x-forwarded-proto"], sent["x-forwarded-port"]) == ("http", "80")
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", sent["x-amzn-trace-id"])
    assert sorted(tags) == ["a", "a", "b", "b"] and tags[0] != tags[1]


def test_trace_id_with_root_gets_self_in_front(lab: Lab) -> None:
    root = "Root=1-67891233-abcdef012345678912345678;Lineage=x"
    status, _, body = lab.get("/t", "-H", f"X-Amzn-Trace-Id: {root}")
    sent = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert status == 200
    assert re.fullmatch(r"Self=1-[0-9a-f]{8}-[0-9a-f]{24};" + re.escape(root),
                        sent["x-amzn-trace-id"])


def test_unhealthy_target_gets_no_traffic(lab: Lab) -> None:
    targets = lab.wait_health("mixed-tg", ["healthy", "unhealthy"])
    assert targets[1]["reason"] == "Target.ResponseCodeMismatch"
    assert targets[1]["description"] == "Health checks failed with these codes: [500]"
    tags = {json.loads(lab.get(f"/mixed/{i}")[2])["tag"] for i in range(6)}
    assert tags == {"a"}


def test_all_unhealthy_fails_open(lab: Lab) -> None:
    lab.wait_health("failopen-tg", ["unhealthy", "unhealthy"])
    tags = {json.loads(lab.get(f"/fo/{i}")[2])["tag"] for i in range(4)}
    assert tags == {"fo1", "fo2"}


def test_https_listener(lab: Lab) -> None:
    proc = lab.curl("-i", "--cacert", lab.bundle, "--resolve", f"{HOST}:443:{NODE}",
                    f"https://{HOST}/secure")
    assert proc.returncode == 0, proc.stderr
    status, _, body = parse_response(proc.stdout)
    sent = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert status == 200
    assert (sent["x-forwarded-proto"], sent["x-forwarded-port"]) == ("https", "443")
    refused = lab.curl("--cacert", lab.bundle, "--tlsv1.3", "--resolve", f"{HOST}:443:{NODE}",
                       f"https://{HOST}/")
    assert refused.returncode != 0          # TLS 1.2 only


# ---- the load balancer's own answers -----------------------------------------------------------

def page(status: str) -> str:
    return (f"<html>\n<head><title>{status}</title></head>\n<body>\n<center><h1>{status}</h1>"
            "</center>\n</body>\n</html>\n")


def test_fixed_response_and_redirect(lab: Lab) -> None:
    status, headers, body = lab.get("/fixed")
    assert (status, body, headers["content-type"]) == (200, "fixed body", "text/plain")
    assert headers["server"] == "awselb/2.0"
    status, headers, body = lab.get("/go/x/y?a=1&b=2", host=f"{HOST}:80")
    assert status == 302 and body == page("302 Found")
    assert headers["location"] == f"https://{HOST}:443/new/go/x/y?a=1&b=2"


def test_generated_errors(lab: Lab) -> None:
    status, headers, body = lab.get("/empty/x")
    assert (status, body, headers["server"]) == (503, page("503 Service Temporarily Unavailable"),
                                                 "awselb/2.0")
    status, _, body = lab.get("/refused/x")
    assert (status, body) == (502, page("502 Bad Gateway"))
    status, _, body = lab.get("/reset")                     # the target resets mid-request
    assert (status, body) == (502, page("502 Bad Gateway"))
    status, _, body = lab.get("/sleep/5")                   # no answer within idle_timeout 2 s
    assert (status, body) == (504, page("504 Gateway Time-out"))
    status, _, body = lab.get("/x", "-X", "TRACE")
    assert (status, body) == (405, page("405 Not Allowed"))
    many = ", ".join(f"192.0.2.{i}" for i in range(31))
    status, _, body = lab.get("/x", "-H", f"X-Forwarded-For: {many}")
    assert (status, body) == (463, page("463"))
    thirty = ", ".join(f"192.0.2.{i}" for i in range(30))
    assert lab.get("/x", "-H", f"X-Forwarded-For: {thirty}")[0] == 200
    answer = lab.raw(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 501 Not Implemented\r\n"), answer
    answer = lab.raw(b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:100]
    answer = lab.raw(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 17000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:100]
    generated = lab.call("stats")["generated"]
    assert all(generated[code] >= 1 for code in ("405", "463", "501", "502", "503", "504")), \
        generated


def test_a_request_stalled_for_the_idle_timeout_is_a_408(lab: Lab) -> None:
    started = time.monotonic()
    answer = lab.raw(f"GET /stalled HTTP/1.1\r\nHost: {HOST}\r\nX-Half: ".encode())
    assert answer.startswith(b"HTTP/1.1 408 Request Time-out\r\nServer: awselb/2.0\r\n"), answer
    assert b"\r\nConnection: close\r\n" in answer and answer.endswith(
        page("408 Request Time-out").replace("\n", "\r\n").encode())
    assert time.monotonic() - started > 1.5          # after the idle timeout (2 s), not at once


def test_client_that_leaves_is_a_460_in_the_log(lab: Lab) -> None:
    def leave() -> None:
        with socket.create_connection((NODE, 80), timeout=5) as sock:
            sock.sendall(f"GET /sleep/1 HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            time.sleep(0.3)
            # closed with a reset: a FIN alone is a half-close, after which the node still
            # answers (the engine's rule for clients that shut down their sending side)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    nsenter.in_netns(lab.cli, leave)
    deadline = time.monotonic() + 5
    while not any(" 460 " in line for line in lab.log_lines()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(line.split(" ")[8] == "460" for line in lab.log_lines())


# ---- the access log and the control socket -----------------------------------------------------

LOG_LINE = re.compile(
    r'(?P<type>\S+) (?P<time>\S+) (?P<elb>\S+) (?P<client>\S+) (?P<target>\S+) '
    r'(?P<request_processing_time>\S+) (?P<target_processing_time>\S+) '
    r'(?P<response_processing_time>\S+) (?P<elb_status_code>\S+) (?P<target_status_code>\S+) '
    r'(?P<received_bytes>\d+) (?P<sent_bytes>\d+) "(?P<request>[^"]*)" "(?P<user_agent>[^"]*)" '
    r'(?P<ssl_cipher>\S+) (?P<ssl_protocol>\S+) (?P<target_group_arn>\S+) "(?P<trace_id>[^"]*)" '
    r'"(?P<domain_name>[^"]*)" "(?P<chosen_cert_arn>[^"]*)" (?P<matched_rule_priority>\S+) '
    r'(?P<request_creation_time>\S+) "(?P<actions_executed>[^"]*)" "(?P<redirect_url>[^"]*)" '
    r'"(?P<error_reason>[^"]*)" "(?P<target_port_list>[^"]*)" '
    r'"(?P<target_status_code_list>[^"]*)" "(?P<classification>[^"]*)" '
    r'"(?P<classification_reason>[^"]*)"$')


def entries(lab: Lab) -> list[dict[str, str]]:
    parsed = [LOG_LINE.match(line) for line in lab.log_lines()]
    assert all(parsed), [line for line, m in zip(lab.log_lines(), parsed) if not m]
    return [m.groupdict() for m in parsed]


def test_access_log_lines_parse_into_the_right_fields(lab: Lab) -> None:
    lab.get("/logged?q=1", "-A", "tal-agent")
    lab.get("/go/z")
    proc = lab.curl("-s", "-o", "/dev/null", "--cacert", lab.bundle, "--resolve",
                    f"{HOST}:443:{NODE}", f"https://{HOST}/tls-logged")
    assert proc.returncode == 0
    log = entries(lab)
    forwarded = next(e for e in log if "/logged?q=1" in e["request"])
    assert forwarded["type"] == "http" and forwarded["elb"] == "app/web-alb/50dc6c495c0c9188"
    assert forwarded["client"].startswith(CLIENT + ":")
    assert forwarded["target"] in (f"{TARGETS}:8081", f"{TARGETS}:8082")
    assert forwarded["request"] == f"GET http://{HOST}:80/logged?q=1 HTTP/1.1"
    assert forwarded["user_agent"] == "tal-agent"
    assert (forwarded["elb_status_code"], forwarded["target_status_code"]) == ("200", "200")
    assert forwarded["matched_rule_priority"] == "0"
    assert forwarded["actions_executed"] == "forward"
    assert forwarded["target_group_arn"] == f"{ARN}:targetgroup/web-tg/73e2d6bc24d8a067"
    assert forwarded["trace_id"].startswith("Root=1-")
    assert forwarded["target_port_list"] == forwarded["target"]
    assert int(forwarded["received_bytes"]) > 0 and int(forwarded["sent_bytes"]) > 0
    assert float(forwarded["target_processing_time"]) >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", forwarded["time"])
    redirect = next(e for e in log if e["request"].endswith("/go/z HTTP/1.1"))
    assert (redirect["elb_status_code"], redirect["matched_rule_priority"],
            redirect["actions_executed"], redirect["target"]) == ("302", "2", "redirect", "-")
    assert redirect["redirect_url"] == f"https://{HOST}:443/new/go/z"
    empty = next(e for e in log if "/empty/x" in e["request"])
    assert (empty["elb_status_code"], empty["target_status_code"]) == ("503", "-")
    timed_out = next(e for e in log if "/sleep/5" in e["request"])
    assert (timed_out["elb_status_code"], timed_out["target_processing_time"]) == ("504", "-1")
    tls = next(e for e in log if "/tls-logged" in e["request"])
    assert tls["type"] == "https" and tls["ssl_protocol"] == "TLSv1.2"
    assert tls["ssl_cipher"] != "-" and tls["domain_name"] == HOST


def test_control_socket_stats_and_health(lab: Lab) -> None:
    stats = lab.call("stats")
    assert stats["requests"] > 0 and stats["listeners"]["80"]["rules"]["default"] > 0
    assert stats["listeners"]["80"]["rules"]["1"] >= 1           # /fixed
    assert stats["health_checks"] > 0
    health = lab.call("health")["target_groups"]
    assert health["refused-tg"] == [{"id": "t8090", "ip": TARGETS, "port": 8090,
                                     "state": "unavailable",
                                     "reason": "Target.HealthCheckDisabled",
                                     "description": "Health checks are disabled"}]
    assert health["empty-tg"] == []


def test_sigterm_exits_zero(lab: Lab, tmp_path) -> None:
    """A second node on another port (the lab's keeps serving the other tests)."""
    doc = json.loads((lab.tmp / "alb.json").read_text())
    doc["listeners"] = [{**doc["listeners"][0], "port": 8000}]
    doc["socket"], doc["access_log"] = str(tmp_path / "n2.sock"), str(tmp_path / "n2.log")
    (tmp_path / "n2.json").write_text(json.dumps(doc))
    proc = start(lab.alb, sys.executable, "-m", "dataplane.services.alb", "--config",
                 str(tmp_path / "n2.json"))
    try:
        assert proc.stdout.readline().startswith("alb "), proc.stderr.read()
        pid = control.call(str(tmp_path / "n2.sock"), "ping", timeout=5)["pid"]
        os.kill(pid, signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert not (tmp_path / "n2.sock").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()

