"""Durations and percentages: numbers that are not finite or do not fit a timedelta are bad input
naming the argument, never a traceback or a NaN level that no measure can ever cross."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.domain.errors import InvalidInput
from monitor.domain.units import parse_duration, parse_percent


@pytest.mark.parametrize(
    "text", ["inf", "nan", "-inf", "1e400", "1e400s", float("inf"), float("nan")]
)
def test_non_finite_duration_is_invalid(text: str | float) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_duration(text, path="--for")
    assert raised.value.path == "--for"
    assert "is not a duration" in raised.value.problem


@pytest.mark.parametrize("text", ["99999999999d", 1e300])
def test_duration_beyond_timedelta_is_invalid(text: str | float) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_duration(text, path="poll_interval")
    assert raised.value.path == "poll_interval"
    assert "too long" in raised.value.problem


def test_longest_durations_still_parse() -> None:
    assert parse_duration("3650d") == timedelta(days=3650)
    assert parse_duration("1h30m") == timedelta(hours=1, minutes=30)


@pytest.mark.parametrize("text", ["nan%", "inf", "-inf%", "1e400%", float("nan"), float("inf")])
def test_non_finite_percent_is_invalid(text: str | float) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_percent(text, path="--shock")
    assert raised.value.path == "--shock"
    assert "is not a percentage" in raised.value.problem


@pytest.mark.parametrize(
    ("text", "fraction"), [("300%", 3.0), ("-5%", -0.05), ("0.8", 0.8), (2, 2.0)]
)
def test_percent_reads_fractions(text: str | float, fraction: float) -> None:
    assert parse_percent(text) == pytest.approx(fraction)
