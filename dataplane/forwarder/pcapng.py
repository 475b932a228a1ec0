"""A pcapng writer: what `vpclab capture --hyperplane` writes, for Wireshark and tshark.

pcapng (draft-ietf-opsawg-pcapng) is a file of blocks, each `type, total length, body,
total length`, its options `code, length, value` padded to 4 bytes and ended by code 0.
This module writes the three blocks a capture needs, little-endian (the section header's
byte-order magic tells readers so):

* one Section Header Block (SHB), naming vpclab as the writing application;
* one Interface Description Block (IDB) per ENI that shows up, Ethernet, with `if_name`
  (its eni- ID), `if_description` (what it is) and `if_tsresol` 9 (nanosecond stamps);
* one Enhanced Packet Block (EPB) per frame, on its ENI's interface, with `opt_comment`
  (the engine's words: `eni=… stage=in verdict=forward drop=none`) and `epb_flags`, whose
  direction bits say inbound (the frame as it arrived) or outbound (as it was sent).

Interfaces are described as they first appear, before their first packet, so a stream
(`-w -`) can be read while it is written. Written here rather than taken from a library:
the format is small, the writer is ~100 lines with no dependency, and python-pcapng and
scapy's writers either lack per-packet comments and flags or load far more than a writer.
"""
from __future__ import annotations

import struct
from typing import BinaryIO

SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
LINKTYPE_ETHERNET = 1
OPT_END, OPT_COMMENT = 0, 1
SHB_USERAPPL = 4
IF_NAME, IF_DESCRIPTION, IF_TSRESOL = 2, 3, 9
EPB_FLAGS = 2
INBOUND, OUTBOUND = 1, 2          # epb_flags bits 0-1: the packet's direction
DIRECTIONS = {"in": INBOUND, "out": OUTBOUND}


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _options(options: list[tuple[int, bytes]]) -> bytes:
    if not options:
        return b""
    out = b"".join(struct.pack("<HH", code, len(value)) + _pad(value) for code, value in options)
    return out + struct.pack("<HH", OPT_END, 0)


def _block(kind: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", kind, total) + body + struct.pack("<I", total)


class PcapngWriter:
    """Writes a section to `stream` (a binary file, or stdout's buffer), flushing after
    each packet when `flush` is set so that a reader at the far end of a pipe sees it."""

    def __init__(self, stream: BinaryIO, application: str = "vpclab", flush: bool = False) -> None:
        self.stream = stream
        self.flush = flush
        self.interfaces: dict[str, int] = {}
        self.packets = 0
        body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)   # version 1.0, length unknown
        self._write(_block(SHB, body + _options([(SHB_USERAPPL, application.encode())])))

    def _write(self, data: bytes) -> None:
        self.stream.write(data)
        if self.flush:
            self.stream.flush()

    def interface(self, name: str, description: str = "", snaplen: int = 0) -> int:
        """The interface id of `name`, described (IDB) the first time it is asked for."""
        if name in self.interfaces:
            return self.interfaces[name]
        options = [(IF_NAME, name.encode())]
        if description:
            options.append((IF_DESCRIPTION, description.encode()))
        options.append((IF_TSRESOL, bytes([9])))
        body = struct.pack("<HHI", LINKTYPE_ETHERNET, 0, snaplen) + _options(options)
        self._write(_block(IDB, body))
        self.interfaces[name] = len(self.interfaces)
        return self.interfaces[name]

    def packet(self, interface: int, ts_ns: int, data: bytes, orig_len: int | None = None,
               comment: str = "", direction: str | None = None) -> None:
        """One frame (EPB) on an interface from interface(): captured bytes `data` of a
        frame `orig_len` long, stamped `ts_ns` nanoseconds since the epoch, with a comment
        and a direction ('in' or 'out')."""
        if interface not in self.interfaces.values():
            raise ValueError(f"interface {interface} was never described; call interface() first")
        if direction is not None and direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
        options = []
        if comment:
            options.append((OPT_COMMENT, comment.encode()))
        if direction:
            options.append((EPB_FLAGS, struct.pack("<I", DIRECTIONS[direction])))
        orig = len(data) if orig_len is None else orig_len
        body = struct.pack("<IIIII", interface, ts_ns >> 32, ts_ns & 0xFFFFFFFF, len(data), orig)
        self._write(_block(EPB, body + _pad(data) + _options(options)))
        self.packets += 1
