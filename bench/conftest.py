"""Collects what the benchmarks measured and prints one table at the end of the run."""
from __future__ import annotations

import platform

RESULTS: list[tuple[str, str, float, float, float, str]] = []


def record(name: str, unit: str, values: list[float], note: str = "") -> None:
    """Keeps a figure: its name, unit, and every run (median, min and max are shown)."""
    values = sorted(values)
    RESULTS.append((name, unit, values[len(values) // 2], values[0], values[-1], note))


def pytest_terminal_summary(terminalreporter) -> None:
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("vpclab engine benchmark")
    tr.write_line(f"machine: {platform.machine()}, {platform.processor() or '?'}, "
                  f"Python {platform.python_version()}, kernel {platform.release()}")
    width = max(len(r[0]) for r in RESULTS)
    tr.write_line(f"{'figure':<{width}}  {'median':>10}  {'min':>10}  {'max':>10}  unit        target")
    for name, unit, med, lo, hi, note in RESULTS:
        tr.write_line(f"{name:<{width}}  {med:>10.1f}  {lo:>10.1f}  {hi:>10.1f}  {unit:<10}  {note}")
