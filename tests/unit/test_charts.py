"""Charts render to PNG through one helper, which writes nothing when drawing fails."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from runbook.ops.chart import dora_chart
from runbook.ops.dora_trend import DoraDay
from runbook.png_chart import png_figure

PNG = b"\x89PNG\r\n\x1a\n"


def test_dora_chart_is_a_png_with_gaps_for_days_without_changes(tmp_path: Path) -> None:
    trend = [DoraDay(day=date(2026, 3, 9), deployments=0, changes=0, failures=0,
                     lead_time_s=None),
             DoraDay(day=date(2026, 3, 10), deployments=3, changes=4, failures=1,
                     lead_time_s=5400)]
    chart = dora_chart(trend, tmp_path / "nested" / "dora.png", "DORA, last 2 days")
    assert chart.read_bytes()[:8] == PNG


def test_a_failure_while_drawing_writes_no_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    with pytest.raises(ValueError), png_figure(path, size=(4, 3)) as axes:
        axes.plot([1, 2], [3, 4])
        raise ValueError("bad data")
    assert not path.exists()


def test_rows_give_one_axes_each(tmp_path: Path) -> None:
    with png_figure(tmp_path / "three.png", 3, size=(4, 6), sharex=True) as axes:
        assert len(axes) == 3
    assert (tmp_path / "three.png").read_bytes()[:8] == PNG
