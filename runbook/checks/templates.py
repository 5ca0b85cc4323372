"""Query templates: ``{{variable}}`` placeholders, known names only, filled per measurement."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
VARIABLES = ("service", "environment", "revision", "color", "namespace", "interval", "endpoint")
"""What a template may name. ``interval`` is a Prometheus range (``"6s"``) covering the
check's own interval; ``endpoint`` is the environment's traffic URL."""


def placeholders(template: str) -> list[str]:
    return PLACEHOLDER.findall(template)


def unknown_variables(template: str) -> list[str]:
    return sorted({name for name in placeholders(template) if name not in VARIABLES})


def render(template: str, values: Mapping[str, str],
           quote: Callable[[str], str] = lambda value: value) -> str:
    """The template with every placeholder replaced by ``quote(value)``.

    Args:
        template: text with ``{{name}}`` placeholders, names from :data:`VARIABLES`.
        values: one value per variable.
        quote: makes a value safe where it lands (e.g. a PromQL label value).

    Returns:
        The rendered text. A name missing from ``values`` raises KeyError: templates are
        validated at load time, so that is a bug, not bad input.
    """
    return PLACEHOLDER.sub(lambda match: quote(values[match.group(1)]), template)
