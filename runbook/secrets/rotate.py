"""Driving a rotation through its steps: generate, publish old+new, verify, wait the grace
period, revoke the old. State is saved after every step, so any run resumes the last one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import SecretStr

from runbook.ops.rotation import (
    Action,
    RotationState,
    SecretStatus,
    Step,
    age_days,
    is_due,
    next_action,
)
from runbook.secrets.generate import new_value
from runbook.secrets.spec import SecretSpec
from runbook.secrets.store import SecretStore, StoredSecret


class Publisher(Protocol):
    """Where the consumers of a service's secrets run (docker target, Kubernetes Secret)."""

    def publish(self, env: dict[str, str]) -> None:
        """Make the consumers run with exactly ``env`` (zero-downtime restart)."""
        ...

    def verify(self) -> None:
        """Raise unless the consumers are healthy with what was published."""
        ...

    def revoke(self, env: dict[str, str]) -> None:
        """Publish ``env`` (old values gone) and stop anything still accepting them."""
        ...




def rotate(specs: list[SecretSpec], store: SecretStore, publisher: Publisher,
           clock: Callable[[], datetime], grace_s: float, force: bool = False,
           wait: Callable[[float], None] | None = None) -> list[SecretStatus]:
    """Advance every automatic secret as far as it can go now; report every secret.

    Args:
        specs: The service's declared secrets.
        store: Where values and rotation state are kept; saved after every step.
        publisher: Where the consumers run.
        clock: The current time (injectable for tests).
        grace_s: How long old and new stay valid together before the old is revoked.
        force: Start a rotation even when no secret is due.
        wait: Given, the run waits out the grace period (it never waits longer than
            ``grace_s``) and finishes the rotation; without it a run stops at the grace
            period and a later run revokes.
    """
    secrets = store.load()
    statuses = []
    for spec in specs:
        entry = secrets.setdefault(spec.name, StoredSecret())
        actions: list[Action] = []
        if spec.automatic:
            actions = _advance(spec, entry, specs, secrets, store, publisher, clock, grace_s,
                               force, wait)
        age = age_days(entry.state, clock())
        statuses.append(SecretStatus(
            name=spec.name, automatic=spec.automatic, step=entry.state.step, age_days=age,
            max_age_days=spec.max_age_days,
            overdue=age is None or age > spec.max_age_days, actions=actions))
    return statuses


def published_env(specs: list[SecretSpec], secrets: dict[str, StoredSecret]) -> dict[str, str]:
    """The environment the consumers need now: each secret's accepted values, new first."""
    env = {}
    for spec in specs:
        entry = secrets.get(spec.name)
        if entry is not None and entry.accepted():
            env[spec.env] = ",".join(entry.accepted())
    return env


def _advance(spec: SecretSpec, entry: StoredSecret, specs: list[SecretSpec],
             secrets: dict[str, StoredSecret], store: SecretStore, publisher: Publisher,
             clock: Callable[[], datetime], grace_s: float, force: bool,
             wait: Callable[[float], None] | None) -> list[Action]:
    taken: list[Action] = []
    while True:
        now = clock()
        due = is_due(entry.state, now, spec.max_age_days, force)
        action = next_action(entry.state, now, grace_s, due)
        if action is Action.WAIT_GRACE and wait is not None:
            taken.append(action)
            wait(_grace_left(entry, now, grace_s))
            continue
        if action in (Action.NOTHING, Action.WAIT_GRACE):
            return [*taken, action] if action is Action.WAIT_GRACE else taken
        _apply(action, spec, entry, specs, secrets, publisher, now)
        store.save(secrets)
        taken.append(action)
        if action is Action.FINISH:
            return taken


def _apply(action: Action, spec: SecretSpec, entry: StoredSecret, specs: list[SecretSpec],
           secrets: dict[str, StoredSecret], publisher: Publisher, now: datetime) -> None:
    current = entry.current.get_secret_value() if entry.current else None
    if action is Action.GENERATE:
        entry.pending = SecretStr(new_value(spec, current))
        _step(entry, Step.GENERATED, now)
    elif action is Action.PUBLISH_OVERLAP:
        _step(entry, Step.OVERLAP_PUBLISHED, now)
        publisher.publish(published_env(specs, secrets))
    elif action is Action.VERIFY:
        publisher.verify()
        _step(entry, Step.VERIFIED, now)
    elif action is Action.REVOKE:
        _step(entry, Step.REVOKED, now)
        publisher.revoke(published_env(specs, secrets))
    elif action is Action.FINISH:
        entry.current, entry.pending = entry.pending, None
        entry.state = RotationState(step=Step.IDLE, rotated_at=now, step_at=now,
                                    created_at=entry.state.created_at or now)


def _grace_left(entry: StoredSecret, now: datetime, grace_s: float) -> float:
    assert entry.state.step_at is not None  # set with every step
    ready = entry.state.step_at + timedelta(seconds=grace_s)
    return min(max((ready - now).total_seconds(), 0.0), grace_s)


def _step(entry: StoredSecret, step: Step, now: datetime) -> None:
    entry.state = entry.state.model_copy(update={"step": step, "step_at": now})
