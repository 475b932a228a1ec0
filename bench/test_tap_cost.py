"""What the Hyperplane tap (native/hp_tap.c) costs the engine, as ratios of ns per packet.

bench/tap_cost.c is compiled with the engine's sources and native/build_native.py's own
flags twice: as the engine is built, and with -DHP_NO_TAP, which removes the test of
e->tap from hp_process() (the build "without a tap"). Three figures, each against that
build without a tap, on established UDP flows in batches of 64 (tap_cost.c says more):

* tap off: the price of the two predicted branches per frame ("no cost when off");
* tap on, a reader keeping up: every frame copied twice (as it arrived, as it left) and
  the records read out every 1,024 packets;
* tap on, nobody reading: the ring full, every frame's records counted as dropped.

The builds run in turn, round after round, so a busy machine slows them alike; each
figure is the median of the rounds' ratios. Nothing here asserts on time.
"""
from __future__ import annotations

import importlib.util
import pathlib
import statistics
import subprocess

import pytest

from conftest import record

HERE = pathlib.Path(__file__).resolve().parent
NATIVE = HERE.parent / "native"
PACKETS, INNER, ROUNDS = 1_000_000, 3, 7


def build_native():
    spec = importlib.util.spec_from_file_location("build_native", NATIVE / "build_native.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def binaries(tmp_path_factory) -> dict[str, pathlib.Path]:
    """The harness built with the tap ('tap') and without it ('no_tap')."""
    native = build_native()
    compile_args, link_args = native._flags()
    sources = [str(HERE.parent / s) for s in native.SOURCES if "hp_io" not in s]
    out = tmp_path_factory.mktemp("tap_cost")
    built = {}
    for name, extra in (("tap", []), ("no_tap", ["-DHP_NO_TAP"])):
        built[name] = out / name
        subprocess.run(["gcc", *compile_args, *extra, f"-I{NATIVE}", str(HERE / "tap_cost.c"),
                        *sources, *link_args, "-o", str(built[name])], check=True)
    return built


def ns_per_packet(binary: pathlib.Path, mode: str) -> float:
    run = subprocess.run([str(binary), mode, str(PACKETS), str(INNER)], capture_output=True,
                         text=True, check=True)
    return min(float(line) for line in run.stdout.split())


def test_tap_cost_ratios(binaries) -> None:
    figures = {"tap off": (binaries["tap"], "off"), "tap on, reader keeping up": (binaries["tap"], "on"),
               "tap on, ring full": (binaries["tap"], "full")}
    ratios: dict[str, list[float]] = {name: [] for name in figures}
    base: list[float] = []
    for _ in range(ROUNDS):
        without = ns_per_packet(binaries["no_tap"], "off")
        base.append(without)
        for name, (binary, mode) in figures.items():
            ratios[name].append(ns_per_packet(binary, mode) / without)
    assert all(r > 0 for rs in ratios.values() for r in rs)
    record("tap: build without a tap, established packet", "ns/packet", base)
    for name, values in ratios.items():
        record(f"tap: {name} / build without a tap", "ratio", values)
    print({name: round(statistics.median(v), 3) for name, v in ratios.items()},
          "base ns/packet", round(statistics.median(base), 1))
