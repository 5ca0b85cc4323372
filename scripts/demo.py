"""`make demo`: deliver the sample service twice on the local stack.

Release 1 is good and must end `released`; release 2 starts failing 30 % of its requests
shortly after it goes live and must end `rolled_back` by itself, leaving release 1 serving.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "examples" / "agent-api"
RUNBOOK = Path(sys.executable).parent / "runbook"
RELEASES = [
    ("release 1 (good)", ["VERSION=1"], "released"),
    # Healthy through preview and load test, then 30 % errors 20 s after start: only the
    # post-promotion analysis can catch it.
    ("release 2 (bad)", ["VERSION=2", "ERROR_RATE=0.3", "DEGRADE_AFTER_S=20"], "rolled_back"),
]


def deliver(label: str, build_args: list[str], workdir: Path) -> dict[str, object]:
    report = workdir / f"{label.split(' (')[0].replace(' ', '-')}.json"
    command = [str(RUNBOOK), "pipeline", str(SERVICE), "--env", "staging", "--report",
               str(report)]
    for arg in build_args:
        command += ["--build-arg", arg]
    print(f"\n=== {label}: {' '.join(command[1:])}", flush=True)
    subprocess.run(command, check=False, timeout=900)
    return json.loads(report.read_text())


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="runbook-demo-"))
    outcomes = []
    for label, build_args, expected in RELEASES:
        report = deliver(label, build_args, workdir)
        outcomes.append((label, report, expected))
    endpoint = str(outcomes[-1][1]["endpoint"])
    serving = httpx.get(endpoint + "/", timeout=5).json()
    print("\n=== summary")
    ok = True
    for label, report, expected in outcomes:
        mark = "ok" if report["outcome"] == expected else f"UNEXPECTED (wanted {expected})"
        ok &= report["outcome"] == expected
        print(f"{label}: {report['outcome']} revision={report['revision']} [{mark}]")
    print(f"endpoint {endpoint} serves version {serving.get('version')}")
    print(f"reports in {workdir}")
    print(f"Prefect UI: {outcomes[-1][1].get('flow_run_url') or 'http://127.0.0.1:4200'}")
    ok &= str(serving.get("version")) == "1"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
