"""Exit codes: one per outcome, distinct, documented where people look."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from flows.pipeline import final_state_name
from runbook.models import Outcome
from runbook_cli.exit_codes import ExitCode, exit_code_for

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = str(Path(sys.executable).parent / "runbook")


@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_outcome_has_an_exit_code(outcome: Outcome) -> None:
    assert isinstance(exit_code_for(outcome), ExitCode)


def test_outcomes_are_told_apart_by_the_code_alone() -> None:
    codes = {outcome: exit_code_for(outcome) for outcome in Outcome}
    assert len(set(codes.values())) == len(codes)
    assert codes[Outcome.RELEASED] == 0
    assert codes[Outcome.ROLLBACK_FAILED] == 3  # as before: scripts rely on it
    assert ExitCode.BAD_INPUT == 2 and ExitCode.BAD_INPUT not in codes.values()
    assert codes[Outcome.FAILED] == 1  # what Python exits with on an unexpected error too


def test_the_readme_table_is_the_module() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| (\d) \| `([^`]+)` \|", section, flags=re.MULTILINE))
    assert rows == {str(code.value): code.meaning.split(":")[0] for code in ExitCode}


def test_help_shows_the_exit_codes() -> None:
    shown = subprocess.run([RUNBOOK, "--help"], capture_output=True, text=True, timeout=60,
                           check=True).stdout
    for code in ExitCode:
        assert f"{code.value}  {code.meaning.split(':')[0]}:" in shown


def test_a_prefect_watch_log_names_the_outcome() -> None:
    names = {outcome: final_state_name(outcome) for outcome in Outcome
             if outcome is not Outcome.RELEASED}
    assert names == {Outcome.BLOCKED: "Blocked", Outcome.ROLLED_BACK: "RolledBack",
                     Outcome.ROLLBACK_FAILED: "RollbackFailed", Outcome.FAILED: "Failed"}
