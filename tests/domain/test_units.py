"""Durations and percentages: numbers that are not finite or do not fit a timedelta are bad input
naming the argument, never a traceback or a NaN level that no measure can ever cross. Numbers as
a person reads them: no exponent notation, no figure rounded onto or across the alert level it is
shown beside, config values written back exactly."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from monitor.domain.errors import InvalidInput
from monitor.domain.units import (
    config_duration,
    config_percent,
    format_amount,
    format_figure,
    format_percent,
    format_price,
    format_quantity,
    parse_duration,
    parse_percent,
)


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
        (28_962.505_1, "28,962.51"),  # cents from 1,000 up: no false precision
        (5_000_000.0, "5,000,000"),
        (2_832.6912, "2,832.69"),
        (142.345678912, "142.34568"),
        (0.00001234, "0.00001234"),  # never 1.234e-05
        (0.5, "0.5"),
    ],
)
def test_prices_read_as_plain_decimals(value: float, text: str) -> None:
    assert format_price(value) == text


def _number(text: str) -> float:
    """The figure a reader takes from a formatted number."""
    return float(text.removesuffix(" %").replace(",", ""))


PRICES = st.floats(min_value=1e-8, max_value=1e9)


@given(PRICES | PRICES.map(lambda value: -value))
@example(0.00001234)
@example(1e-8)
@example(1e9)
@example(999_999.999_999)
def test_no_price_from_1e_8_to_1e9_reads_in_exponent_notation(value: float) -> None:
    for text in (format_price(value), format_quantity(value), format_amount(value)):
        assert "e" not in text.lower()
        shown = _number(text)
        # Eight significant digits, or cents from a thousand up: the price a trader types back.
        assert shown == pytest.approx(value, rel=5e-8, abs=0.005 if abs(value) >= 1000 else 0)


@given(st.floats(min_value=-1e9, max_value=1e9))
def test_percentages_never_read_in_exponent_notation(fraction: float) -> None:
    text = format_percent(fraction)
    assert "e" not in text
    assert text.endswith(" %")
    magnitude = abs(fraction * 100)
    # Whole percents from 200 %, else at least two significant digits.
    tolerance = 0.5 if magnitude >= 200 else max(0.05, magnitude * 0.05)
    assert _number(text) == pytest.approx(fraction * 100, abs=tolerance)


LEVELS = st.sampled_from([1.0, 1.05, 1.15, 1.2, 1.26, 1.5, 3.0, 0.05, 0.1, 0.003, 0.5])


def _side(value: float, level: float) -> int:
    return (value > level) - (value < level)


@given(LEVELS, st.floats(min_value=-0.01, max_value=0.01), st.booleans())
@example(1.2, 1.1996 - 1.2, False)
@example(1.15, 0.0, False)
@example(1.05, 1e-12, False)
def test_a_percent_never_rounds_across_the_level_it_is_compared_with(
    level: float, offset: float, signed: bool
) -> None:
    value = level + offset * level
    text = format_percent(value, against=[level], signed=signed)
    # The reader compares the figure with the level as written (115 %, not 114.999...).
    assert _side(_number(text), _number(format_percent(level))) == _side(value, level)


def test_a_ratio_just_below_its_level_says_so() -> None:
    assert format_percent(1.1996, against=[1.2]) == "119.96 %"
    assert format_percent(1.1996) == "120.0 %"  # no level beside it: one decimal is enough
    assert format_percent(1.5, against=[1.2, 1.5]) == "150 %"  # on the level: reads as it


@given(
    st.lists(LEVELS, min_size=1, max_size=4),
    st.floats(min_value=0.0, max_value=4.0),
)
def test_a_percent_keeps_its_side_of_every_level(levels: list[float], value: float) -> None:
    shown = _number(format_percent(value, against=levels))
    for level in levels:
        assert _side(shown, _number(format_percent(level))) == _side(value, level)


@given(st.sampled_from([1.0, 2.0, 3.0, 2.5]), st.floats(min_value=0.0, max_value=6.0))
@example(3.0, 2.96)
def test_a_figure_never_rounds_across_its_level(level: float, value: float) -> None:
    assert _side(float(format_figure(value, against=[level])), level) == _side(value, level)


def test_signed_percentages_show_their_direction() -> None:
    assert format_percent(0.025, signed=True) == "+2.5 %"
    assert format_percent(-0.025, signed=True) == "-2.5 %"
    assert format_percent(-0.0, signed=True) == "+0.0 %"  # never "-0.0 %"
    assert format_percent(12.5) == "1,250 %"


@pytest.mark.parametrize(
    ("value", "quantity", "amount"),
    [
        (0.00001, "0.00001", "0.00001"),
        (1_250_000.0, "1,250,000", "1,250,000.00"),
        (0.5, "0.5", "0.50"),
        (0.012345678, "0.012345678", "0.012345678"),
        (12_500.0, "12,500", "12,500.00"),
        (0.0, "0", "0.00"),
        (1.2345678, "1.2345678", "1.2345678"),
        (52.5, "52.5", "52.50"),
        (-1234.5, "-1,234.5", "-1,234.50"),
        (123_456_789_012.0, "123,456,789,012", "123,456,789,012.00"),
    ],
)
def test_quantities_and_amounts(value: float, quantity: str, amount: str) -> None:
    assert format_quantity(value) == quantity
    assert format_amount(value) == amount


@given(st.integers(min_value=0, max_value=10 * 365 * 86400) | st.floats(0, 59.999, allow_nan=False))
def test_config_durations_read_back_identically(seconds: float) -> None:
    delta = timedelta(seconds=seconds)
    written = config_duration(delta)
    assert "e" not in written  # never "2.592e+06s"
    assert parse_duration(written) == delta


@given(st.floats(min_value=-1e6, max_value=1e6))
@example(1.5)
@example(0.005)
@example(1.23456789)
def test_config_percentages_read_back_identically(fraction: float) -> None:
    written = config_percent(fraction)
    assert parse_percent(written) == fraction
    assert not math.isnan(parse_percent(written))


@pytest.mark.parametrize(("fraction", "text"), [(1.5, "150%"), (0.005, "0.5%"), (-0.05, "-5%")])
def test_config_percentages_as_written(fraction: float, text: str) -> None:
    assert config_percent(fraction) == text
