"""The settings root: read once at an entry point, passed down, its secrets never shown."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from prefect.serializers import JSONSerializer
from pydantic import SecretStr

from runbook.alerts.settings import AlertSettings
from runbook.config import RunbookConfig
from runbook.kube.settings import KubernetesSettings
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings

REPO = Path(__file__).resolve().parents[2]
READ_FROM_ENVIRONMENT = {"StackSettings", "AlertSettings", "KubernetesSettings"}
# Where the environment may be read: the root itself, the helper it loads the stack with,
# and the alert receiver's process main (an entry point like a flow or a CLI command).
ENTRY_MODULES = {"runbook/settings_root.py", "runbook/infra.py", "runbook/alerts/receiver.py"}
SECRET = "xoxb-do-not-show-me"


def _root(tmp_path: Path) -> RunbookSettings:
    stack = StackSettings(_env_file=None, state_dir=tmp_path,  # type: ignore[call-arg]
                          configuration=RunbookConfig())
    return RunbookSettings(stack=stack,
                           alerts=AlertSettings(_env_file=None,  # type: ignore[call-arg]
                                                slack_token=SecretStr(SECRET)),
                           kubernetes=KubernetesSettings(namespaces={"staging": "stg"}))


def _reads_of_the_environment(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in READ_FROM_ENVIRONMENT:
            found.append(f"{func.id}() line {node.lineno}")
        if (isinstance(func, ast.Attribute) and func.attr == "load"
                and isinstance(func.value, ast.Name) and func.value.id == "RunbookSettings"):
            found.append(f"RunbookSettings.load() line {node.lineno}")
    return found


@pytest.mark.parametrize("package", ["runbook", "tasks"])
def test_library_code_and_tasks_never_read_settings_themselves(package: str) -> None:
    offenders = {}
    for path in sorted((REPO / package).rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative in ENTRY_MODULES:
            continue
        if reads := _reads_of_the_environment(path):
            offenders[relative] = reads
    assert not offenders, f"take the settings root as an argument instead: {offenders}"


def test_no_secret_in_a_repr_a_log_line_or_a_serialised_argument(tmp_path: Path) -> None:
    root = _root(tmp_path)
    assert SECRET not in repr(root) and SECRET not in str(root)
    assert SECRET not in root.model_dump_json()
    assert SECRET not in JSONSerializer().dumps(root).decode()
    assert root.alerts.slack_token is not None
    assert root.alerts.slack_token.get_secret_value() == SECRET  # still usable where sent


def test_cluster_access_of_an_environment_comes_from_the_root(tmp_path: Path) -> None:
    root = _root(tmp_path)
    assert root.kubernetes_for(None) is root.kubernetes
    assert root.kubernetes_for("staging", "kubernetes").namespace("staging") == "stg"
    assert root.configuration is root.stack.configuration


def test_of_takes_the_contacts_of_the_stacks_configuration(tmp_path: Path) -> None:
    stack = StackSettings(_env_file=None, state_dir=tmp_path,  # type: ignore[call-arg]
                          configuration=RunbookConfig())
    root = RunbookSettings.of(stack)
    assert root.stack is stack
    assert root.alerts.contacts == stack.configuration.contacts
