"""The totals of one `make fuzz` run, from its workers' logs (build/fuzz/fuzz-N.log).

Usage: python native/fuzz/summary.py fuzz-0.log fuzz-1.log ...

libFuzzer's -jobs mode leaves one log per worker; this prints, per worker and in all, the
inputs run, their rate and the coverage reached (libFuzzer's `cov` and `ft` of the last
status line), and the first report line of any worker that stopped on one.
"""
from __future__ import annotations

import re
import sys

STAT = re.compile(r"^stat::(\w+):\s+(\d+)")
STATUS = re.compile(r"cov: (\d+) ft: (\d+)")
REPORT = re.compile(r"^(==\d+==ERROR|.*runtime error:|==\d+== ERROR: libFuzzer|SUMMARY:)")


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    total_runs, total_rate, reports = 0, 0, []
    for path in paths:
        stats, cov, report = {}, ("?", "?"), None
        with open(path, errors="replace") as log:
            for line in log:
                if m := STAT.match(line):
                    stats[m.group(1)] = int(m.group(2))
                elif m := STATUS.search(line):
                    cov = m.groups()
                elif report is None and REPORT.match(line):
                    report = line.strip()
        runs, rate = stats.get("number_of_executed_units", 0), stats.get("average_exec_per_sec", 0)
        total_runs, total_rate = total_runs + runs, total_rate + rate
        print(f"fuzz: {path}: {runs:,} inputs, {rate:,}/s, cov {cov[0]} ft {cov[1]}"
              + (f"  REPORT: {report}" if report else ""))
        if report:
            reports.append(path)
    print(f"fuzz: all workers: {total_runs:,} inputs, {total_rate:,}/s"
          + (f"; reports in {', '.join(reports)}" if reports else "; no report"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
