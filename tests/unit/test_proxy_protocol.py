"""The PROXY protocol v2 parser (dataplane/services/proxy/proxy_protocol.py) on headers
written here byte by byte — AWS's captured layout first (AWS-FACTS §2) — and the engine's
reader, which takes exactly the header's bytes from a socket and leaves the rest."""
from __future__ import annotations

import asyncio
import socket

import pytest

from dataplane.services.proxy import proxy_protocol as pp
from dataplane.services.proxy.engine import read_proxy_header

SIG = bytes.fromhex("0D0A0D0A000D0A515549540A")
VPCE = b"vpce-08d2bf15fac5001c9"


def with_crc(header: bytes, at: int) -> bytes:
    """`header` with its CRC32C TLV's value (4 bytes at `at`) filled in, as the spec says:
    over the whole header with those four bytes zero."""
    return header[:at] + pp.crc32c(header).to_bytes(4, "big") + header[at + 4:]


# AWS's capture: 172.31.7.113:41000 -> 172.31.10.31:80, CRC32C, vpce ID, 36 bytes of NOOP
AWS_CAPTURE = with_crc(
    SIG + b"\x21\x11\x00\x54"
    + bytes([172, 31, 7, 113]) + bytes([172, 31, 10, 31]) + (41000).to_bytes(2, "big") + b"\x00\x50"
    + b"\x03\x00\x04" + b"\0\0\0\0"
    + b"\xEA\x00\x17\x01" + VPCE
    + b"\x04\x00\x24" + b"\0" * 36, 31)
PLAIN_IPV4 = SIG + b"\x21\x11\x00\x0c" + bytes([10, 1, 1, 10, 10, 1, 1, 50]) + b"\xa4\x10\x01\xbb"
LOCAL = SIG + b"\x20\x00\x00\x00"


def test_aws_capture_is_100_bytes_and_parses() -> None:
    assert len(AWS_CAPTURE) == 100
    assert pp.header_length(AWS_CAPTURE[:16]) == 100
    header = pp.parse(AWS_CAPTURE)
    assert header.command == "PROXY"
    assert (header.src, header.src_port, header.dst, header.dst_port) == \
        ("172.31.7.113", 41000, "172.31.10.31", 80)
    assert header.vpce == "vpce-08d2bf15fac5001c9"
    assert [kind for kind, _ in header.tlvs] == [0x03, 0xEA, 0x04]


def test_ipv4_proxy_without_tlvs() -> None:
    header = pp.parse(PLAIN_IPV4)
    assert (header.src, header.src_port, header.dst, header.dst_port) == \
        ("10.1.1.10", 42000, "10.1.1.50", 443)
    assert header.vpce is None and header.tlvs == ()


def test_local_has_no_client() -> None:
    header = pp.parse(LOCAL)
    assert header.command == "LOCAL" and header.src is None and header.dst is None
    # a LOCAL header may still carry addresses (ignored, as the spec says) and TLVs
    header = pp.parse(SIG + b"\x20\x11\x00\x0f" + bytes(12) + b"\x04\x00\x00")
    assert header.command == "LOCAL" and header.src is None and header.tlvs == ((4, b""),)


def test_ipv6_proxy() -> None:
    src, dst = socket.inet_pton(socket.AF_INET6, "fd00::10"), socket.inet_pton(socket.AF_INET6,
                                                                                 "fd00::50")
    header = pp.parse(SIG + b"\x21\x21\x00\x24" + src + dst + b"\x00\x01\x00\x02")
    assert (header.src, header.src_port, header.dst, header.dst_port) == \
        ("fd00::10", 1, "fd00::50", 2)


BAD = [
    ("truncated fixed part", SIG + b"\x21\x11", "shorter than the 16-byte fixed part"),
    ("truncated addresses", SIG + b"\x21\x11\x00\x08" + bytes(8), "shorter than the 12-byte"),
    ("bytes missing behind the length", PLAIN_IPV4[:-2], "where the header says"),
    ("truncated TLV header", PLAIN_IPV4[:14] + b"\x00\x0e" + PLAIN_IPV4[16:] + b"\xEA\x00",
     "cut off"),
    ("TLV longer than the header", PLAIN_IPV4[:14] + b"\x00\x10" + PLAIN_IPV4[16:]
     + b"\xEA\x00\x09\x01", "says 9 bytes, 1 are left"),
    ("bad signature", b"\r\n\r\n\x00\r\nQUIX\n" + PLAIN_IPV4[12:], "no PROXY v2 signature"),
    ("no header: a TLS ClientHello", bytes.fromhex("16030100f8010000f40303") + bytes(5),
     "no PROXY v2 signature: the connection starts with 16 03 01"),
    ("version 1 text", b"PROXY TCP4 10.1.1.10 10.1.1.50 42000 443\r\n", "version 1"),
    ("version 1 in the binary form", SIG + b"\x11\x11\x00\x0c" + PLAIN_IPV4[16:], "version 1, not 2"),
    ("version 3", SIG + b"\x31\x11\x00\x0c" + PLAIN_IPV4[16:], "version 3, not 2"),
    ("command 2", SIG + b"\x22\x11\x00\x0c" + PLAIN_IPV4[16:], "neither LOCAL"),
    ("oversize length", SIG + b"\x21\x11\x08\x01" + PLAIN_IPV4[16:], "length 2049 is over"),
    ("UDP", SIG + b"\x21\x12\x00\x0c" + PLAIN_IPV4[16:], "only TCP over IPv4"),
    ("bad CRC32C", AWS_CAPTURE[:31] + b"\0\0\0\1" + AWS_CAPTURE[35:], "CRC32C"),
    ("vpce ID not ASCII", PLAIN_IPV4[:14] + b"\x00\x12" + PLAIN_IPV4[16:] + b"\xEA\x00\x03\x01\xff\xfe",
     "not ASCII"),
]


@pytest.mark.parametrize("name,data,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_headers_say_what_is_wrong(name, data, reason) -> None:
    with pytest.raises(pp.ProxyHeaderError, match=reason):
        pp.parse(data)


def test_crc32c_check_value() -> None:
    assert pp.crc32c(b"123456789") == 0xE3069283          # the standard check value


def _read_from(data: bytes, close: bool = True) -> tuple[object, bytes]:
    """read_proxy_header on one end of a socket pair the other end wrote `data` to; and
    what is left in the socket after it."""
    async def run() -> tuple[object, bytes]:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        theirs.sendall(data)
        if close:
            theirs.shutdown(socket.SHUT_WR)
        try:
            try:
                header = await read_proxy_header(loop, ours)
            except pp.ProxyHeaderError as exc:
                header = exc
            rest = b""
            while close and (chunk := await loop.sock_recv(ours, 65536)):
                rest += chunk
            return header, rest
        finally:
            ours.close()
            theirs.close()
    return asyncio.run(run())


def test_reader_takes_the_header_and_leaves_the_client_hello() -> None:
    hello = bytes.fromhex("16030100f8010000f40303") + b"rest of the hello"
    header, rest = _read_from(AWS_CAPTURE + hello)
    assert header.vpce == "vpce-08d2bf15fac5001c9" and rest == hello


def test_reader_on_a_connection_closed_at_once_and_on_junk() -> None:
    assert _read_from(b"") == (None, b"")
    header, _ = _read_from(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(header, pp.ProxyHeaderError) and "signature" in str(header)
    header, _ = _read_from(AWS_CAPTURE[:40])
    assert isinstance(header, pp.ProxyHeaderError) and "closed after 40 of the header's 100" \
        in str(header)
