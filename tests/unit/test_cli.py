"""Bad input: one clear line on stderr, exit code 2, nothing started, nothing executed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = str(Path(sys.executable).parent / "runbook")
SAMPLE = str(REPO / "examples" / "agent-api")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNBOOK, *args], capture_output=True, text=True, timeout=60,
                          check=False, env=env)


def one_error_line(completed: subprocess.CompletedProcess[str]) -> str:
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def service(tmp_path: Path, yaml_text: str, dockerfile: bool = True) -> str:
    (tmp_path / "service.yaml").write_text(yaml_text)
    if dockerfile:
        (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return str(tmp_path)


def test_missing_directory(tmp_path: Path) -> None:
    line = one_error_line(run("pipeline", str(tmp_path / "absent"), "--env", "staging"))
    assert "service directory not found" in line


def test_missing_dockerfile(tmp_path: Path) -> None:
    path = service(tmp_path, "name: a\nport: 80\n", dockerfile=False)
    assert "missing Dockerfile" in one_error_line(run("pipeline", path, "--env", "staging"))


def test_invalid_service_yaml_names_the_field(tmp_path: Path) -> None:
    path = service(tmp_path, "name: a\nport: eighty\n")
    line = one_error_line(run("pipeline", path, "--env", "staging"))
    assert "field 'port'" in line


def test_name_that_is_not_dns_safe(tmp_path: Path) -> None:
    path = service(tmp_path, "name: My_Service\nport: 80\n")
    assert "not DNS-safe" in one_error_line(run("pipeline", path, "--env", "staging"))


@pytest.mark.parametrize(
    ("option", "value"), [("--env", "prod"), ("--strategy", "canary"), ("--target", "nomad")]
)
def test_unknown_option_value(option: str, value: str) -> None:
    args = ["pipeline", SAMPLE, "--env", "staging", option, value]
    if option == "--env":
        args = ["pipeline", SAMPLE, option, value]
    line = one_error_line(run(*args))
    assert option in line and value in line


def test_bad_build_arg() -> None:
    line = one_error_line(run("pipeline", SAMPLE, "--env", "staging", "--build-arg", "NOEQUALS"))
    assert "KEY=VALUE" in line


def test_nothing_from_the_input_is_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = service(tmp_path, f'name: !!python/object/apply:os.system ["touch {marker}"]\n'
                             "port: 80\n")
    one_error_line(run("pipeline", path, "--env", "staging"))
    assert not marker.exists()


def test_bad_input_starts_nothing(tmp_path: Path) -> None:
    # Point the stack at a state dir and Docker socket that do not exist: a command that got
    # past validation would fail differently (and create the state dir).
    state = tmp_path / "state"
    env = {"PATH": "/usr/bin:/bin", "RUNBOOK_STATE_DIR": str(state),
           "RUNBOOK_DOCKER_HOST": f"unix://{tmp_path}/no.sock", "HOME": str(tmp_path)}
    one_error_line(run("pipeline", str(tmp_path / "absent"), "--env", "staging", env=env))
    assert not state.exists()
