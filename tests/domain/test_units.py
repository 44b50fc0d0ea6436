"""Durations and percentages: numbers that are not finite or do not fit a timedelta are bad input
naming the argument, never a traceback or a NaN level that no measure can ever cross."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.domain.errors import InvalidInput
from monitor.domain.units import format_percent, format_price, parse_duration, parse_percent


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


@pytest.mark.parametrize(
    ("fraction", "text"),
    [
        (3.0, "300 %"),
        (1.5, "150 %"),
        (1.423, "142.3 %"),
        (1.004, "100.4 %"),  # not "100 %": that reads as liquidated
        (0.704, "70.4 %"),
        (0.0004, "0.040 %"),  # two significant digits, never "0.0 %"
        (0.000012, "0.0012 %"),
        (-0.12, "-12 %"),
        (0.0, "0.0 %"),
    ],
)
def test_percentages_keep_the_decimals_that_matter(fraction: float, text: str) -> None:
    assert format_percent(fraction) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (52_100.5, "52,100.5"),
        (5_000_000.0, "5,000,000.00"),
        (2_832.6912, "2,832.6912"),
        (0.00001234, "0.00001234"),  # never 1.234e-05
        (0.5, "0.5"),
    ],
)
def test_prices_read_as_plain_decimals(value: float, text: str) -> None:
    assert format_price(value) == text
