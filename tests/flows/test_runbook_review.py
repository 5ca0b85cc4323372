"""The quarterly runbook review on a real Prefect server: it opens a review item for its
owners (Slack stand-in), and resolving the item completes the review."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from flows.maintenance import runbook_review_reminder
from runbook.alerts.notifier import Notifier
from runbook.incident_store import IncidentStore
from runbook.incidents import Category
from runbook.settings_root import RunbookSettings

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parents[2]


def test_the_review_opens_an_item_for_its_owners_and_resolving_it_completes_the_review(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    messages: list[dict] = []

    def slack(request: Request) -> Response:
        messages.append(json.loads(request.get_data()))
        return Response(json.dumps({"ok": True, "ts": "1.1"}), content_type="application/json")

    httpserver.expect_request("/api/chat.postMessage").respond_with_handler(slack)
    config = tmp_path / "runbook.yaml"
    config.write_text(yaml.safe_dump({"contacts": {
        "primary": {"name": "Alice", "slack": "@alice"},
        "managers": [{"name": "Carol", "slack": "@carol"}]}}))
    for key, value in {"RUNBOOK_CONFIG": str(config), "RUNBOOK_ALERT_STATE_DIR": str(tmp_path),
                       "RUNBOOK_ALERT_SLACK_TOKEN": "xoxb-review",
                       "RUNBOOK_ALERT_SLACK_BASE_URL": httpserver.url_for("/api/")}.items():
        monkeypatch.setenv(key, value)

    first = runbook_review_reminder(repo_dir=str(REPO))

    (item,) = [i for i in IncidentStore(tmp_path).all()
               if i.category is Category.RUNBOOK_REVIEW]
    assert item.is_open and (item.respond_by - item.opened_at).days == 14
    (message,) = messages
    assert message["text"].startswith("@alice @carol [WARNING] runbook/ops: quarterly runbook")
    assert f"{len(first.commits)} change(s)" in message["text"]

    notifier = Notifier(tmp_path, RunbookSettings.load().alerts)
    resolved = notifier.resolve_incident(item.id, "reviewed in the ops meeting").incident
    assert resolved is not None and resolved.resolved_at is not None
    second = runbook_review_reminder(repo_dir=str(REPO))
    assert second.last_review == resolved.resolved_at
