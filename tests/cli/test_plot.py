"""`plot`: no two time labels alike, equity with its unit, the alerts that fired, and the daemon's
downtime drawn as a gap (not a line across it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="plot needs the optional matplotlib extra")

from monitor.cli.chart import AlertMark, Series, draw, with_gaps
from monitor.storage.queries import AccountPoint

T0 = datetime(2026, 12, 5, 15, 49, tzinfo=UTC)


def point(at: datetime, ratio: float) -> AccountPoint:
    return AccountPoint(at, 1, 9_000.0, 10_000.0, 300.0, ratio, ratio, ratio, 0.3, 0.3, -0.08, 0.1)


def test_downtime_is_a_gap() -> None:
    times = [T0, T0 + timedelta(seconds=10), T0 + timedelta(hours=2)]
    x, y = with_gaps(times, [3.0, 3.1, 2.9], max_step=30)
    assert y == [3.0, 3.1, None, 2.9]
    assert x[0] < x[1] < x[2] < x[3]


def test_chart_has_distinct_time_labels_and_equity_unit(tmp_path: Path) -> None:
    # Four minutes of 10-second points: minute labels alone would repeat (15:49, 15:49, 15:50).
    points = [point(T0 + timedelta(seconds=10 * i), 3.0 - i / 100) for i in range(24)]
    output = tmp_path / "chart.png"
    labels = draw(
        {"main": Series(points, "USDT", max_step=30)},
        [("warning", 3.0)],
        [AlertMark("main", T0 + timedelta(minutes=2), "warning")],
        output,
    )
    shown = [label for label in labels if label]
    assert len(shown) >= 3
    assert len(shown) == len(set(shown)), shown
    assert output.stat().st_size > 10_000
