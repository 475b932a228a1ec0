"""The forwarder's settings (the spec's "io" object): refused with a sentence naming what
is wrong, before any socket or thread exists. No root needed: nothing is opened."""
from __future__ import annotations

import pytest

from dataplane.forwarder.engine import Engine, EngineError
from dataplane.forwarder.io import Forwarder, max_frame
from dataplane.compile.spec import ForwarderSpec, IoSettings, SpecError


@pytest.mark.parametrize("settings, words", [
    ({"slot_size": 48 * 1024}, "slot size 49152 is not a power of two"),
    ({"slot_size": 2048}, "slot size 2048 is not a power of two from 4096"),
    ({"ring_slots": 64}, "64 slots per ring is outside 128-65536"),
    ({"busy_poll_us": 2_000_000}, "busy polling for 2000000 us is more than a second"),
    ({"rt_priority": 100}, "real-time priority 100 is outside 0-99"),
])
def test_bad_settings_are_refused_by_name(settings: dict, words: str) -> None:
    with pytest.raises(EngineError, match=words):
        Forwarder(Engine(flow_capacity=64), **settings)


def test_good_settings_are_taken() -> None:
    with Forwarder(Engine(flow_capacity=64), ring_slots=512, slot_size=1 << 15,
                   busy_poll_us=50, rt_priority=0) as fwd:
        assert fwd.max_frame == max_frame(1 << 15) < max_frame()


def test_a_slot_takes_a_gso_frame_of_the_default_64k() -> None:
    """65,460 bytes: the kernel puts a frame 76 bytes into a slot (header, sockaddr_ll,
    alignment, virtio-net header); TCP keeps its GSO frames below gso_max_size."""
    assert max_frame() == 65536 - 76


@pytest.mark.parametrize("io, words", [
    ({"ring_size": 4}, "io: unknown field 'ring_size'"),
    ({"slot_size": "64k"}, "io.slot_size: '64k' is not an integer"),
    ({"rt_priority": True}, "io.rt_priority: True is not an integer"),
    ({"busy_poll_us": -1}, "io.busy_poll_us: -1 is not a non-negative integer"),
])
def test_spec_io_is_checked(io: dict, words: str) -> None:
    with pytest.raises(SpecError, match=words):
        ForwarderSpec.from_json({"io": io})


def test_spec_io_gives_only_the_settings_it_has() -> None:
    assert IoSettings.from_json({"slot_size": 4096}).given() == {"slot_size": 4096}
