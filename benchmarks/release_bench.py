"""Releases on the local stack, measured from a client's side, in one run.

Delivers a copy of the sample service to staging with `runbook pipeline` (as a user would)
while a client requests its endpoint back to back, and prints:

- how long the endpoint served errors for releases failing 40 % and 10 % of requests
  shortly after promotion (inside the analysis window), and for one failing 60 s after it
  started (after the window, inside the guard);
- failed requests (connection errors, the router's 502/503/504) across a good switch and
  across a rollback;
- the rerun of an unchanged verified revision, as a ratio of the first run's wall time.

On a 2-core machine shared with other work, read the spans against the analysis interval
and the ratios, not the absolute numbers.

    .venv/bin/python benchmarks/release_bench.py [--interval 3] [--window 15] [--guard 120]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runbook import stack  # noqa: E402
from runbook.models import Outcome, RunReport  # noqa: E402
from runbook.settings import StackSettings  # noqa: E402
from runbook.settings_root import RunbookSettings  # noqa: E402
from runbook.targets import make_target  # noqa: E402
from tests.traffic import ContinuousClient  # noqa: E402

SAMPLE = REPO / "examples" / "agent-api"
RUNBOOK = str(Path(sys.executable).parent / "runbook")


def deliver(service_dir: Path, *build_args: str) -> tuple[RunReport, float]:
    report_path = service_dir.parent / f"report-{time.monotonic_ns()}.json"
    command = [RUNBOOK, "pipeline", str(service_dir), "--env", "staging", "--report",
               str(report_path)]
    for arg in build_args:
        command += ["--build-arg", arg]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, timeout=900,
                               check=False)
    took = time.perf_counter() - started
    if not report_path.exists():
        raise SystemExit(f"no report: {completed.stdout[-2000:]}{completed.stderr[-2000:]}")
    return RunReport.model_validate_json(report_path.read_text()), took


def version_at(endpoint: str) -> str:
    return str(httpx.get(endpoint + "/", timeout=5).json()["version"])


def make_service(directory: Path, args: argparse.Namespace) -> Path:
    service = directory / "svc"
    shutil.copytree(SAMPLE, service, ignore=shutil.ignore_patterns("__pycache__"))
    spec = yaml.safe_load((service / "service.yaml").read_text())
    spec["name"] = f"bench-{uuid.uuid4().hex[:6]}"
    spec["policy"] = {
        "perf": {"users": 4, "duration_s": 4},
        # The perf stage is not measured here; a shared machine's p95 noise must not block.
        "thresholds": {"perf_degradation_floor_s": 1.0},
        "analysis": {"window_s": args.window, "interval_s": args.interval,
                     "guard_s": args.guard},
        "deploy": {"health_timeout_s": 20},
    }
    (service / "service.yaml").write_text(yaml.safe_dump(spec))
    return service


def bad_release(service: Path, endpoint: str, rate: str, after_s: int,
                version: str) -> tuple[RunReport, ContinuousClient]:
    with ContinuousClient(endpoint) as client:
        report, _ = deliver(service, f"VERSION={version}", f"ERROR_RATE={rate}",
                            f"DEGRADE_AFTER_S={after_s}")
        time.sleep(2)
    return report, client


def guarded_release(service: Path, endpoint: str, good_version: str,
                    deadline_s: float) -> tuple[RunReport, ContinuousClient, bool]:
    with ContinuousClient(endpoint) as client:
        report, _ = deliver(service, "VERSION=late", "ERROR_RATE=0.3", "DEGRADE_AFTER_S=60")
        deadline = time.monotonic() + deadline_s
        while version_at(endpoint) != good_version and time.monotonic() < deadline:
            time.sleep(0.25)
        rolled_back = version_at(endpoint) == good_version
        time.sleep(2)
    return report, client, rolled_back


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=3.0)
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--guard", type=float, default=120.0)
    args = parser.parse_args()
    settings = StackSettings()
    unhealthy = [s.name for s in stack.up(settings) if not s.healthy]
    if unhealthy:
        raise SystemExit(f"local stack not healthy: {unhealthy}")
    with tempfile.TemporaryDirectory() as tmp:
        service = make_service(Path(tmp), args)
        name = yaml.safe_load((service / "service.yaml").read_text())["name"]
        try:
            rows = run(service, args)
        finally:
            make_target("docker", RunbookSettings.of(settings)).decommission(name, "staging")
    width = max(len(label) for label, _ in rows)
    print(f"\nrelease benchmark (analysis interval {args.interval:g} s, window "
          f"{args.window:g} s, guard {args.guard:g} s)")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    return 0


def run(service: Path, args: argparse.Namespace) -> list[tuple[str, str]]:
    first, first_s = deliver(service, "VERSION=1")
    assert first.outcome is Outcome.RELEASED, first.reason
    endpoint = str(first.endpoint)
    again, again_s = deliver(service, "VERSION=1")
    assert again.outcome is Outcome.RELEASED, again.reason

    with ContinuousClient(endpoint) as switch:
        good, _ = deliver(service, "VERSION=2")
        time.sleep(2)
    assert good.outcome is Outcome.RELEASED, good.reason

    rows = [
        ("rerun of the unchanged verified revision / first run",
         f"{again_s / first_s:.2f} ({again_s:.1f} s / {first_s:.1f} s)"),
        ("failed requests across a good switch",
         f"{len(switch.dropped)} of {switch.total}"),
    ]
    for rate in ("0.4", "0.1"):
        report, client = bad_release(service, endpoint, rate, 12, f"bad-{rate}")
        rows.append((f"errors served by a release failing {float(rate):.0%} (s)",
                     f"{client.error_span_s():.1f} ({report.outcome.value}; "
                     f"{len(client.app_errors)} errors)"))
        if rate == "0.4":
            rows.append(("failed requests across a rollback",
                         f"{len(client.dropped)} of {client.total}"))
    report, client, rolled_back = guarded_release(service, endpoint, "2", args.guard + 30)
    rows.append(("errors served by a release failing 30 % 60 s after start (guard) (s)",
                 f"{client.error_span_s():.1f} (pipeline {report.outcome.value}, guard "
                 f"{'rolled back' if rolled_back else 'did NOT roll back'})"))
    return rows


if __name__ == "__main__":
    sys.exit(main())
