"""Audited, expiring exceptions: ``.runbook/suppressions.yaml`` in the service.

```yaml
suppressions:
  - fingerprint: 3f2a...            # or: rule_id + location
    reason: false positive, test key
    owner: alice@example.com
    expires: 2026-12-31
```
An entry suppresses matching findings until its expiry date (inclusive); after that it
suppresses nothing and is reported, so an exception cannot quietly become permanent.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from runbook.errors import ConfigurationError
from runbook.models import Finding
from runbook.scan.models import ScannerResult, Suppression

PATH = Path(".runbook") / "suppressions.yaml"


class _Entry(Suppression):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _targets_something(self) -> _Entry:
        if self.fingerprint is None and (self.rule_id is None or self.location is None):
            raise ValueError("needs 'fingerprint', or both 'rule_id' and 'location'")
        return self


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suppressions: list[_Entry] = []


def load(service_dir: Path) -> list[Suppression]:
    """The service's suppressions; none when the file is absent. Raises ConfigurationError."""
    path = service_dir / PATH
    if not path.is_file():
        return []
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        entries = _File.model_validate(raw).suppressions
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigurationError(f"{path}: {' '.join(str(exc).split())[:300]}") from exc
    return [Suppression.model_validate(e.model_dump()) for e in entries]


def apply(findings: list[Finding], suppressions: list[Suppression], today: date
          ) -> tuple[list[Finding], list[Finding], list[Suppression]]:
    """Split findings into (kept, suppressed); also the expired entries (pure)."""
    active = [s for s in suppressions if s.expires >= today]
    expired = [s for s in suppressions if s.expires < today]
    kept = [f for f in findings if not any(s.matches(f) for s in active)]
    suppressed = [f for f in findings if any(s.matches(f) for s in active)]
    return kept, suppressed, expired


def apply_to_results(results: list[ScannerResult], suppressions: list[Suppression],
                     today: date) -> tuple[list[Finding], list[Suppression]]:
    """Suppress in every scanner's results (in place), whatever the scanner: the suppressed
    findings and the expired entries."""
    suppressed_all: list[Finding] = []
    expired: list[Suppression] = []
    for result in results:
        result.findings, suppressed, expired = apply(result.findings, suppressions, today)
        suppressed_all += suppressed
    return suppressed_all, expired
