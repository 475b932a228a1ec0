"""The one HTTP probe text every checker sends and reads (dataplane/http_probe.py)."""
from __future__ import annotations

from dataplane.http_probe import probe_request, status_of


def test_the_request_is_a_get_that_asks_to_close() -> None:
    assert probe_request("/healthz", "10.0.1.4:8080", "vpclab-ready") == (
        b"GET /healthz HTTP/1.1\r\nHost: 10.0.1.4:8080\r\nUser-Agent: vpclab-ready\r\n"
        b"Connection: close\r\n\r\n")


def test_only_an_http_1_status_line_has_a_status() -> None:
    assert status_of(b"HTTP/1.1 204 No Content\r\n") == 204
    assert status_of(b"HTTP/1.0 503\r\n") == 503
    for line in (b"", b"HTTP/1.1\r\n", b"HTTP/1.1 2000 Big\r\n", b"ICY 200 OK\r\n",
                 b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 OK 200\r\n"):
        assert status_of(line) is None, line
