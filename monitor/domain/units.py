"""The human units of this project, read and written in one place.

Parsing: the durations and percentages of config files and the command line. Formatting: every
number a person reads (CLI tables, the live view, web pages, alert texts, sink messages) goes
through the `format_*` functions here, so a price never reads "1.234e-05", a percentage reads the
same everywhere ("142.3 %"), and a figure printed beside an alert level never rounds onto or
across that level. `config_*` write values back the way a config file states them, exactly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from functools import lru_cache

from monitor.domain.errors import InvalidInput

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str | float, *, path: str = "") -> timedelta:
    """A duration such as "10s", "1h30m", "2d" or a plain number of seconds; must be >= 0."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        compact = str(text).strip().lower().replace(" ", "")
        if not compact:
            raise InvalidInput(path, "empty duration")
        try:
            seconds = float(compact)
        except ValueError:
            pos, seconds = 0, 0.0
            for match in _DURATION_PART.finditer(compact):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                pos = match.end()
            if pos != len(compact):
                raise InvalidInput(
                    path, f"{text!r} is not a duration (examples: 30s, 5m, 1h30m, 2d)"
                ) from None
    if not math.isfinite(seconds):
        # "inf" and "nan" read as floats; a timedelta cannot hold them.
        raise InvalidInput(path, f"{text!r} is not a duration (examples: 30s, 5m, 1h30m, 2d)")
    if seconds < 0:
        raise InvalidInput(path, f"{text!r}: a duration cannot be negative")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise InvalidInput(path, f"{text!r}: too long a duration") from None


def parse_percent(text: str | float, *, path: str = "") -> float:
    """A fraction written as "300%" (3.0), "-5%" (-0.05) or a plain number (0.8 stays 0.8)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        fraction = float(text)
    else:
        compact = str(text).strip().replace(" ", "")
        try:
            fraction = float(compact[:-1]) / 100.0 if compact.endswith("%") else float(compact)
        except ValueError:
            fraction = math.nan
    # "nan%" would compare false with every level and silently never alert.
    if not math.isfinite(fraction):
        raise InvalidInput(path, f"{text!r} is not a percentage (examples: 300%, -5%, 0.8)")
    return fraction


# Room for every digit of any float written out in full (the largest is about 1.8e308).
_EXACT = Context(prec=1200, rounding=ROUND_HALF_EVEN)
_HUNDRED = Decimal(100)
_NOISE = Decimal("1e-9")  # what float arithmetic leaves on a level: 1.5 * 1.2 = 1.7999999999999998


def format_duration(delta: timedelta) -> str:
    """A duration as a trader glances at it, to two units: 45s, 12m, 3h05m, 2d04h (seconds and
    finer are dropped past a minute)."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def format_percent(fraction: float, *, signed: bool = False, against: Iterable[float] = ()) -> str:
    """A ratio or distance as a trader reads it: "300 %", "150 %", "142.3 %", "0.28 %", "1,250 %".

    Near liquidation the figures matter to the decimal: a margin ratio of 100.4 % must not read
    "100 %" (liquidated), nor a distance of 0.04 % read "0.0 %". `against` are the alert levels
    (fractions) the figure is shown beside: it gets as many more decimals as it takes not to land
    on or across one of them, so a ratio of 119.96 % below a 120 % level reads "119.96 %", never
    "120.0 %". `signed` writes a "+" before a move that is not negative ("+2.5 %").
    """
    if not math.isfinite(fraction):
        return f"{fraction * 100:{'+' if signed else ''}.0f} %"
    exact = _decimal(fraction) * _HUNDRED
    magnitude = abs(exact)
    whole = abs(magnitude - magnitude.to_integral_value()) < _NOISE
    if magnitude >= 200 or (magnitude >= 1 and whole):
        # Whole levels as written: "150 %", not "150.0 %", also when computed (150 % * 1.2).
        decimals = 0
    elif magnitude >= 1 or magnitude == 0:
        decimals = 1
    else:
        decimals = max(2, 1 - magnitude.adjusted())  # two significant digits: "0.042 %"
    levels = [_percent_level(level) for level in against if math.isfinite(level)]
    return f"{_written(_rounded(exact, decimals, levels), signed)} %"


def format_figure(value: float, decimals: int = 1, *, against: Iterable[float] = ()) -> str:
    """A plain measure such as a distance in sigmas ("2.4") or a count of poll intervals, with
    `decimals` decimals, and more where it is shown beside alert levels (`against`): 2.96 sigma
    below a 3 sigma level reads "2.96", never "3.0"."""
    if not math.isfinite(value):
        return f"{value:.{decimals}f}"
    levels = [_decimal(level) for level in against if math.isfinite(level)]
    return _written(_rounded(_decimal(value), decimals, levels), signed=False)


def format_price(value: float) -> str:
    """A price as a trader reads it: up to 8 significant digits but no finer than cents from
    1,000 up, thousands separators, no trailing zeros ("52,100.5", "28,962.51", "5,000,000",
    "0.61234"), and sub-cent coins in plain decimals ("0.00001234", never "1.234e-05")."""
    if not math.isfinite(value):
        return f"{value:,.2f}"
    return _significant(value, 8, most_decimals=2 if abs(value) >= 1000 else None)


def format_quantity(value: float) -> str:
    """A position size or coin balance: up to 8 significant digits, thousands separators, never
    exponent notation ("0.00001", "1,250,000", "0.5")."""
    if not math.isfinite(value):
        return f"{value:,.2f}"
    return _significant(value, 8)


def format_amount(value: float) -> str:
    """An equity, margin, balance or loss in its asset: cents from 1,000 up ("12,500.00"), below
    that up to 8 significant digits and at least 2 decimals, so a BTC equity keeps its figures
    ("1.2345678", "0.01234568", "52.50")."""
    if not math.isfinite(value) or abs(value) >= 1000:
        return f"{value:,.2f}"
    text = _significant(value, 8)
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def format_compact(value: float) -> str:
    """An amount shortened for a narrow table column, to 4 significant digits: "1.235M",
    "12.5k", "2.1B", "-340.2", and small ones in plain decimals ("0.0001234")."""
    if not math.isfinite(value):
        return f"{value:.0f}"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{_significant(value / limit, 4).replace(',', '')}{suffix}"
    return _significant(value, 4)


def config_duration(delta: timedelta) -> str:
    """A duration as the config file would write it, exactly: "10s", "1m30s", "30d", "0.5s";
    `parse_duration` reads it back to the same value."""
    total = delta.total_seconds()
    if total < 60 or total != int(total):
        # Microseconds are timedelta's resolution; no exponent notation, no lost digits.
        return f"{total:.6f}".rstrip("0").rstrip(".") + "s"
    remaining, parts = int(total), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def config_percent(fraction: float) -> str:
    """A fraction as the config file would write it: "150%", "0.5%", "123.456789%"; the rare float
    that "N%" cannot carry back exactly is written as the plain fraction. `parse_percent` reads it
    back to the same value."""
    exact = _decimal(fraction) * _HUNDRED
    text = f"{_written(exact.normalize(_EXACT), signed=False).replace(',', '')}%"
    return text if parse_percent(text) == fraction else repr(fraction)


def _decimal(value: float) -> Decimal:
    """The float as its shortest decimal, the way it was written (1.15, not 1.149999...)."""
    return Decimal(repr(float(value)))


@lru_cache(maxsize=1024)
def _percent_level(level: float) -> Decimal:
    """A level in percent as a decimal; the same few levels come back every cycle."""
    return _decimal(level) * _HUNDRED


def _rounded(exact: Decimal, decimals: int, levels: list[Decimal]) -> Decimal:
    """`exact` to `decimals` places, or more until it sits on the same side of every level
    (above, on or below) as `exact` does; ends at the latest when no digit is left to round."""
    while True:
        shown = exact.quantize(Decimal(1).scaleb(-decimals), context=_EXACT)
        if shown == exact or all(_side(shown, level) == _side(exact, level) for level in levels):
            return shown
        decimals += 1


def _side(value: Decimal, level: Decimal) -> int:
    return (value > level) - (value < level)


def _significant(value: float, digits: int, most_decimals: int | None = None) -> str:
    """`value` to `digits` significant digits (whole numbers keep all theirs) and at most
    `most_decimals` decimals, in plain decimals with thousands separators, no trailing zeros."""
    exact = _decimal(value)
    if exact == 0:
        return "0"
    decimals = max(0, digits - 1 - exact.adjusted())
    if most_decimals is not None:
        decimals = min(decimals, most_decimals)
    shown = exact.quantize(Decimal(1).scaleb(-decimals), context=_EXACT)
    return _written(shown, signed=False, trim=True)


def _written(value: Decimal, signed: bool, *, trim: bool = False) -> str:
    """A decimal in plain notation with thousands separators; never "-0.0"."""
    if value == 0:
        value = abs(value)
    text = format(value, "+,f" if signed else ",f")
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
