"""The forwarder's frame limit as a plain number, for code that must not load the engine.

The forwarder receives into ring slots of 64 KiB; a slot holds the packet header, the
virtio-net header and the frame, so the largest frame it takes is `MAX_FRAME` bytes
(`hp_io_max_frame(0)` in native/hp_io.c; a unit test checks they agree). Devices that
transmit into the forwarder get their GSO size capped below it (netns_setup/offload.py),
which `up` does long before, and without, the compiled engine.
"""
from __future__ import annotations

MAX_FRAME = 65460
