"""Scan stage wall time against its slowest scanner (one run, printed as ratios).

Run: .venv/bin/python benchmarks/scan_bench.py [SERVICE_DIR [IMAGE]]
Defaults: the sample service and the stack's base image (by name; the pipeline scans by
digest). Every scanner runs concurrently, so the stage should take about as long as its
slowest job: the image job is Trivy's image analysis, then the vulnerability part on the
SBOM and the SBOM's Python packages, in sequence. Claim: wall / slowest scanner <= 1.2.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from runbook.policy import ScanSettings
from runbook.scan import runner
from runbook.scan.models import Coverage
from runbook.settings import StackSettings

DEFAULT = Path(__file__).resolve().parents[1] / "examples" / "agent-api"
IMAGE_JOB = ("trivy", "trivy-vuln", "image-dependencies")  # one after the other


def main() -> None:
    directory = (Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT).resolve()
    settings = StackSettings()
    image = sys.argv[2] if len(sys.argv) > 2 else settings.base_image
    policy = ScanSettings()
    with tempfile.TemporaryDirectory(prefix="scan-bench-") as output:
        target = runner.ImageTarget(reference=image, output_dir=Path(output),
                                    options=runner.trivy_options(policy, settings.docker_host))
        report = runner.scan_service("bench", "staging", directory, directory / "Dockerfile",
                                     target, policy, Coverage())
    for result in report.results:
        print(f"{result.scanner:18s} {result.status.value:15s} {result.duration_s:7.3f} s  "
              f"{result.detail[:70]}")
    slowest = max(r.duration_s for r in report.results)
    image_job = sum(r.duration_s for r in report.results if r.scanner in IMAGE_JOB)
    print(f"stage wall time {report.wall_time_s:.3f} s; sum of scanners "
          f"{report.scanner_time_s:.3f} s; slowest scanner {slowest:.3f} s; "
          f"image job (sequential) {image_job:.3f} s")
    print(f"wall / sum = {report.wall_time_s / report.scanner_time_s:.2f}; "
          f"wall / slowest scanner = {report.wall_time_s / slowest:.2f}; "
          f"wall / image job = {report.wall_time_s / image_job:.2f}")


if __name__ == "__main__":
    main()
