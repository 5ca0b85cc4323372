"""Every numbered example is well formed, checked without the stack: its overlay makes a
valid service.yaml of the sample, its expected.yaml parses, it says what it shows. The
e2e runner (tests/e2e/test_examples.py) then only fails on what the release did."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from runbook.service import ServiceSpec
from tests.example_cases import (
    SAMPLE,
    Expected,
    deep_merge,
    example_dirs,
    load_example,
    version_of,
)


def test_examples_are_numbered_from_01_without_gaps() -> None:
    numbers = [int(path.name[:2]) for path in example_dirs()]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= 9  # the release scenarios, at least


@pytest.mark.parametrize("directory", example_dirs(), ids=lambda path: path.name)
def test_example_is_well_formed(directory: Path) -> None:
    example = load_example(directory)
    base = yaml.safe_load((SAMPLE / "service.yaml").read_text())
    ServiceSpec.model_validate({**example.spec(base), "name": "test-example"})
    assert (directory / "README.md").read_text().strip()
    assert {p.name for p in directory.iterdir()} <= {"service.yaml", "expected.yaml",
                                                     "README.md"}
    if example.expected.serves is not None and example.overlay:
        # Otherwise `serves` could not tell the release from the one live before.
        assert version_of(example.spec(base)) != version_of(base)


def test_overlay_merges_mappings_and_replaces_the_rest() -> None:
    base = {"port": 8080, "traffic": {"paths": ["/"]}, "build": {"args": {"A": "1"}}}
    overlay = {"traffic": {"paths": ["/x"]}, "build": {"args": {"B": "2"}}, "port": 9090}
    assert deep_merge(base, overlay) == {
        "port": 9090, "traffic": {"paths": ["/x"]}, "build": {"args": {"A": "1", "B": "2"}},
    }
    assert base["build"] == {"args": {"A": "1"}}  # the sample's spec is not changed


def test_a_misspelt_check_is_an_error_not_a_skipped_check() -> None:
    with pytest.raises(ValidationError, match="dropped_request"):
        Expected.model_validate({"live_before": True, "outcome": "released",
                                 "dropped_request": 0})


def test_checks_of_the_release_before_need_one() -> None:
    with pytest.raises(ValidationError, match="live_before"):
        Expected.model_validate({"live_before": False, "outcome": "released",
                                 "serves": "before"})
    with pytest.raises(ValidationError, match="live_before"):
        Expected.model_validate({"live_before": False, "outcome": "released",
                                 "dropped_requests": 0})
