"""Reading the venues' raw JSON: string-encoded numbers, with errors naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.domain.errors import ExchangeDataError, ExchangeUnavailable


def as_mapping(payload: Any, where: str) -> Mapping[str, Any]:
    """`payload` as a JSON object; a body that is not JSON at all counts as a transient failure."""
    if isinstance(payload, Mapping):
        return payload
    if isinstance(payload, str | bytes) or payload is None:
        raise ExchangeUnavailable(f"{where}: the exchange sent a malformed (non-JSON) response")
    raise ExchangeDataError(f"{where}: expected a JSON object, got {type(payload).__name__}")


def as_list(payload: Any, where: str) -> list[Any]:
    """`payload` as a JSON array (see `as_mapping` for bodies that are not JSON)."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, str | bytes) or payload is None:
        raise ExchangeUnavailable(f"{where}: the exchange sent a malformed (non-JSON) response")
    raise ExchangeDataError(f"{where}: expected a JSON array, got {type(payload).__name__}")


def number(row: Mapping[str, Any], key: str, where: str) -> float:
    """A required numeric field."""
    value = optional_number(row, key, where)
    if value is None:
        raise ExchangeDataError(f"{where}.{key}: missing")
    return value


def optional_number(row: Mapping[str, Any], key: str, where: str) -> float | None:
    """A numeric field that may be absent or empty (""), as venues write "no value"."""
    value = row.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ExchangeDataError(f"{where}.{key}: {value!r} is not a number")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ExchangeDataError(f"{where}.{key}: {value!r} is not a number") from None
    if result != result or result in (float("inf"), float("-inf")):
        raise ExchangeDataError(f"{where}.{key}: {value!r} is not a finite number")
    return result


def text(row: Mapping[str, Any], key: str, where: str) -> str:
    """A required string field."""
    value = row.get(key)
    if not isinstance(value, str) or not value:
        raise ExchangeDataError(f"{where}.{key}: missing")
    return value


def positive_or_none(value: float | None) -> float | None:
    """Venues write "0" for "no such price" (Binance liquidationPrice); that is None, not zero."""
    return value if value is not None and value > 0 else None
