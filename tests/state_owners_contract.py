"""What the state store's owners promise (outbox, incidents, baselines), run on SQLite
(tests/unit/test_state_owners.py) and on a real PostgreSQL
(tests/integration/test_state_owners_postgres.py): the same assertions on both."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from runbook.alerts.errors import DeliveryFailed
from runbook.alerts.models import Alert, AlertKind, Channel, make_alert
from runbook.alerts.notifier import Notifier
from runbook.alerts.settings import AlertSettings
from runbook.incident_store import IncidentStore
from runbook.incidents import IncidentStatus, Step, complete_step
from runbook.models import PerfReport
from runbook.perf.baseline import BaselineStore
from runbook.store import StateStore, StoreUnavailable
from runbook.store.layout import ALERT_OUTBOX, QUARANTINE

SLACK_ONLY = AlertSettings(_env_file=None, slack_token=SecretStr("xoxb-test"))


class RecordingSender:
    """A Slack stand-in that counts what it was sent, takes ``delay_s`` per send, and
    checks that nobody holds the entry's row lock meanwhile: it locks the row itself
    through another connection whose lock wait ends after one second."""

    def __init__(self, url: str, delay_s: float = 0.0, fail: int = 0) -> None:
        self.prober = StateStore(url, lock_timeout_s=1.0)
        self.delay_s, self.fail = delay_s, fail
        self.sent: Counter[str] = Counter()
        self.locked_during_send: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, alert: Alert, _settings: AlertSettings) -> object:
        for key, body in self.prober.items(ALERT_OUTBOX):
            if body["alert"]["dedup_key"] != alert.dedup_key:
                continue
            try:
                with self.prober.update(ALERT_OUTBOX, key):
                    pass
            except StoreUnavailable:
                self.locked_during_send.append(key)
        time.sleep(self.delay_s)
        with self._lock:
            if self.fail > 0:
                self.fail -= 1
                raise DeliveryFailed("slack", "HTTP 503", transient=True)
            self.sent[f"{alert.dedup_key}/{alert.action.value}"] += 1
        return None


def _notifier(store: StateStore, sender: Callable[[Alert, AlertSettings], object]) -> Notifier:
    return Notifier(store, SLACK_ONLY, senders={Channel.SLACK: sender})


def _alert(service: str, environment: str = "staging",
           kind: AlertKind = AlertKind.HIGH_ERROR_RATE) -> Alert:
    return make_alert(kind, service, environment, f"{service} is failing")


def check_concurrent_flushes_send_each_alert_once_with_no_lock_held(
        store: StateStore, url: str) -> None:
    """Four flushers on one store, three alerts, a slow channel: each alert reaches the
    channel exactly once, and no flusher held the entry's row lock while sending."""
    service = f"svc-{uuid.uuid4().hex[:6]}"
    sender = RecordingSender(url, delay_s=0.3)
    for environment in ("staging", "qa", "dev"):
        assert _notifier(store, sender).publish(_alert(service, environment)).enqueued
    flushers = [_notifier(store, sender) for _ in range(4)]
    threads = [threading.Thread(target=notifier.flush) for notifier in flushers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    mine = {key: count for key, count in sender.sent.items() if service in key}
    assert sorted(mine.values()) == [1, 1, 1], mine
    assert sender.locked_during_send == []
    assert [e for e in flushers[0].outbox.pending() if e.alert.service == service] == []


def check_a_dead_flushers_claim_expires(store: StateStore, url: str) -> None:
    """A claim whose holder died keeps others off until its lease ends, then the alert goes
    out (once)."""
    service = f"svc-{uuid.uuid4().hex[:6]}"
    sender = RecordingSender(url)
    notifier = _notifier(store, sender)
    notifier.publish(_alert(service))
    (entry,) = [e for e in notifier.outbox.pending() if e.alert.service == service]
    notifier.outbox.claim(entry.id, Channel.SLACK, "dead-flusher", lease_s=0.5)
    notifier.flush()
    assert sender.sent[f"{entry.alert.dedup_key}/trigger"] == 0  # left to its holder
    time.sleep(0.6)
    notifier.flush()
    assert sender.sent[f"{entry.alert.dedup_key}/trigger"] == 1


def check_a_resolve_never_overtakes_its_trigger(store: StateStore, url: str) -> None:
    service = f"svc-{uuid.uuid4().hex[:6]}"
    sender = RecordingSender(url, fail=1)  # the trigger's first send fails
    notifier = _notifier(store, sender)
    trigger = _alert(service)
    notifier.publish(trigger)
    notifier.publish(trigger.resolution())
    first = notifier.flush()
    assert sender.sent[f"{trigger.dedup_key}/resolve"] == 0  # waits behind its trigger
    assert first.waiting >= 2
    notifier.flush()
    assert sender.sent[f"{trigger.dedup_key}/trigger"] == 1
    assert sender.sent[f"{trigger.dedup_key}/resolve"] == 1


def check_a_bad_record_is_quarantined_and_alerting_goes_on(
        store: StateStore, url: str, caplog: pytest.LogCaptureFixture) -> None:
    service = f"svc-{uuid.uuid4().hex[:6]}"
    bad_key = f"00000000T000000000000-{service}"
    store.put(ALERT_OUTBOX, bad_key, {"id": bad_key, "alert": "not an alert"})
    sender = RecordingSender(url)
    notifier = _notifier(store, sender)
    alert = _alert(service)
    notifier.publish(alert)
    with caplog.at_level(logging.WARNING):
        notifier.flush()
    assert sender.sent[f"{alert.dedup_key}/trigger"] == 1
    assert store.get(ALERT_OUTBOX, bad_key) is None
    quarantined = store.get(QUARANTINE, f"{ALERT_OUTBOX}/{bad_key}")
    assert quarantined is not None and quarantined["body"]["alert"] == "not an alert"
    assert any("quarantined" in record.getMessage() for record in caplog.records)


def check_incident_changes_under_the_row_lock(store: StateStore) -> None:
    """Eight writers change one incident at once (steps, an acknowledge, a resolve):
    every change lands."""
    service = f"svc-{uuid.uuid4().hex[:6]}"
    notifier = Notifier(store, AlertSettings(_env_file=None))
    published = notifier.publish(_alert(service, "production", AlertKind.PRODUCTION_DOWN))
    assert published.incident is not None
    incident_id = published.incident.id
    incidents = IncidentStore(store)
    now = datetime.now(UTC)

    def note(n: int) -> None:
        incidents.change(incident_id,
                         lambda i: complete_step(i, Step.ASSESS, now, f"note-{n}"))

    writers = [threading.Thread(target=note, args=(n,)) for n in range(6)]
    writers.append(threading.Thread(target=notifier.acknowledge_incident,
                                    args=(incident_id, "alice")))
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
    notifier.resolve_incident(incident_id, "fixed")
    final = incidents.get(incident_id)
    assert final.status is IncidentStatus.RESOLVED
    assert final.acknowledged_by == "alice"
    assert all(any(f"note-{n}" in line for line in final.timeline) for n in range(6))
    assert incidents.open_for(final.dedup_key) is None
    with pytest.raises(Exception, match="resolved already"):
        notifier.resolve_incident(incident_id, "again")


def _report(avg: float) -> PerfReport:
    return PerfReport(requests=100, failures=0, duration_s=10.0, avg_latency_s=avg,
                      p95_latency_s=avg * 2)


def check_baselines(store: StateStore) -> None:
    service = f"svc-{uuid.uuid4().hex[:6]}"
    baselines = BaselineStore(store)
    assert baselines.baseline(service, "staging") is None
    baselines.save(service, "staging", "rev1", _report(0.1))
    baselines.save(f"{service}x", "staging", "rev9", _report(9.0))  # a prefix-sharing name
    assert baselines.mark_released(service, "staging", "rev1")
    assert not baselines.mark_released(service, "staging", "rev-without-report")
    baselines.save(service, "staging", "rev2", _report(0.2))
    found = baselines.baseline(service, "staging")
    assert found is not None and found.revision == "rev1"
    assert [r.revision for r in baselines.history(service, "staging")] == ["rev1", "rev2"]
    assert baselines.baseline(service, "production") is None


# -- Two writers, two processes ------------------------------------------------------------


def _writer(url: str, service: str, rounds: int) -> None:
    """What one pipeline run of ``service`` writes: baselines, alerts with their
    incidents and outbox entries, an acknowledge."""
    store = StateStore(url)
    baselines = BaselineStore(store)
    notifier = Notifier(store, AlertSettings(_env_file=None))
    for n in range(rounds):
        baselines.save(service, "staging", f"rev{n}", _report(0.1 + n / 100))
        baselines.mark_released(service, "staging", f"rev{n}")
        published = notifier.publish(_alert(service, f"env{n}"))
        assert published.enqueued and published.incident is not None
        notifier.acknowledge_incident(published.incident.id, service)
    store.dispose()


def check_two_writer_processes_lose_nothing(url: str, rounds: int = 15) -> None:
    """Two processes, each a different service, writing at the same time: every baseline,
    incident and outbox entry of both is there afterwards."""
    services = [f"alpha-{uuid.uuid4().hex[:6]}", f"beta-{uuid.uuid4().hex[:6]}"]
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(url, service, rounds))
               for service in services]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    store = StateStore(url)
    baselines = BaselineStore(store)
    notifier = Notifier(store, AlertSettings(_env_file=None))
    for service in services:
        assert len(baselines.history(service, "staging")) == rounds
        baseline = baselines.baseline(service, "staging")
        assert baseline is not None and baseline.revision == f"rev{rounds - 1}"
        incidents = [i for i in notifier.incidents.all() if i.service == service]
        assert len(incidents) == rounds
        assert all(i.status is IncidentStatus.ACKNOWLEDGED for i in incidents)
        entries = [e for e in notifier.outbox.pending() if e.alert.service == service]
        actions = Counter(e.alert.action.value for e in entries)
        assert actions == {"trigger": rounds, "acknowledge": rounds}
        opened = [a for a in notifier.outbox.open_alerts().values() if a.service == service]
        assert len(opened) == rounds
    store.dispose()
