"""The Cloud Map process's sockets: one asyncio loop serving every VPC of the lab.

The process runs in one namespace but opens each listening socket in the namespace of
the VPC it serves (netns_setup.nsenter.NetnsSockets: a socket keeps its namespace for
life), on the VPC resolver's own address (base+2, on the VPC router's `lo`, which every
instance reaches without security groups, as AmazonProvidedDNS):

* **HTTP :80** in every VPC — DiscoverInstances (api.py). The VPC's resolver answers
  `data-servicediscovery.<region>.amazonaws.com` (and `servicediscovery.…`, to which SDKs
  add the `data-` prefix themselves) with this address, so a program in an instance calls
  the API by its AWS name. Plain HTTP: the lab has no TLS for it.
* **DNS :5300, UDP and TCP** in each VPC that a DNS_PRIVATE namespace names — the VPC's
  dnsmasq forwards the namespace's names here (dns.py). The port is not 53, which
  dnsmasq holds on the same address.

Every request reads the registry through `load_registry` (a stat(), and a read when the
file changed), so changes are seen at once and nothing is restarted. Bounds: a request
head of at most 16 KiB and a body of at most 1 MiB (DiscoverInstances' input is small); a
client idle for 60 s is closed.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import uuid
from dataclasses import dataclass
from typing import Any

from . import api, dns
from .registry import load_registry

log = logging.getLogger("vpclab.cloudmap")

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
IDLE_S = 60.0


@dataclass(frozen=True)
class VpcListener:
    """Where the process answers for one VPC."""
    vpc: str
    netns: str
    address: str
    http_port: int
    dns_port: int | None        # None: no DNS namespace lives in this VPC


def listeners(config: dict[str, Any]) -> list[VpcListener]:
    return [VpcListener(v["vpc"], v["netns"], v["address"], v["http_port"], v.get("dns_port"))
            for v in config["vpcs"]]


def _socket_in(netns: str, kind: int, address: str, port: int) -> socket.socket:
    from netns_setup.nsenter import NetnsSockets
    with NetnsSockets(netns) as sockets:
        sock = sockets.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    if kind == socket.SOCK_STREAM:
        sock.listen(128)
    sock.setblocking(False)
    return sock


class _DnsUdp(asyncio.DatagramProtocol):
    def __init__(self, server: "CloudMapServer", vpc: str) -> None:
        self.server, self.vpc = server, vpc
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.server.dns_reply(self.vpc, data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class CloudMapServer:
    def __init__(self, registry: str, vpcs: list[VpcListener]) -> None:
        self.registry_path = registry
        self.vpcs = vpcs
        self.stats = {"http_requests": 0, "dns_queries": 0}
        self._servers: list[Any] = []

    def registry(self) -> dict:
        return load_registry(self.registry_path)

    def dns_reply(self, vpc: str, query: bytes) -> bytes | None:
        self.stats["dns_queries"] += 1
        try:
            registry = self.registry()
        except (OSError, ValueError) as exc:
            log.warning("registry %s unreadable: %s", self.registry_path, exc)
            registry = {}
        return dns.respond(registry, vpc, query)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for v in self.vpcs:
            if v.dns_port is not None:
                udp = _socket_in(v.netns, socket.SOCK_DGRAM, v.address, v.dns_port)
                transport, _ = await loop.create_datagram_endpoint(
                    lambda v=v: _DnsUdp(self, v.vpc), sock=udp)
                self._servers.append(transport)
                tcp = _socket_in(v.netns, socket.SOCK_STREAM, v.address, v.dns_port)
                self._servers.append(await asyncio.start_server(
                    lambda r, w, v=v: self._dns_tcp(v.vpc, r, w), sock=tcp))
            http = _socket_in(v.netns, socket.SOCK_STREAM, v.address, v.http_port)
            self._servers.append(await asyncio.start_server(self._http, sock=http))

    def close(self) -> None:
        for server in self._servers:
            server.close()

    async def _dns_tcp(self, vpc: str, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                async with asyncio.timeout(IDLE_S):
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    query = await reader.readexactly(size)
                reply = self.dns_reply(vpc, query)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._http_exchange(reader, writer):
                pass
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def _http_exchange(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> bool:
        """One request and its response; False when the connection is to be closed."""
        async with asyncio.timeout(IDLE_S):
            head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEAD:
            raise ValueError("head too large")
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        version = rest.rpartition(" ")[2]
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if not 0 <= length <= MAX_BODY:
            raise ValueError("body too large")
        body = b""
        if length:
            async with asyncio.timeout(IDLE_S):
                body = await reader.readexactly(length)
        self.stats["http_requests"] += 1
        try:
            status, answer = api.handle(self.registry(), method, headers.get("x-amz-target"),
                                        body)
        except (OSError, ValueError) as exc:
            status, answer = 500, {"__type": "InternalFailure",
                                   "message": f"the lab's registry is unreadable: {exc}"}
        data = json.dumps(answer).encode()
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        reason = {200: "OK", 400: "Bad Request", 500: "Internal Server Error"}[status]
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {api.CONTENT_TYPE}\r\n"
                     f"Content-Length: {len(data)}\r\nx-amzn-RequestId: "
                     f"{uuid.uuid4()}\r\nConnection: {'keep-alive' if keep else 'close'}"
                     f"\r\n\r\n".encode() + data)
        await writer.drain()
        return keep

