"""Every PromQL expression of the Grafana dashboard and the pipeline rules is accepted by
the real Prometheus API (a syntax or type error answers 400 with an error)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from runbook.settings import StackSettings

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deployments" / "grafana" / "runbook-dashboard.json"
RULES = REPO / "deployments" / "prometheus" / "rules" / "pipeline.yml"


def _dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


def _rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r["expr"] for g in groups for r in g["rules"]]


EXPRESSIONS = _dashboard_expressions() + _rule_expressions()


def test_every_expression_was_found() -> None:
    assert len(_dashboard_expressions()) >= 10
    assert len(_rule_expressions()) == 10


@pytest.mark.stack
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_prometheus_accepts(stack_settings: StackSettings, expr: str) -> None:
    response = httpx.get(f"{stack_settings.prometheus_url}/api/v1/query",
                         params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200, body.get("error")
    assert body["status"] == "success"
