"""Rotation finishing within one run, secrets of new releases, base-image and runbook-review
decisions, and the git history adapter on a real repository."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from runbook.adapters.git_history import commits_touching
from runbook.adapters.review_record import last_review, record_review
from runbook.ops.base_image import ResolvedImage, base_image_status, built_from, stale
from runbook.ops.markdown import review_markdown
from runbook.ops.review import Commit, runbook_review
from runbook.ops.rotation import RotationState, Step
from runbook.secrets.rotate import rotate
from runbook.secrets.spec import SecretSpec
from runbook.secrets.store import SecretStore, StoredSecret
from runbook.service import ServiceSpec
from runbook.settings import StackSettings
from runbook.targets.docker import DockerTarget

NOW = datetime(2025, 6, 30, 12, tzinfo=UTC)
TOKENS = SecretSpec(name="tokens", env="API_TOKENS", generator="token")


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[list[str]] = []

    def publish(self, env: dict[str, str]) -> None:
        self.published.append(env["API_TOKENS"].split(","))

    def verify(self) -> None:
        pass

    def revoke(self, env: dict[str, str]) -> None:
        self.publish(env)


def test_a_run_that_may_wait_revokes_after_exactly_the_grace_period(tmp_path: Path) -> None:
    store = SecretStore(tmp_path, "svc", "staging")
    store.save({"tokens": StoredSecret(current=SecretStr("old"),
                                       state=RotationState(created_at=NOW))})
    clock, waited = [NOW], []

    def wait(seconds: float) -> None:
        waited.append(seconds)
        clock[0] += timedelta(seconds=seconds)

    publisher = RecordingPublisher()
    statuses = rotate([TOKENS], store, publisher, lambda: clock[0], grace_s=40, force=True,
                      wait=wait)
    new = store.load()["tokens"].current.get_secret_value()
    assert waited == [40.0]
    assert publisher.published == [[new, "old"], [new]]
    assert [a.value for a in statuses[0].actions] == [
        "generate", "publish_overlap", "verify", "wait_grace", "revoke", "finish"]
    assert statuses[0].step is Step.IDLE


def test_a_new_release_gets_every_accepted_value_of_its_secrets(tmp_path: Path) -> None:
    spec = ServiceSpec(name="svc", port=8080, health_path="/health",
                       traffic={"paths": ["/"]}, secrets=[TOKENS])
    target = DockerTarget(StackSettings(state_dir=tmp_path), None, None)  # type: ignore[arg-type]
    assert target.secret_env(spec, "staging") == {}
    SecretStore(tmp_path, "svc", "staging").save({"tokens": StoredSecret(
        current=SecretStr("old"), pending=SecretStr("new"),
        state=RotationState(step=Step.VERIFIED, step_at=NOW))})
    assert target.secret_env(spec, "staging") == {"API_TOKENS": "new,old"}
    assert target.secret_env(spec, "production") == {}


def image(reference: str, *layers: str) -> ResolvedImage:
    return ResolvedImage(reference=reference, digest=f"sha256:{reference}", layers=list(layers))


def test_an_image_is_up_to_date_only_when_it_starts_with_the_base_layers() -> None:
    assert built_from(["a", "b"], ["a", "b", "app"])
    assert not built_from(["a", "c"], ["a", "b", "app"])
    assert not built_from([], ["a"])  # an empty base proves nothing
    base = image("base", "a", "c")
    statuses = [base_image_status("svc", "staging", image("old", "a", "b", "app"), base),
                base_image_status("svc", "production", image("new", "a", "c", "app"), base)]
    assert [s.environment for s in stale(statuses)] == ["staging"]
    assert statuses[1].base_digest == "sha256:base"


def commit(sha: str, days_ago: float, *paths: str) -> Commit:
    return Commit(sha=sha, committed_at=NOW - timedelta(days=days_ago), author="a",
                  subject=f"change {sha}", paths=list(paths))


def test_review_lists_only_changes_since_the_last_review() -> None:
    commits = [commit("c1", 100, "prefect.yaml"), commit("c2", 10, "runbook/policy.py"),
               commit("c3", 5, "runbook/policy.py", "deployments/x.yml")]
    review = runbook_review(commits, NOW - timedelta(days=90), NOW, ["deployments/"])
    assert [c.sha for c in review.commits] == ["c3", "c2"]
    assert review.changed_paths == {"deployments/x.yml": 1, "runbook/policy.py": 2}
    assert len(runbook_review(commits, None, NOW, []).commits) == 3
    outside = runbook_review(None, None, NOW, ["prefect.yaml"])
    assert not outside.in_git and "Not running in a git checkout" in review_markdown(outside)


def git(repo: Path, *args: str, when: str = "2025-01-01T00:00:00+00:00") -> None:
    env = {"GIT_COMMITTER_DATE": when, "GIT_AUTHOR_DATE": when, "HOME": str(repo),
           "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@x",
                    *args], check=True, capture_output=True, env=env, timeout=30)


def test_git_history_of_the_reviewed_paths(tmp_path: Path) -> None:
    assert commits_touching(tmp_path, ["prefect.yaml"], None, 10) is None
    git(tmp_path, "init", "-q")
    for name, when in (("prefect.yaml", "2025-01-01T00:00:00+00:00"),
                       ("other.txt", "2025-02-01T00:00:00+00:00"),
                       ("prefect.yaml", "2025-03-01T00:00:00+00:00")):
        (tmp_path / name).write_text(when)
        git(tmp_path, "add", name)
        git(tmp_path, "commit", "-q", "-m", f"edit {name} | {when}", when=when)
    found = commits_touching(tmp_path, ["prefect.yaml"], None, 10)
    assert [c.subject for c in found] == ["edit prefect.yaml | 2025-03-01T00:00:00+00:00",
                                          "edit prefect.yaml | 2025-01-01T00:00:00+00:00"]
    assert found[0].paths == ["prefect.yaml"]
    since = datetime(2025, 2, 1, tzinfo=UTC)
    assert len(commits_touching(tmp_path, ["prefect.yaml"], since, 10)) == 1


def test_review_date_is_recorded_in_the_state_dir(tmp_path: Path) -> None:
    assert last_review(tmp_path) is None
    record_review(tmp_path, NOW)
    assert last_review(tmp_path) == NOW
