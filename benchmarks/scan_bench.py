"""Scan stage wall time against the sum of its scanners' times (one run, printed as a ratio).

Run: .venv/bin/python benchmarks/scan_bench.py [SERVICE_DIR]
A ratio near max/sum means the scanners overlapped; 1.0 would mean they ran one by one.
"""

from __future__ import annotations

import sys
from pathlib import Path

from runbook.policy import ScanSettings
from runbook.scan import runner
from runbook.scan.models import Coverage

DEFAULT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "scan" / "planted"


def main() -> None:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    report = runner.scan_service("bench", "staging", directory.resolve(),
                                 directory.resolve() / "Dockerfile", "bench@sha256:0",
                                 ScanSettings(), Coverage())
    for result in report.results:
        print(f"{result.scanner:15s} {result.status.value:15s} {result.duration_s:6.3f} s")
    slowest = max(r.duration_s for r in report.results)
    print(f"stage wall time {report.wall_time_s:.3f} s; sum of scanners "
          f"{report.scanner_time_s:.3f} s; slowest {slowest:.3f} s")
    print(f"wall / sum = {report.wall_time_s / report.scanner_time_s:.2f}; "
          f"wall / slowest = {report.wall_time_s / slowest:.2f}")


if __name__ == "__main__":
    main()
