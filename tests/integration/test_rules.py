"""The rules and the Alertmanager config in deployments/ are valid and do what they say;
a real Alertmanager delivers to the runbook receiver, which opens and resolves incidents."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from runbook.alerts.notifier import Notifier
from runbook.alerts.receiver import make_server
from runbook.alerts.settings import AlertSettings
from runbook.incidents import IncidentStatus, Priority

REPO = Path(__file__).resolve().parents[2]
RULES = sorted((REPO / "deployments" / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((REPO / "deployments" / "prometheus" / "tests").glob("*.yml"))
ALERTMANAGER_CONFIG = REPO / "deployments" / "alertmanager" / "alertmanager.yml"
DASHBOARD = REPO / "deployments" / "grafana" / "runbook-dashboard.json"


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} missing: `runbook stack up` installs the Debian prometheus packages"
    return path


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_promtool_check_rules() -> None:
    assert RULES
    result = _run(_tool("promtool"), "check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    assert RULE_TESTS
    result = _run(_tool("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_rule_names_severity_and_kind() -> None:
    from runbook.alerts.models import AlertKind, Severity

    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert Severity(rule["labels"]["severity"])
                    assert AlertKind(rule["labels"]["kind"])


def test_amtool_check_config() -> None:
    result = _run(_tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Notifier, int]]:
    notifier = Notifier(tmp_path / "state", AlertSettings(_env_file=None))
    server = make_server("127.0.0.1", 0, notifier)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield notifier, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def alertmanager(tmp_path: Path, receiver: tuple[Notifier, int]) -> Iterator[str]:
    """A private Alertmanager (not the shared stack's) running deployments' config, with
    the receiver URL and waits shortened for the test."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["receivers"][0]["webhook_configs"][0]["url"] = (
        f"http://127.0.0.1:{receiver[1]}/alertmanager")
    config["route"]["group_wait"] = "0s"
    config["route"]["group_interval"] = "1s"
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    port = _free_port()
    process = subprocess.Popen(
        [_tool("prometheus-alertmanager"), f"--config.file={path}",
         f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200, 20)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait(condition: object, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if condition():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {deadline_s} s")


def test_alertmanager_delivers_to_the_receiver_which_opens_and_resolves_an_incident(
    alertmanager: str, receiver: tuple[Notifier, int]
) -> None:
    notifier, _ = receiver
    now = datetime.now(UTC)
    alert = {
        "labels": {"alertname": "RunbookErrorRateCritical", "severity": "critical",
                   "kind": "performance_degradation", "proxy": "shop.production",
                   "service": "shop", "environment": "production"},
        "annotations": {"summary": "error rate 9% > 5 % on shop.production"},
        "startsAt": (now - timedelta(minutes=1)).isoformat(), "generatorURL": "http://127.0.0.1:9090/graph",
    }
    _post(alertmanager, alert)
    _wait(lambda: len(notifier.incidents.all()) == 1, 30)
    (incident,) = notifier.incidents.all()
    assert (incident.priority, incident.status) == (Priority.P2, IncidentStatus.OPEN)
    assert incident.dedup_key == ("runbook/shop/production/performance_degradation/"
                                  "RunbookErrorRateCritical")
    assert len(notifier.outbox.pending()) == 1  # no channel configured here: it waits

    alert["endsAt"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    _post(alertmanager, alert)
    _wait(lambda: notifier.incidents.all()[0].status is IncidentStatus.RESOLVED, 30)
    assert len(notifier.outbox.pending()) == 2  # the trigger and its resolution


def _post(alertmanager: str, alert: dict[str, object]) -> None:
    response = httpx.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=5)
    assert response.status_code == 200, response.text


def test_pipeline_rules_use_the_series_the_pipeline_pushes() -> None:
    """Every runbook_pipeline_* series a rule reads is one the Pushgateway adapter exposes."""
    import re

    from prometheus_client import CollectorRegistry, generate_latest

    from runbook.adapters.pushgateway import _LastRunCollector, _RunCollector
    from runbook.run_metrics import RunSample, StageSample

    sample = RunSample(
        service="shop", environment="staging", run="r1", outcome="released",
        finished_at_s=0.0,
        stages=[StageSample(stage="build", outcome="passed", duration_s=1.0),
                StageSample(stage="deploy", outcome="passed", duration_s=2.0)])
    registry = CollectorRegistry()
    registry.register(_RunCollector(sample))
    registry.register(_LastRunCollector(sample))
    pushed = {line.split("{")[0].split(" ")[0]
              for line in generate_latest(registry).decode().splitlines()
              if line and not line.startswith("#")}
    read = {name for path in [*RULES, DASHBOARD] for name in
            re.findall(r"\brunbook_pipeline_[a-z_]+", path.read_text())}
    assert read, "no rule reads the pipeline's series"
    assert read <= pushed, f"rules read series nobody pushes: {sorted(read - pushed)}"
