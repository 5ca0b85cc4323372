"""The one layout of persisted state: every path StateLayout builds is a documented file,
and no other module joins a path of persisted state by hand."""

from __future__ import annotations

import inspect
import re
from datetime import date
from pathlib import Path

from runbook.store.layout import FILES, KINDS, StateLayout

ROOT = Path(__file__).resolve().parents[2]
STACK_OWNED = ("runbook/stack/",)
"""The local stack's components own their directories (FILES lists them)."""


def _part_matches(documented: str, actual: str) -> bool:
    pattern = "".join("[^/]+" if piece.startswith("<") else re.escape(piece)
                      for piece in re.split(r"(<[^>]+>)", documented))
    return re.fullmatch(pattern, actual) is not None


def _documented(relative: str) -> bool:
    """``relative`` is a FILES entry, lies inside a documented directory, or is the
    directory of documented files (``guards`` of ``guards/<service>.<environment>.log``)."""
    parts = relative.split("/")
    for entry in FILES:
        documented = entry.path.rstrip("/").split("/")
        inside = entry.path.endswith("/") and len(parts) >= len(documented)
        if len(parts) > len(documented) and not inside:
            continue
        if all(_part_matches(d, a) for d, a in zip(documented, parts, strict=False)):
            return True
    return False


def _every_path(layout: StateLayout) -> dict[str, Path]:
    samples = {"service": "shop", "environment": "staging", "digest": "sha256:ab12",
               "revision": "r1", "chart": "health-trend", "day": date(2026, 3, 10),
               "pid": 4242}
    paths = {}
    for name, member in inspect.getmembers(type(layout)):
        if name.startswith("_") or name == "root":
            continue
        if isinstance(member, property):
            paths[name] = getattr(layout, name)
        elif inspect.isfunction(member):
            wanted = list(inspect.signature(member).parameters)[1:]
            paths[name] = member(layout, *(samples[p] for p in wanted))
    return paths


def test_every_path_the_layout_builds_is_a_documented_file(tmp_path: Path) -> None:
    paths = _every_path(StateLayout(tmp_path))
    assert len(paths) >= 15
    for name, path in paths.items():
        relative = path.relative_to(tmp_path).as_posix()
        assert _documented(relative), f"StateLayout.{name} ({relative}) is not in FILES"
    assert not list(tmp_path.iterdir()), "the layout only names paths, it creates none"


def test_every_file_and_kind_says_who_writes_it_and_when_it_may_go() -> None:
    for entry in FILES:
        assert entry.owner and entry.format and entry.deletable, entry
    for kind in KINDS:
        assert kind.owner and kind.deletable, kind


def test_no_module_joins_a_path_of_persisted_state_by_hand() -> None:
    ad_hoc = re.compile(r"state_dir\s*/|state_dir\.joinpath|\.state_dir,\s*\"")
    offenders = []
    for package in ("runbook", "tasks", "flows", "runbook_cli"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(STACK_OWNED) or relative == "runbook/settings.py":
                continue
            offenders += [f"{relative}:{number}" for number, line in
                          enumerate(path.read_text().splitlines(), 1) if ad_hoc.search(line)]
    assert offenders == [], "build these through runbook.store.layout.StateLayout"
