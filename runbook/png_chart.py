"""Rendering a matplotlib figure to a PNG file: the one way every runbook chart is drawn.

matplotlib is imported here, lazily and with the Agg backend: a worker has no display and
renders to files only, and runs that draw no chart do not pay for the import.
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
    ``path`` when the block ends without an error, and closed in every case.

    Args:
        path: the PNG to write (parent folders are created).
        rows: panels stacked vertically.
        size: the figure's width and height in inches (at 100 dpi).
        sharex: panels share the x axis (labels on the bottom one only).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(rows, 1, figsize=size, dpi=100, sharex=sharex)
    try:
        yield axes
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    finally:
        pyplot.close(figure)
