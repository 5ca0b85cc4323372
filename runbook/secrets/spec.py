"""How a service declares a secret in ``service.yaml``.

```yaml
secrets:
  - name: api-tokens
    env: API_TOKENS          # the variable the service reads
    generator: token         # token | password, or: rotator: my_pkg.rotators:rotate_db
    max_age_days: 30         # rotated (or alerted, when manual) past this age
```
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
PLUGIN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class Generator(StrEnum):
    TOKEN = "token"  # noqa: S105  # a generator name: URL-safe token, 32 random bytes
    PASSWORD = "password"  # noqa: S105  # a generator name: 24 letters and digits


class SecretSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    env: str
    """Environment variable the service reads. With ``overlap`` it holds a comma-separated
    list of accepted values, newest first."""
    generator: Generator | None = None
    rotator: str | None = None
    """``module:function`` making the new value (``fn(current: str | None) -> str``) for
    credentials issued elsewhere (a database user, a third-party API key)."""
    max_age_days: float = Field(default=30.0, gt=0)
    """Runbook: monthly rotation."""
    overlap: bool = True
    """The service accepts a list of values, so old and new are valid together and the
    rotation is zero-downtime. Without it runbook does not rotate automatically."""

    @field_validator("env")
    @classmethod
    def _env_name(cls, env: str) -> str:
        if not ENV_NAME.match(env):
            raise ValueError(f"{env!r} is not an environment variable name ([A-Z_][A-Z0-9_]*)")
        return env

    @field_validator("rotator")
    @classmethod
    def _plugin_path(cls, rotator: str | None) -> str | None:
        if rotator is not None and not PLUGIN.match(rotator):
            raise ValueError(f"{rotator!r} must be 'module:function'")
        return rotator

    @property
    def automatic(self) -> bool:
        """Whether runbook can rotate it: a way to make a value, and an overlap window."""
        return self.overlap and (self.generator is not None or self.rotator is not None)
