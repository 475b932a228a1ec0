"""The forwarder's control socket: one JSON object per line each way, over a Unix socket
under the lab's run directory (/run/vpclab/<lab>/forwarder.sock).

Requests are {"cmd": NAME, ...arguments}; replies are {"ok": true, ...} or
{"ok": false, "error": "what was wrong"}. Commands: ping, stats, flows, flowlogs (VPC Flow
Logs, forwarder/flowlogs.py), apply (a new spec, see spec.py), clock (move the engine's
clock by offset_s seconds), tap (the engine's tap, polled: start, read, stop; tap.py),
trace (the engine's dry run of one packet, dataplane/trace/dryrun.py), stop.

The same protocol serves the HTTP services (dataplane/services/serving.py): API Gateway's
front end (ping, stats, stop) and the ALB nodes (ping, stats, health, stop). `call()` is
the client of all; `answer()` is the servers' side of one line, so all answer alike.
"""
from __future__ import annotations

import json
import socket
from typing import Any, Callable


class ControlError(RuntimeError):
    """The process (the forwarder, the front end) refused a command or could not be
    reached; the message says which."""


def _who(path: str) -> str:
    """Who listens on a lab's control socket, for messages: by its file name (the
    forwarder's, unless it is the front end's or an ALB node's, under `alb/`)."""
    if path.endswith("apigw.sock"):
        return "API Gateway front end"
    return "ALB node" if "/alb/" in path else "forwarder"


def call(path: str, cmd: str, timeout: float = 10.0, **args: Any) -> dict:
    """Sends one command to the process listening at `path` and returns its reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControlError(f"no {_who(path)} is listening on {path} "
                               f"({exc.strerror})") from None
        sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        with sock.makefile("rb") as stream:
            line = stream.readline()
    if not line:
        raise ControlError(f"the {_who(path)} on {path} closed the connection without "
                           f"answering {cmd}")
    reply = json.loads(line)
    if not reply.get("ok"):
        raise ControlError(reply.get("error", f"{cmd} failed"))
    return reply


def answer(line: bytes, handle: Callable[[dict], dict],
           refused: tuple[type[BaseException], ...] = ()) -> tuple[bytes, bool]:
    """The reply line to one request line, and whether the request was `stop` (the server
    stops after sending the reply). `handle(request)` answers every other command; the
    exceptions in `refused` (and bad JSON, a missing argument, a wrong type) become
    {"ok": false, "error": ...} instead of ending the server."""
    stop = False
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise ValueError(f"a request is a JSON object like {{\"cmd\": \"ping\"}}, not {line[:60]!r}")
        if request.get("cmd") == "stop":
            reply, stop = {"ok": True}, True
        else:
            reply = {"ok": True, **handle(request)}
    except (*refused, KeyError, ValueError, TypeError) as exc:
        reply = {"ok": False, "error": str(exc)}
    return json.dumps(reply).encode() + b"\n", stop
