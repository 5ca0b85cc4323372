"""The README's runbook.yaml ("Use your own infrastructure") is valid and complete: it
loads, and it shows every field of runbook/config.py (alternatives in comments)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from runbook.config import EnvironmentConfig, RunbookConfig, load_config

REPO = Path(__file__).resolve().parents[2]


def _readme_config() -> str:
    section = REPO.joinpath("README.md").read_text().split("## Use your own infrastructure")[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def _field_names(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        names.add(name)
        for kind in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                names |= _field_names(kind)
    return names


def test_the_readme_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "runbook.yaml"
    path.write_text(_readme_config())
    config = load_config(path)
    assert set(config.environments) == {"staging", "production"}
    assert config.environment("production").prometheus.bearer_token_env == "PROM_TOKEN"


def test_the_readme_config_shows_every_field() -> None:
    text = _readme_config()
    fields = _field_names(RunbookConfig) | _field_names(EnvironmentConfig)
    missing = sorted(name for name in fields if not re.search(rf"\b{name}:", text))
    assert not missing, missing
