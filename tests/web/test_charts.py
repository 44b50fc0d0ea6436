"""The SVG history chart: a pause in the data is drawn as a gap, alert levels and firings show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.web.charts import line_chart

T0 = datetime(2026, 12, 5, 8, tzinfo=UTC)


def _points(seconds: list[int]) -> list[tuple[datetime, float | None]]:
    return [(T0 + timedelta(seconds=s), 3.0 - s / 1000) for s in seconds]


def test_a_pause_longer_than_the_gap_splits_the_line() -> None:
    # The daemon stopped between 20 s and 200 s.
    svg = line_chart(
        _points([0, 10, 20, 200, 210, 220]),
        label="margin ratio",
        unit="margin ratio",
        gap_after=timedelta(seconds=30),
        percent=True,
    )
    assert svg.count("<polyline") == 2


def test_steady_polls_are_one_line_with_levels_markers_and_unit() -> None:
    svg = line_chart(
        _points(list(range(0, 300, 10))),
        label="equity",
        unit="USDT",
        gap_after=timedelta(seconds=30),
        levels=[("warning", 2.9), ("critical", 1.5)],
        markers=[(T0 + timedelta(seconds=100), "margin_ratio warning firing")],
    )
    assert svg.count("<polyline") == 1
    assert "USDT" in svg
    assert svg.count("stroke-dasharray") == 2
    assert "warning below" in svg
    assert 'class="marker"' in svg
    assert "<title>margin_ratio warning firing</title>" in svg


def test_a_lone_point_is_a_dot_and_no_data_says_so() -> None:
    one = line_chart(_points([0]), label="equity", unit="USDT", gap_after=timedelta(seconds=30))
    assert "<circle" in one
    assert "<polyline" not in one
    none = line_chart([], label="equity", unit="USDT", gap_after=timedelta(seconds=30))
    assert "no equity data" in none
