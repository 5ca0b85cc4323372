"""The one layout of persisted state: every path StateLayout builds is a documented file,
and no other module joins a path of persisted state by hand."""

from __future__ import annotations

import inspect
import re
from datetime import date
from pathlib import Path

from runbook.store.layout import FILES, HAPROXY_SOCKET_PATH_MAX, KINDS, StateLayout

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


SHORT_ROOT = Path("/var/lib/runbook")
"""A state dir short enough that every HAProxy socket stays under it (only paths are built)."""


def test_every_path_the_layout_builds_is_a_documented_file(tmp_path: Path) -> None:
    paths = _every_path(StateLayout(SHORT_ROOT))
    assert len(paths) >= 15
    for name, path in paths.items():
        relative = path.relative_to(SHORT_ROOT).as_posix()
        assert _documented(relative), f"StateLayout.{name} ({relative}) is not in FILES"
    _every_path(StateLayout(tmp_path))
    assert not list(tmp_path.iterdir()), "the layout only names paths, it creates none"


def test_haproxy_sockets_of_a_long_state_dir_move_to_short_unique_paths() -> None:
    long_root = Path("/tmp") / ("d" * 90)
    layout = StateLayout(long_root)
    sockets = [layout.router_socket, layout.route_socket("svc", "staging"),
               layout.route_socket("svc", "production"),
               StateLayout(Path("/tmp") / ("e" * 90)).route_socket("svc", "staging")]
    assert all(len(str(s)) <= HAPROXY_SOCKET_PATH_MAX for s in sockets), sockets
    assert len(set(sockets)) == len(sockets)
    assert layout.route_socket("svc", "staging") == layout.route_socket("svc", "staging")
    short = StateLayout(SHORT_ROOT).route_socket("svc", "staging")
    assert short == SHORT_ROOT / "router" / "routes" / "svc.staging.sock"


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
