"""The numbered examples (``examples/NN-name/``): what each one is and what it must show.

An example is a directory with
- ``service.yaml``: an overlay of the sample service's (``examples/agent-api``): only the
  keys that differ, deep-merged over it; the sample's bad-release knobs are its build args
  (``build.args``), so a bad release is a different image;
- ``expected.yaml``: how it is run and what must come out, an :class:`Expected`;
- ``README.md``: one line saying what it shows.

``tests/e2e/test_examples.py`` delivers every example on the local stack and checks its
``expected.yaml``; ``tests/unit/test_example_cases.py`` checks that each one is well formed
without starting anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from runbook.models import Outcome, Strategy

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SAMPLE = EXAMPLES / "agent-api"
EXAMPLE_DIR = re.compile(r"^\d\d-[a-z0-9-]+$")
SAMPLE_VERSION = "1"
"""The sample's `VERSION` when no build arg sets it (its Dockerfile's `ARG VERSION=1`)."""

Which = Literal["release", "before"]
"""`release`: the example's own release; `before`: the release live before it."""


class GateExpected(BaseModel):
    model_config = ConfigDict(extra="forbid")

    passed: bool
    min_value: float | None = None
    """The gate's measured value is at least this (e.g. a latency that failed its gate)."""


class StatusExpected(BaseModel):
    """What `runbook status` says after the run (and after any rollback by hand)."""

    model_config = ConfigDict(extra="forbid")

    live: Which
    standby: Which | Literal["none"]


class Expected(BaseModel):
    """One example's ``expected.yaml``. A key left out is not checked; a misspelt key is an
    error, never a silently skipped check."""

    model_config = ConfigDict(extra="forbid")

    # ---- how the example is run
    live_before: bool
    """Release the sample as it is first (it must end `released`), so the example's
    release replaces a live one; `false`: nothing is live before."""
    strategy: Strategy = Strategy.BLUE_GREEN
    """`--strategy` of every release of the example."""

    # ---- the run report of the example's release
    outcome: Outcome | list[Outcome]
    """The outcome, or the outcomes any of which is right; `runbook pipeline`'s exit code
    is always checked to be the outcome's (runbook_cli/exit_codes.py)."""
    reason: str | None = None
    """The report's reason, exactly."""
    reason_contains: list[str] = Field(default_factory=list)
    """The reason contains at least one of these."""
    revision: Literal["new", "before", "none"] | None = None
    """The report's revision: a new one, the one live before, or none (nothing is live)."""
    previous: Literal["none", "before"] | None = None
    """The report's previous revision: none, or the one live before."""
    image: Literal["new", "before"] | None = None
    """The report's image: a new one, or the very image live before."""
    failed_gates: list[str] | None = None
    """Names of the failed gates, exactly and in order."""
    gates: dict[str, GateExpected] = Field(default_factory=dict)
    stages: dict[str, Literal["passed", "failed", "skipped", "absent"]] = Field(
        default_factory=dict)
    stage_details: dict[str, str] = Field(default_factory=dict)
    """Per stage, text its detail contains."""

    # ---- the endpoint and the stack afterwards
    serves: Which | Literal["nothing"] | None = None
    """Whose `VERSION` the endpoint answers with at the end; `nothing`: it answers 503 (no
    revision serves)."""
    status: StatusExpected | None = None

    # ---- checks the runner measures itself (tests/e2e/test_examples.py)
    dropped_requests: int | None = None
    """Requests no revision answered while the release ran (a client requests the endpoint
    back to back: tests/traffic.py)."""
    app_errors: int | None = None
    """Application 5xx answers that client saw (traffic reached a bad revision)."""
    rebuilt: bool | None = None
    """`false`: the build task was a cache hit (Prefect state `Cached`)."""
    task_runs: dict[str, int] = Field(default_factory=dict)
    """Per task name: the task ran once, attempted this many times (1: never retried)."""
    rollback_by_hand: bool = False
    """After the release, `runbook rollback --to` the revision live before, then `runbook
    rollback` to the standby (the release again): each exits 0 and moves the endpoint;
    `status` is checked between the two."""
    restored_by_stack_up: bool = False
    """After the release the engine stops its container (as a machine restart does);
    `runbook stack up` starts it again and the endpoint serves it."""

    @property
    def outcomes(self) -> list[Outcome]:
        return self.outcome if isinstance(self.outcome, list) else [self.outcome]

    @property
    def measures_traffic(self) -> bool:
        return self.dropped_requests is not None or self.app_errors is not None

    @model_validator(mode="after")
    def _needs_a_live_release(self) -> Expected:
        refers = [self.revision, self.previous, self.image, self.serves,
                  self.status.live if self.status else None,
                  self.status.standby if self.status else None]
        wants_before = "before" in refers or self.measures_traffic or self.rollback_by_hand
        if wants_before and not self.live_before:
            raise ValueError("checks of the release live before need live_before: true")
        return self


@dataclass(frozen=True)
class Example:
    directory: Path
    overlay: dict[str, Any]
    expected: Expected

    @property
    def name(self) -> str:
        return self.directory.name

    def spec(self, base: dict[str, Any]) -> dict[str, Any]:
        """The example's service.yaml: its overlay deep-merged over ``base``."""
        return deep_merge(base, self.overlay)


def example_dirs() -> list[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and EXAMPLE_DIR.match(p.name))


def load_example(directory: Path) -> Example:
    overlay = yaml.safe_load((directory / "service.yaml").read_text()) or {}
    if not isinstance(overlay, dict):
        raise ValueError(f"{directory}/service.yaml: expected a mapping (the overlay)")
    if "name" in overlay:
        raise ValueError(f"{directory}/service.yaml: the runner names each copy; drop `name`")
    expected = Expected.model_validate(yaml.safe_load((directory / "expected.yaml").read_text()))
    return Example(directory=directory, overlay=overlay, expected=expected)


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in the overlay (lists too) replaces."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def version_of(spec: dict[str, Any]) -> str:
    """The `VERSION` a service.yaml's build bakes into the sample's image."""
    return str(spec.get("build", {}).get("args", {}).get("VERSION", SAMPLE_VERSION))
