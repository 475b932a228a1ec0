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
figure is shown as the rounds' ratios (median, min, max) and as the ratio of the fastest
run of each, the least disturbed. A shared machine still moves these by ±10 %, so the
same figures are also counted in instructions per packet under valgrind's callgrind
(the difference between a run of PACKETS and a run of none, so the set-up cancels out):
a count no neighbour changes. Nothing here asserts on time.
"""
from __future__ import annotations

import importlib.util
import pathlib
import re
import subprocess

import pytest

from conftest import record

HERE = pathlib.Path(__file__).resolve().parent
NATIVE = HERE.parent / "native"
PACKETS, INNER, ROUNDS = 1_000_000, 3, 7
COUNTED = 200_704          # packets under callgrind: a multiple of tap_cost.c's READ_EVERY


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
    times: dict[str, list[float]] = {name: [] for name in figures}
    base: list[float] = []
    for _ in range(ROUNDS):
        base.append(ns_per_packet(binaries["no_tap"], "off"))
        for name, (binary, mode) in figures.items():
            times[name].append(ns_per_packet(binary, mode))
    assert all(t > 0 for ts in times.values() for t in ts)
    record("tap: build without a tap, established packet", "ns/packet", base)
    summary = {}
    for name, values in times.items():
        # each round's ratio (the spread a busy machine gives), and the fastest runs' ratio
        record(f"tap: {name} / build without a tap", "ratio", [v / b for v, b in zip(values, base)])
        record(f"tap: {name} / build without a tap, fastest runs", "ratio", [min(values) / min(base)])
        summary[name] = round(min(values) / min(base), 3)
    print(summary, "fastest ns/packet without a tap:", round(min(base), 1))


def instructions(binary: pathlib.Path, mode: str, packets: int, out: pathlib.Path) -> int:
    run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          str(binary), mode, str(packets), "1"],
                         capture_output=True, text=True, check=True)
    return int(re.search(r"Collected : (\d+)", run.stderr).group(1))


def test_tap_cost_in_instructions(binaries, tmp_path) -> None:
    def per_packet(binary, mode):
        out = tmp_path / "callgrind.out"
        return (instructions(binary, mode, COUNTED, out) - instructions(binary, mode, 0, out)) / COUNTED

    base = per_packet(binaries["no_tap"], "off")
    record("tap: build without a tap, established packet", "instr/pkt", [base])
    summary = {}
    for name, mode in (("tap off", "off"), ("tap on, reader keeping up", "on"),
                       ("tap on, ring full", "full")):
        value = per_packet(binaries["tap"], mode)
        assert value > 0
        record(f"tap: {name} / build without a tap, instructions", "ratio", [value / base])
        summary[name] = f"{value:.1f} instr/pkt, ratio {value / base:.4f}"
    print(summary, "without a tap:", f"{base:.1f} instr/pkt")
