"""Docs the tools show: every flow parameter and every policy / service / configuration
field has a description, so the Prefect UI's run form and the JSON schema explain them."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import yaml
from prefect import Flow
from prefect.utilities.callables import parameter_schema
from pydantic import BaseModel

from runbook import config, policy, service
from runbook.ops import policy as ops_policy

REPO = Path(__file__).resolve().parents[2]
FLOW_MODULES = sorted(f"flows.{path.stem}" for path in (REPO / "flows").glob("*.py")
                      if path.stem != "__init__")


def _registered_entrypoints() -> set[str]:
    deployments = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    return {d["entrypoint"] for d in deployments}


def _flows() -> dict[str, Flow]:  # type: ignore[type-arg]
    found = {}
    for module_name in FLOW_MODULES:
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if isinstance(value, Flow) and value.fn.__module__ == module_name:
                found[f"flows/{module_name.split('.')[1]}.py:{name}"] = value
    return found


FLOWS = _flows()


def test_every_registered_flow_is_checked() -> None:
    assert _registered_entrypoints() <= set(FLOWS)


@pytest.mark.parametrize("entrypoint", sorted(FLOWS))
def test_every_flow_parameter_has_help_in_the_ui(entrypoint: str) -> None:
    schema = parameter_schema(FLOWS[entrypoint].fn)
    undocumented = [name for name, field in schema.properties.items()
                    if not field.get("description")]
    assert not undocumented, f"{entrypoint}: add these to the docstring's Args: {undocumented}"


def _models(*modules: object) -> list[type[BaseModel]]:
    return [value for module in modules for value in vars(module).values()
            if inspect.isclass(value) and issubclass(value, BaseModel)
            and value.__module__ == module.__name__]  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", _models(policy, service, ops_policy, config),
                         ids=lambda model: model.__name__)
def test_every_field_has_a_description(model: type[BaseModel]) -> None:
    undocumented = [name for name, field in model.model_fields.items() if not field.description]
    assert not undocumented, f"{model.__name__}: document {undocumented}"
