"""PROXY protocol version 2: the binary header a load balancer puts in front of a
connection's first bytes to say who connected (haproxy's proxy-protocol.txt, section 2.2;
the AWS layout is in AWS-FACTS §2), read by a listener with `proxy_protocol` before
anything else — before TLS.

    offset  len  field
    0       12   signature  0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A
    12      1    version (high nibble, 2) and command (low nibble: 0 LOCAL, 1 PROXY)
    13      1    family (high nibble: 0 UNSPEC, 1 INET, 2 INET6) and transport (1 STREAM)
    14      2    length of the rest, big-endian
    16      …    addresses: IPv4 src, dst (4 + 4), src port, dst port (2 + 2) = 12 bytes;
                 IPv6 the same with 16-byte addresses = 36 bytes; then TLVs to the end:
                 type (1), length (2, big-endian), value

TLVs read: PP2_TYPE_AWS (0xEA) with subtype PP2_SUBTYPE_AWS_VPCE_ID (0x01) first, the
rest of the value being the ASCII `vpce-…` ID of the interface endpoint the connection
came through; PP2_TYPE_CRC32C (0x03), a CRC32C of the whole header with its own four
value bytes zeroed, checked when present; PP2_TYPE_NOOP (0x04, padding) and every other
type kept in `tlvs` and otherwise ignored.

A LOCAL header (a health check: the balancer's own connection) carries no client: its
addresses are ignored, as the spec says, and `ProxyHeader.command` is "LOCAL" with the
addresses None. A PROXY header with family UNSPEC likewise has no addresses.

Anything else is a `ProxyHeaderError` naming what is wrong: a wrong signature (also a
client that sent no header at all, say a TLS ClientHello), version 1's text form or a
version other than 2, a command other than LOCAL/PROXY, a transport other than STREAM or
a family vpclab does not read with PROXY (UDP, Unix sockets), a length over
`MAX_LENGTH` (bounded so a client can't make the listener hold more than that before
TLS; AWS's own header is 84 bytes past the fixed 16), an address block or TLV that runs
past the length, a vpce ID that is not ASCII, a CRC32C that does not match.

`header_length(first_16_bytes)` checks the fixed part and says how long the whole header
is, so a reader can take exactly that many bytes from the socket and leave what follows
(the TLS ClientHello) unread; `parse(header)` reads the whole header.
"""
from __future__ import annotations

import ipaddress
import struct

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
FIXED = 16
MAX_LENGTH = 2048
LOCAL, PROXY = "LOCAL", "PROXY"
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_NOOP = 0x04
PP2_TYPE_AWS = 0xEA
PP2_SUBTYPE_AWS_VPCE_ID = 0x01
_FAMILIES = {0x11: (4, 12), 0x21: (16, 36)}    # family+transport: (address bytes, block)


class ProxyHeaderError(ValueError):
    """A connection that does not start with a usable PROXY v2 header (says why)."""


class ProxyHeader:
    """A parsed header: `command` (LOCAL or PROXY), the client `src`/`src_port` and the
    address it connected to, `dst`/`dst_port` (None for LOCAL and UNSPEC), the
    interface endpoint's `vpce` ID (None without the AWS TLV), every TLV as (type, value)."""
    __slots__ = ("command", "src", "src_port", "dst", "dst_port", "vpce", "tlvs")

    def __init__(self, command: str, src: str | None = None, src_port: int | None = None,
                 dst: str | None = None, dst_port: int | None = None, vpce: str | None = None,
                 tlvs: tuple[tuple[int, bytes], ...] = ()) -> None:
        self.command = command
        self.src, self.src_port, self.dst, self.dst_port = src, src_port, dst, dst_port
        self.vpce = vpce
        self.tlvs = tlvs

    def __repr__(self) -> str:
        return (f"ProxyHeader({self.command}, {self.src}:{self.src_port} -> "
                f"{self.dst}:{self.dst_port}, vpce={self.vpce})")


def header_length(fixed: bytes) -> int:
    """The whole header's length from its first 16 bytes (checked); ProxyHeaderError if
    they are not the start of a PROXY v2 header."""
    if fixed[:len(SIGNATURE)] != SIGNATURE[:len(fixed)]:
        if fixed[:6] == b"PROXY ":
            raise ProxyHeaderError("a PROXY protocol version 1 (text) header; only version 2 "
                                   "is read")
        raise ProxyHeaderError(f"no PROXY v2 signature: the connection starts with "
                               f"{fixed[:12].hex(' ')}")
    if len(fixed) < FIXED:
        raise ProxyHeaderError(f"{len(fixed)} bytes: shorter than the 16-byte fixed part")
    version, command = fixed[12] >> 4, fixed[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError(f"version {version}, not 2")
    if command > 1:
        raise ProxyHeaderError(f"command {command:#x} is neither LOCAL (0) nor PROXY (1)")
    length = (fixed[14] << 8) | fixed[15]
    if length > MAX_LENGTH:
        raise ProxyHeaderError(f"length {length} is over the {MAX_LENGTH} bytes read")
    return FIXED + length


def parse(data: bytes) -> ProxyHeader:
    """The header that is exactly `data` (see the module docstring)."""
    total = header_length(data[:FIXED])
    if len(data) != total:
        raise ProxyHeaderError(f"{len(data)} bytes where the header says {total}")
    command = PROXY if data[12] & 0x0F else LOCAL
    family = data[13]
    addresses = _FAMILIES.get(family)
    if addresses is None:
        if family != 0x00 and command == PROXY:
            raise ProxyHeaderError(f"family/transport {family:#04x}: only TCP over IPv4 (0x11) "
                                   "or IPv6 (0x21) is read")
        block = 0 if family == 0x00 else None
        if block is None:                        # LOCAL with a family we don't read:
            block = total - FIXED                # its addresses are ignored, no TLVs read
    else:
        block = addresses[1]
    if FIXED + block > total:
        raise ProxyHeaderError(f"length {total - FIXED} is shorter than the {block}-byte "
                               "address block")
    header = ProxyHeader(command)
    if addresses is not None and command == PROXY:
        size = addresses[0]
        header.src = str(ipaddress.ip_address(data[FIXED:FIXED + size]))
        header.dst = str(ipaddress.ip_address(data[FIXED + size:FIXED + 2 * size]))
        header.src_port, header.dst_port = struct.unpack_from("!HH", data, FIXED + 2 * size)
    tlvs = []
    at = FIXED + block
    while at < total:
        if at + 3 > total:
            raise ProxyHeaderError(f"a TLV at byte {at} is cut off")
        kind, length = data[at], (data[at + 1] << 8) | data[at + 2]
        if at + 3 + length > total:
            raise ProxyHeaderError(f"TLV {kind:#04x} at byte {at} says {length} bytes, "
                                   f"{total - at - 3} are left")
        value = data[at + 3:at + 3 + length]
        if kind == PP2_TYPE_AWS and value[:1] == bytes([PP2_SUBTYPE_AWS_VPCE_ID]):
            try:
                header.vpce = value[1:].decode("ascii")
            except UnicodeDecodeError:
                raise ProxyHeaderError("the vpce ID TLV is not ASCII") from None
        elif kind == PP2_TYPE_CRC32C:
            if length != 4:
                raise ProxyHeaderError(f"a CRC32C TLV of {length} bytes, not 4")
            zeroed = data[:at + 3] + b"\0\0\0\0" + data[at + 7:]
            if crc32c(zeroed) != int.from_bytes(value, "big"):
                raise ProxyHeaderError("the CRC32C TLV does not match the header")
        tlvs.append((kind, value))
        at += 3 + length
    header.tlvs = tuple(tlvs)
    return header


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as PP2_TYPE_CRC32C carries it."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
