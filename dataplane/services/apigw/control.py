"""The front end's control socket: the forwarder's protocol (dataplane/forwarder/control.py,
one JSON object per line each way, over a Unix socket), served from the event loop.

Commands: `ping` (→ `pid`), `stats` (the engine's counters — connections, requests,
responses by status class, errors by kind — and the personality's — requests per
API/stage, gateway errors by kind), `stop` (the same as SIGTERM). Clients use
`dataplane.forwarder.control.call(path, cmd)`.
"""
from __future__ import annotations

import asyncio
import os
from typing import Callable

from dataplane.forwarder.control import answer


async def serve_control(path: str, handle: Callable[[dict], dict],
                        on_stop: Callable[[], None]) -> asyncio.AbstractServer:
    """Listens on `path` (a stale socket file of a killed front end is replaced)."""
    if os.path.exists(path):
        os.unlink(path)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply, stop = answer(line, handle)
                writer.write(reply)
                await writer.drain()
                if stop:
                    on_stop()
                    break
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass                         # a client that left or sent a monstrous line
        finally:
            writer.close()

    return await asyncio.start_unix_server(client, path)
