"""Rendering a matplotlib figure to a PNG file: the one way every runbook chart is drawn.

matplotlib is imported here, lazily: a worker has no display and renders to files only
(``Figure.savefig`` uses the Agg canvas without selecting a backend), and runs that draw no
chart do not pay for the import.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def png_figure(path: Path, rows: int = 1, *, size: tuple[float, float],
               sharex: bool = False) -> Iterator[Any]:
    """Axes to draw on (one, or a tuple of ``rows``); the figure is laid out and written to
    ``path`` when the block ends without an error.

    Args:
        path: the PNG to write (parent folders are created).
        rows: panels stacked vertically.
        size: the figure's width and height in inches (at 100 dpi).
        sharex: panels share the x axis (labels on the bottom one only).
    """
    # The object-oriented API, not pyplot: no global figure registry to close, and
    # importing pyplot and its first figure cost ~0.8 s more CPU per run here (a run
    # draws one chart; eight releases at once on two cores queue for that CPU).
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100)
    axes = figure.subplots(rows, 1, sharex=sharex)
    yield axes
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
