"""Parsing of the human units used in config files and on the command line: durations and percentages."""

from __future__ import annotations

import math
import re
from datetime import timedelta

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


def format_duration(delta: timedelta) -> str:
    """A compact human duration: 45s, 12m, 3h05m, 2d04h."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def format_percent(fraction: float) -> str:
    """A ratio or distance as a trader reads it: "300 %", "150 %", "142.3 %", "0.28 %".

    Near liquidation the figures matter to the decimal: a margin ratio of 100.4 % must not read
    "100 %" (liquidated), nor a distance of 0.04 % read "0.0 %".
    """
    magnitude = abs(fraction * 100)
    if magnitude >= 200 or (magnitude >= 1 and abs(magnitude - round(magnitude)) < 1e-9):
        decimals = 0  # whole levels as written: "150 %", not "150.0 %"
    elif magnitude >= 1 or magnitude == 0:
        decimals = 1
    else:
        decimals = max(2, 1 - math.floor(math.log10(magnitude)))
    return f"{fraction * 100:.{decimals}f} %"


def format_price(value: float) -> str:
    """A price with thousands separators and up to 8 significant digits: "52,100.5",
    "5,000,000.00", and sub-cent coins in plain decimals ("0.00001234", never "1.234e-05")."""
    if abs(value) >= 1e6:
        return f"{value:,.2f}"
    text = f"{value:,.8g}"
    if "e" in text:
        decimals = 7 - math.floor(math.log10(abs(value)))
        text = f"{value:.{decimals}f}".rstrip("0")
    return text
