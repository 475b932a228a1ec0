"""`vpclab capture -l LAB --hyperplane [ENI]`: what the Hyperplane engine saw and sent.

The forwarder's tap (native/hp_tap.c, dataplane/forwarder/tap.py) records every frame the
engine is handed as it arrived (stage `in`) and, unless it was dropped, as it left after
translation (stage `out`: the endpoint's VIP become the NLB's address, the client's port
the SNAT port, or the ARP reply or RST built in its place), each with the ENI it arrived on
or left by, the frame's verdict and its drop reason. This reader polls the tap through the
control socket a few times a second and writes

* with `-w FILE` (or `-w -`, stdout, for a pipe into `wireshark -k -i -`): pcapng, one
  interface per ENI named by its eni- ID, each frame with the comment
  `eni=… stage=in|out verdict=… drop=<reason>` and its direction (inbound for `in`,
  outbound for `out`), which `tshark -r FILE -T fields -e frame.comment` shows;
* without `-w`: one line per frame, as `tcpdump -n` prints it, after the time, the ENI and
  the stage, and before the verdict and drop reason.

ENI (an eni- ID, VPC/endpoint-or-NLB with one ENI, or any port name of the forwarder)
keeps the frames that arrive on or leave by that ENI, both their records. It ends after
`-c COUNT` frames, after `--duration S` seconds, or on Ctrl-C or SIGTERM, and turns the
tap off in every case; if this reader is killed outright, the forwarder turns it off
itself within three seconds (tap.LEASE_S). Frames the tap could not keep (its ring was
full: the reader fell behind) are counted and reported at the end.
"""
from __future__ import annotations

import base64
import datetime
import ipaddress
import signal
import struct
import sys
import time
from typing import Any, Callable

from ..forwarder import control
from ..forwarder.pcapng import PcapngWriter
from ..lab import hyperplane_of
from .common import EXIT_OK, CliError

POLL_S = 0.1
STDOUT = "-"


# ---- one line per frame, as tcpdump -n -------------------------------------------------

TCP_FLAGS = ((0x02, "S"), (0x01, "F"), (0x08, "P"), (0x04, "R"), (0x20, "U"), (0x40, "E"),
             (0x80, "W"), (0x10, "."))
ICMP_TYPES = {0: "echo reply", 3: "unreachable", 8: "echo request", 11: "time exceeded",
              12: "parameter problem"}


def _ip(b: bytes) -> str:
    return str(ipaddress.IPv4Address(b))


def describe(frame: bytes) -> str:
    """The frame in tcpdump -n's words (ARP, IPv4 with TCP, UDP or ICMP), for a line."""
    if len(frame) < 14:
        return f"truncated frame, length {len(frame)}"
    ethertype, off = struct.unpack_from("!H", frame, 12)[0], 14
    if ethertype in (0x8100, 0x88A8) and len(frame) >= 18:
        ethertype, off = struct.unpack_from("!H", frame, 16)[0], 18
    body = frame[off:]
    if ethertype == 0x0806 and len(body) >= 28:
        op = struct.unpack_from("!H", body, 6)[0]
        if op == 1:
            return f"ARP, Request who-has {_ip(body[24:28])} tell {_ip(body[14:18])}, length {len(body)}"
        mac = ":".join(f"{x:02x}" for x in body[8:14])
        return f"ARP, Reply {_ip(body[14:18])} is-at {mac}, length {len(body)}"
    if ethertype != 0x0800 or len(body) < 20:
        return f"ethertype 0x{ethertype:04x}, length {len(frame)}"
    ihl, total, proto = (body[0] & 15) * 4, struct.unpack_from("!H", body, 2)[0], body[9]
    src, dst, l4 = _ip(body[12:16]), _ip(body[16:20]), body[ihl:]
    if proto == 6 and len(l4) >= 20:
        sport, dport, seq, ack = struct.unpack_from("!HHII", l4)
        flags = "".join(c for bit, c in TCP_FLAGS if l4[13] & bit) or "none"
        payload = max(0, total - ihl - (l4[12] >> 4) * 4)
        text = f"IP {src}.{sport} > {dst}.{dport}: Flags [{flags}], seq {seq}"
        return text + (f", ack {ack}" if l4[13] & 0x10 else "") + f", length {payload}"
    if proto == 17 and len(l4) >= 8:
        sport, dport, length = struct.unpack_from("!HHH", l4)
        return f"IP {src}.{sport} > {dst}.{dport}: UDP, length {max(0, length - 8)}"
    if proto == 1 and len(l4) >= 8:
        kind = ICMP_TYPES.get(l4[0], f"type {l4[0]}")
        if l4[0] in (0, 8):
            ident, seq = struct.unpack_from("!HH", l4, 4)
            kind += f", id {ident}, seq {seq}"
        return f"IP {src} > {dst}: ICMP {kind}, length {total - ihl}"
    return f"IP {src} > {dst}: ip-proto-{proto}, length {total - ihl}"


def comment(r: dict[str, Any]) -> str:
    """The engine's words for a record: the pcapng comment, and the tail of a text line."""
    return f"eni={r['eni']} stage={r['stage']} verdict={r['verdict']} drop={r['drop_reason']}"


def text_line(r: dict[str, Any], frame: bytes) -> str:
    t = datetime.datetime.fromtimestamp(r["ts_ns"] / 1e9).strftime("%H:%M:%S.%f")
    return f"{t} {r['eni']} {r['stage']:<3} {describe(frame)} | {comment(r)}"


# ---- the reader ----------------------------------------------------------------------------

def _descriptions(st) -> dict[str, str]:
    """Each Hyperplane ENI's description for its pcapng interface, by eni- ID."""
    return {e["eni_id"]: f"{e['kind']} ENI of {e['vpc']}/{e['owner']}, {e['ip']} in {e['subnet']}"
            for e in st.data.get("hyperplane", {}).get("enis", [])}


class _Stop(Exception):
    """SIGTERM: end like Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise _Stop()


def capture(st, eni: str | None, stage: str, write: str | None, count: int | None,
            duration: float | None, snaplen: int) -> int:
    sock = hyperplane_of(st)["socket"]
    try:
        started = control.call(sock, "tap", action="start", eni=eni, stage=stage, snaplen=snaplen)
    except control.ControlError as exc:
        raise CliError(f"cannot start the tap: {exc}") from None
    session = started["session"]
    descriptions = _descriptions(st)
    out: Callable[[dict[str, Any], bytes], None]
    if write is None:
        def out(r, frame):
            print(text_line(r, frame), flush=True)
    else:
        stream = sys.stdout.buffer if write == STDOUT else open(write, "wb")
        writer = PcapngWriter(stream, flush=True)

        def out(r, frame):
            iface = writer.interface(r["eni"], descriptions.get(r["eni"], "Hyperplane port "
                                                                 f"{r['port']}"), started["snaplen"])
            writer.packet(iface, r["ts_ns"], frame, r["orig_len"], comment(r), r["stage"])
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    seen, result = 0, {"kept": 0, "dropped": 0}
    deadline = None if duration is None else time.monotonic() + duration
    print(f"capturing the Hyperplane of lab {st.lab}"
          f"{' on ' + eni if eni else ''}, stage {stage}", file=sys.stderr, flush=True)
    try:
        while count is None or seen < count:
            reply = control.call(sock, "tap", action="read", session=session)
            for r in reply["records"][: None if count is None else count - seen]:
                out(r, base64.b64decode(r["frame"]))
                seen += 1
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not reply["pending"]:
                time.sleep(POLL_S if deadline is None else
                           max(0.0, min(POLL_S, deadline - time.monotonic())))
    except (KeyboardInterrupt, _Stop):
        pass
    except control.ControlError as exc:
        raise CliError(f"the capture ended: {exc}") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        try:
            result = control.call(sock, "tap", action="stop", session=session)
        except control.ControlError:
            pass   # the forwarder went away, or turned the tap off itself: nothing to stop
        if write not in (None, STDOUT):
            stream.close()
    print(f"{seen} frame(s) captured; the tap kept {result['kept']} record(s) and dropped "
          f"{result['dropped']} for want of room in its ring", file=sys.stderr)
    return EXIT_OK
