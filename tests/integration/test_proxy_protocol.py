"""PROXY protocol v2 end to end (issue 12): a client in a consumer VPC reaches, through an
interface endpoint, an NLB whose target group has `proxy_protocol_v2: true`; the target
is this file run as a server, which parses every PROXY v2 header in front of a
connection's bytes (the small parser below: signature, command, addresses, TLVs, CRC32C,
the AWS TLV 0xEA) and answers with what it read and with the request's bytes back. The
test checks the endpoint ID, the client's address and port, the destination, a request
and a response of 1.5 MB each through the shifted flow, a header the client sent itself
left behind ours, and that the health checks' LOCAL header (an HTTP check, which the
parser would refuse without one) keeps the target healthy. The lab is `tpp1`, removed
whatever happens.

Run as `python test_proxy_protocol.py serve PORT` (the target) or
`python test_proxy_protocol.py client HOST PORT SIZE [stack]` (the client); the client
prints its own address and the server's answer as JSON.
"""
from __future__ import annotations

import hashlib
import json
import socket
import struct
import sys
import threading
import time

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
LOCAL_SEEN = 0


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def read_exact(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(min(n - len(out), 1 << 20))
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def parse_header(sock: socket.socket) -> dict:
    """One PROXY v2 header from the socket (its signature already peeked at)."""
    head = read_exact(sock, 16)
    if head[:12] != SIGNATURE or head[12] >> 4 != 2:
        raise ValueError(f"not a PROXY v2 header: {head!r}")
    command = {0: "LOCAL", 1: "PROXY"}[head[12] & 0x0F]
    (length,) = struct.unpack("!H", head[14:16])
    body = read_exact(sock, length)
    info: dict = {"command": command, "family": head[13], "length": 16 + length}
    rest = body
    if head[13] == 0x11:
        src, dst, sport, dport = struct.unpack("!4s4sHH", body[:12])
        info.update(src=[socket.inet_ntoa(src), sport], dst=[socket.inet_ntoa(dst), dport])
        rest = body[12:]
    at = 16 + len(body) - len(rest)
    while rest:
        kind, size = rest[0], struct.unpack("!H", rest[1:3])[0]
        value = rest[3:3 + size]
        if kind == 0x03:
            whole = head + body
            zeroed = whole[:at + 3] + b"\0\0\0\0" + whole[at + 7:]
            info["crc_ok"] = struct.unpack("!I", value)[0] == crc32c(zeroed)
        elif kind == 0xEA and value[:1] == b"\x01":
            info["vpce"] = value[1:].decode("ascii")
        elif kind == 0x04:
            info["noop"] = size
        rest, at = rest[3 + size:], at + 3 + size
    return info


def handle(conn: socket.socket) -> None:
    global LOCAL_SEEN
    with conn:
        headers = []
        while conn.recv(12, socket.MSG_PEEK | socket.MSG_WAITALL) == SIGNATURE:
            headers.append(parse_header(conn))
        if not headers:
            return                        # no PROXY header: refused, as a strict target does
        if headers[0]["command"] == "LOCAL":
            LOCAL_SEEN += 1
        first = conn.recv(4, socket.MSG_PEEK | socket.MSG_WAITALL)
        if first == b"GET ":              # the health check
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            return
        if first != b"REQ ":
            return
        read_exact(conn, 4)
        (n,) = struct.unpack("!Q", read_exact(conn, 8))
        data = read_exact(conn, n)
        answer = json.dumps({"headers": headers, "sha256": hashlib.sha256(data).hexdigest(),
                             "local_seen": LOCAL_SEEN}).encode()
        conn.sendall(struct.pack("!Q", len(answer)) + answer + struct.pack("!Q", n) + data[::-1])


def serve(port: int) -> None:
    srv = socket.create_server(("0.0.0.0", port), backlog=64)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def client(host: str, port: int, size: int, stack: bool) -> dict:
    data = bytes((i * 7 + i // 251) & 0xFF for i in range(size))
    with socket.create_connection((host, port), timeout=20) as s:
        own = SIGNATURE + bytes([0x20, 0x00, 0x00, 0x00]) if stack else b""
        s.sendall(own + b"REQ " + struct.pack("!Q", size) + data)
        (n,) = struct.unpack("!Q", read_exact(s, 8))
        answer = json.loads(read_exact(s, n))
        (m,) = struct.unpack("!Q", read_exact(s, 8))
        back = read_exact(s, m)
        return {"sockname": list(s.getsockname()), "answer": answer,
                "sha256": hashlib.sha256(data).hexdigest(), "echo_ok": back == data[::-1]}


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        print(json.dumps(client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                                len(sys.argv) > 5)))
    sys.exit(0)

# ---- the test (pytest) ------------------------------------------------------------------

from dataplane import lab as labmod  # noqa: E402
from dataplane.forwarder import control  # noqa: E402

from .conftest import run_in, vpclab, write_topology  # noqa: E402

LAB = "tpp1"
SIZE = 1_500_000
OPEN_TCP = {"protocol": "tcp", "ports": "80", "source": "10.0.0.0/16"}


def topology() -> dict:
    return {
        "lab": LAB, "region": "us-east-1",
        "vpcs": {
            "consumer": {
                "cidr": "10.0.0.0/16",
                "subnets": {"app-a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"}},
                "security_groups": {"ep-sg": {"ingress": [OPEN_TCP]}},
                "instances": {"client": {"subnet": "app-a"}},
                "endpoints": {"web-ep": {"service": "provider/web-svc", "subnets": ["app-a"],
                                         "security_groups": ["ep-sg"]}},
            },
            "provider": {
                "cidr": "10.0.0.0/16",
                "subnets": {"svc-a": {"cidr": "10.0.1.0/24", "az": "us-east-1a"}},
                "security_groups": {"web-sg": {"ingress": [
                    {"protocol": "tcp", "ports": "8080", "source": "10.0.0.0/16"}]}},
                "instances": {"web": {"subnet": "svc-a", "security_groups": ["web-sg"],
                                      "run": f"{sys.executable} {__file__} serve 8080"}},
                "load_balancers": {"web-nlb": {"type": "network", "subnets": ["svc-a"],
                                               "listeners": [{"port": 80, "protocol": "TCP",
                                                              "target_group": "web-tg"}]}},
                "target_groups": {"web-tg": {
                    "protocol": "TCP", "port": 8080, "targets": ["web"], "proxy_protocol_v2": True,
                    "health_check": {"protocol": "HTTP", "path": "/health", "interval": 5,
                                     "healthy_threshold": 2, "unhealthy_threshold": 2}}},
                "endpoint_services": {"web-svc": {"load_balancers": ["web-nlb"],
                                                  "acceptance_required": False}},
            },
        },
    }


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def call_client(ep_ip: str, stack: bool = False) -> dict:
    args = [sys.executable, __file__, "client", ep_ip, "80", str(SIZE)] + (["stack"] if stack else [])
    out = run_in(LAB, "consumer/client", *args, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_target_reads_the_client_and_endpoint_and_big_transfers_pass(tmp_path,
                                                                         teardown_labs) -> None:
    teardown_labs.append(LAB)
    vpclab("up", str(write_topology(tmp_path, topology())), check=True)
    st = labmod.status(LAB)
    ep = st["hyperplane"]["endpoints"]["consumer/web-ep"]
    ep_ip = ep["enis"][0]["ip"]
    sock = st["hyperplane"]["socket"]
    node = st["hyperplane"]["load_balancers"]["provider/web-nlb"]["enis"][0]
    web_ip = st["vpcs"]["provider"]["instances"]["web"]["ip"]

    # An HTTP health check the strict target answers only after a LOCAL header.
    def health() -> str:
        return control.call(sock, "health")["health"][f"{node['eni_id']}/web-tg"][f"{web_ip}:8080"]["state"]
    assert wait_for(lambda: health() == "healthy", 25), health()

    got = call_client(ep_ip)
    assert got["echo_ok"] and got["answer"]["sha256"] == got["sha256"]
    (ours,) = got["answer"]["headers"]
    assert ours == {"command": "PROXY", "family": 0x11, "length": 100,
                    "src": got["sockname"], "dst": [ep_ip, 80], "crc_ok": True,
                    "vpce": ep["id"], "noop": 36}
    assert ep["id"].startswith("vpce-")
    assert got["answer"]["local_seen"] >= 2

    # A header the client sent itself stays, behind ours.
    stacked = call_client(ep_ip, stack=True)
    assert stacked["echo_ok"] and stacked["answer"]["sha256"] == stacked["sha256"]
    first, theirs = stacked["answer"]["headers"]
    assert first["src"] == stacked["sockname"] and first["vpce"] == ep["id"]
    assert theirs == {"command": "LOCAL", "family": 0, "length": 16}

    # `vpclab flows` shows the shift of such flows.
    flows = vpclab("flows", "-l", LAB, check=True).stdout
    assert "PROXY" in flows and "+100" in flows, flows
    stats = control.call(sock, "stats")
    assert sum(p["counters"]["proxy_headers"] for p in stats["ports"].values()) >= 2
    assert health() == "healthy"
