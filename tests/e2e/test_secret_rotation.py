"""Secret rotation on the docker target, on the real local stack: a release started by the
CLI gets its secrets from the store, a rotation under continuous authenticated traffic
drops nothing, a fault between publish and revoke leaves the old token working, and the
next scheduled run finishes the job."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from flows.maintenance import secret_rotation
from runbook.errors import DeployError
from runbook.models import Outcome
from runbook.ops.policy import OpsPolicy, RotationSettings
from runbook.ops.rotation import RotationState, Step
from runbook.secrets.rotate import Publisher, rotate
from runbook.secrets.store import SecretStore, StoredSecret
from runbook.service import load_service
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from runbook.targets import make_target
from tests.delivery import deliver

pytestmark = pytest.mark.stack

SECRET = {"name": "api-tokens", "env": "API_TOKENS", "generator": "token"}
GRACE_S = 3.0
PROTECTED = "/api/answer?q=status"


class TokenClient:
    """A consumer of the API that reads its token from the secret store before every
    request, as a real client reads Vault: the old value until the new one is published
    next to it (both accepted), the new one from then on. Any non-2xx is a failure."""

    def __init__(self, endpoint: str, store: SecretStore) -> None:
        self.endpoint, self.store = endpoint, store
        self.ok = {"old": 0, "new": 0}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TokenClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _token(self) -> tuple[str, str]:
        entry = self.store.load()["api-tokens"]
        published = entry.state.step in (Step.OVERLAP_PUBLISHED, Step.VERIFIED, Step.REVOKED)
        if published and entry.pending is not None:
            return "new", entry.pending.get_secret_value()
        assert entry.current is not None
        return ("new" if entry.state.rotated_at else "old"), entry.current.get_secret_value()

    def _run(self) -> None:
        with httpx.Client() as client:
            while not self._stop.is_set():
                which, token = self._token()
                try:
                    response = client.get(self.endpoint + PROTECTED, timeout=10,
                                          headers={"Authorization": f"Bearer {token}"})
                except httpx.HTTPError as exc:
                    self.failures.append(type(exc).__name__)
                    continue
                if response.is_success:
                    self.ok[which] += 1
                else:
                    self.failures.append(f"HTTP {response.status_code} with the {which} token")
                time.sleep(0.02)


class VerifyFails:
    """The target's real publisher, with the run dying right after the new value went out."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    def publish(self, env: dict[str, str]) -> None:
        self.publisher.publish(env)

    def verify(self) -> None:
        raise DeployError("injected fault between publish and revoke")

    def revoke(self, env: dict[str, str]) -> None:
        self.publisher.revoke(env)


def answer_status(endpoint: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(endpoint + PROTECTED, headers=headers, timeout=5).status_code


def test_rotation_under_traffic_survives_a_fault_and_revokes_the_old_token(
    stack_settings: StackSettings, sample_service: Callable[..., Path], tmp_path: Path
) -> None:
    # The pipeline's own traffic carries no token, so it requests the open path only.
    service_dir = sample_service(secrets=[SECRET], traffic={"paths": ["/"]})
    spec = load_service(service_dir).spec
    store = SecretStore(stack_settings.state_dir, spec.name, "staging")
    old = "initial-" + "x" * 24
    store.save({"api-tokens": StoredSecret(current=SecretStr(old),
                                           state=RotationState(created_at=datetime.now(UTC)))})
    try:
        report, code = deliver(service_dir, tmp_path)
        assert (report.outcome, code) == (Outcome.RELEASED, 0), report.reason
        endpoint = str(report.endpoint)
        # The release got its secret from the store.
        assert (answer_status(endpoint, old), answer_status(endpoint, None)) == (200, 401)

        target = make_target("docker", RunbookSettings.of(stack_settings))
        publisher = target.secret_publisher(spec, "staging", spec.policy_for("staging").deploy)
        with TokenClient(endpoint, store) as client:
            time.sleep(1)
            with pytest.raises(DeployError, match="injected fault"):
                rotate(spec.secrets, store, VerifyFails(publisher),
                       lambda: datetime.now(UTC), GRACE_S, force=True, wait=time.sleep)
            entry = store.load()["api-tokens"]
            assert entry.state.step is Step.OVERLAP_PUBLISHED and entry.pending is not None
            new = entry.pending.get_secret_value()
            assert (answer_status(endpoint, old), answer_status(endpoint, new)) == (200, 200)
            time.sleep(1)

            policy = OpsPolicy(rotation=RotationSettings(grace_s=GRACE_S))
            statuses = secret_rotation(str(service_dir), "staging", policy)
            time.sleep(1)

        print(f"authenticated requests across the rotation: {client.ok}, "
              f"failed: {len(client.failures)}")
        assert client.failures == [], client.failures[:10]
        assert client.ok["old"] > 10 and client.ok["new"] > 10, client.ok
        assert [a.value for a in statuses[0].actions] == [
            "verify", "wait_grace", "revoke", "finish"]
        entry = store.load()["api-tokens"]
        assert entry.state.step is Step.IDLE and entry.current is not None
        assert entry.current.get_secret_value() == new
        assert answer_status(endpoint, old) == 401
        assert answer_status(endpoint, new) == 200
        # Nothing still accepting the old value is kept as a standby.
        assert target.standby(spec.name, "staging") is None
    finally:
        store.delete()
