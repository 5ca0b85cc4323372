"""Daily health's application metrics and trend, the base image in the revision, and the
base-image check's rebuild decision (pure functions, no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from runbook.build import content_revision, dockerfile_bases
from runbook.ops.app_metrics import production_routes, route_metrics
from runbook.ops.base_image import BaseImageStatus, Rebuild, plan_rebuilds
from runbook.ops.chart import trend_chart
from runbook.ops.health import RunKind, RunRecord, pipeline_health
from runbook.ops.markdown import health_markdown
from runbook.ops.policy import HealthTargets
from runbook.ops.trend import daily_trend
from runbook.service import load_service

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_a_different_base_image_id_gives_a_different_revision(tmp_path: Path) -> None:
    (tmp_path / "service.yaml").write_text("name: a\nport: 80\n")
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\n")
    service = load_service(tmp_path)
    unresolved = content_revision(service, {})
    old = content_revision(service, {}, {"python:3.11-slim": "sha256:" + "1" * 64})
    assert content_revision(service, {}, {}) == unresolved  # unresolved: as before
    assert old != unresolved
    assert content_revision(service, {}, {"python:3.11-slim": "sha256:" + "1" * 64}) == old
    assert content_revision(service, {}, {"python:3.11-slim": "sha256:" + "2" * 64}) != old


def test_dockerfile_bases_follow_args_and_skip_stages_and_scratch() -> None:
    text = """# syntax=docker/dockerfile:1
ARG PY=3.11
FROM --platform=linux/amd64 python:${PY}-slim AS build
RUN echo \\
    FROM not-an-instruction
FROM build AS test
FROM scratch
ARG LATE=ignored
FROM registry.local:5000/runtime:$PY
FROM python:${PY}-slim
"""
    assert dockerfile_bases(text, {}) == ["python:3.11-slim", "registry.local:5000/runtime:3.11"]
    assert dockerfile_bases(text, {"PY": "3.12"})[0] == "python:3.12-slim"
    assert dockerfile_bases("FROM $UNSET\n", {}) == ["$UNSET"]  # kept: cannot be resolved


def status(service: str, environment: str, up_to_date: bool) -> BaseImageStatus:
    return BaseImageStatus(service=service, environment=environment, image=f"{service}@x",
                           base="b", base_digest="sha256:b", up_to_date=up_to_date)


def test_only_stale_environments_of_services_with_a_directory_are_rebuilt() -> None:
    statuses = [status("api", "staging", False), status("api", "production", True),
                status("web", "staging", False), status("api", "staging", False)]
    plan = plan_rebuilds(statuses, {"api": "services/api", "web": None})
    assert plan.rebuilds == [Rebuild(service="api", environment="staging",
                                     service_dir="services/api")]
    assert plan.unknown_source == ["web"]
    assert plan_rebuilds([status("api", "staging", True)], {"api": "d"}).rebuilds == []


def test_route_metrics_without_data_are_no_data_never_zero() -> None:
    assert production_routes(["a.staging.preview", "a.staging", "stats", "b.production",
                              "a.staging"]) == ["a.staging", "b.production"]
    empty = route_metrics("a.staging", None, None, None)
    assert (empty.error_rate, empty.avg_response_time_s) == (None, None)
    assert route_metrics("a.staging", 0.0, 0.0, None).error_rate is None  # no requests
    assert route_metrics("a.staging", 200.0, 3.0, 0.25).error_rate == 0.015
    markdown = health_markdown(pipeline_health([], NOW, HealthTargets()),
                               [empty, route_metrics("b.production", 200.0, 3.0, 0.25)])
    assert "| a.staging | no data | no data | no data |" in markdown
    assert "| b.production | 200 | 1.50% | 250.0 ms |" in markdown


def record(kind: RunKind, ok: bool, days_ago: int, hour: int, duration_s: float) -> RunRecord:
    started = NOW.replace(hour=hour) - timedelta(days=days_ago)
    return RunRecord(kind=kind, ok=ok, started_at=started, duration_s=duration_s)


def test_daily_trend_groups_runs_per_day_with_gaps(tmp_path: Path) -> None:
    records = [record(RunKind.BUILD, True, 0, 1, 60), record(RunKind.BUILD, False, 0, 2, 120),
               record(RunKind.DEPLOY, True, 0, 3, 30), record(RunKind.BUILD, True, 6, 4, 90),
               record(RunKind.BUILD, True, 7, 4, 999),  # before the 7 days: left out
               record(RunKind.BUILD, True, 0, 13, 999)]  # later than now: left out
    trend = daily_trend(records, NOW, 7)
    assert len(trend) == 14 and trend[0].day == (NOW - timedelta(days=6)).date()
    today_build = trend[-2]
    assert (today_build.kind, today_build.runs, today_build.success_rate,
            today_build.avg_duration_s) == (RunKind.BUILD, 2, 0.5, 90.0)
    assert trend[-1].success_rate == 1.0 and trend[-1].avg_duration_s == 30.0
    assert trend[0].runs == 1 and trend[1].success_rate is None  # 6 days ago: no deploy
    chart = trend_chart(trend, tmp_path / "trend.png", "last 7 days")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = health_markdown(pipeline_health(records, NOW, HealthTargets()), None, chart)
    assert "![health trend](data:image/png;base64," in markdown
    assert "Application metrics" not in markdown
