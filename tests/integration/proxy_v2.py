"""PROXY protocol v2 for the tests, stdlib only: the CRC32C, a header as AWS's capture lays
it out (AWS-FACTS §2), a parser of the headers in front of a connection's bytes, and the
target and client of tests/integration/test_proxy_protocol.py.

The parser reads every header (signature, command, family, addresses, TLVs: the CRC32C
checked over the header with its value zeroed, the AWS TLV 0xEA with subtype 0x01, NOOP
padding). The target answers a connection only after a header: an HTTP GET (a health
check) with 200, a request `REQ ` + 8-byte length + bytes with a length-prefixed JSON of
what it read (headers, the request's SHA-256, how many LOCAL headers it has seen) and the
request's bytes reversed. The unit tests load this file by its path.

Run as `python proxy_v2.py serve PORT` (the target) or `python proxy_v2.py client HOST
PORT SIZE [stack]` (the client: `stack` sends a LOCAL header of its own first); the
client prints its own address and the target's answer as JSON.
"""
from __future__ import annotations

import hashlib
import json
import socket
import struct
import sys
import threading

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
LOCAL_SEEN = 0


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def proxy_header(client: str, cport: int, dst: str, dport: int, vpce: str | None,
                 total: int = 100) -> bytes:
    """A PROXY command header: TCP over IPv4, the CRC32C TLV, the AWS TLV 0xEA with
    `vpce` when given, NOOP padding to `total` bytes, the CRC filled in."""
    addrs = socket.inet_aton(client) + socket.inet_aton(dst) + struct.pack("!HH", cport, dport)
    tlvs = b"\x03\x00\x04" + b"\0\0\0\0"
    if vpce:
        value = b"\x01" + vpce.encode("ascii")
        tlvs += b"\xea" + struct.pack("!H", len(value)) + value
    pad = total - 16 - len(addrs) - len(tlvs) - 3
    tlvs += b"\x04" + struct.pack("!H", pad) + bytes(pad)
    body = addrs + tlvs
    zeroed = SIGNATURE + b"\x21\x11" + struct.pack("!H", len(body)) + body
    return zeroed[:31] + struct.pack("!I", crc32c(zeroed)) + zeroed[35:]


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
