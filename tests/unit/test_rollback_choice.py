"""Which way a rollback goes, and the checks window after an automatic one (pure)."""

from __future__ import annotations

import pytest

from runbook.analysis import Phase, Verdict
from runbook.errors import ConfigurationError, RunbookError
from runbook.models import Slot
from runbook.policy import Policy
from runbook.rollback import (
    CHECK_WINDOW_MAX_S,
    RollbackKind,
    RollbackReport,
    choose,
    rollback_check,
    rollback_check_window,
    rollback_markdown,
)


def slot(revision: str, color: str = "blue") -> Slot:
    return Slot(service="shop", environment="production", color=color, revision=revision,
                image=f"registry/shop@sha256:{revision}", address="127.0.0.1:1")


LIVE, STANDBY = slot("r3", "green"), slot("r2")


@pytest.mark.parametrize(("wanted", "kind"), [
    (None, RollbackKind.STANDBY), ("r2", RollbackKind.STANDBY),
    ("registry/shop@sha256:r2", RollbackKind.STANDBY), ("r1", RollbackKind.REDEPLOY)])
def test_the_standby_is_one_switch_any_other_revision_is_redeployed(
    wanted: str | None, kind: RollbackKind,
) -> None:
    assert choose("shop", "production", wanted, LIVE, STANDBY) is kind


def test_the_live_revision_and_a_missing_standby_are_refused_clearly() -> None:
    with pytest.raises(ConfigurationError, match="already live"):
        choose("shop", "production", "r3", LIVE, STANDBY)
    with pytest.raises(RunbookError, match="keeps no previous revision to roll back to"):
        choose("shop", "production", None, LIVE, None)
    assert choose("shop", "production", "r1", LIVE, None) is RollbackKind.REDEPLOY


def test_the_report_says_whether_the_application_is_healthy() -> None:
    good = rollback_check(STANDBY, Verdict(phase=Phase.SUCCESSFUL, reasons=[], results=[]))
    bad = rollback_check(STANDBY, Verdict(phase=Phase.FAILED, reasons=["error rate 9 %"],
                                          results=[]))
    report = RollbackReport(service="shop", environment="production",
                            kind=RollbackKind.REDEPLOY, previous="r3", revision="r1",
                            image="i", color="blue", check=good)
    assert report.healthy and "| r3 | r1 (blue) | redeploy" in rollback_markdown(report)
    unhealthy = report.model_copy(update={"check": bad})
    assert not unhealthy.healthy and "NOT healthy" in rollback_markdown(unhealthy)
    unknown = report.model_copy(update={"check": None})
    assert not unknown.healthy and "not checked" in rollback_markdown(unknown)


def test_the_check_after_an_automatic_rollback_is_short() -> None:
    policy = Policy()
    long = policy.model_copy(update={"analysis": policy.analysis.model_copy(
        update={"window_s": 600})})
    assert rollback_check_window(long) == CHECK_WINDOW_MAX_S
