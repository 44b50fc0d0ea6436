"""Stored values read back without SQLAlchemy: epoch milliseconds and when an alert began firing.

The bottom of the storage package: the column types, the store's queries and the light status
read (which must not import SQLAlchemy, to start fast) share these.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def to_millis(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime."""
    return (moment - _EPOCH) // _MILLISECOND


def from_millis(millis: int) -> datetime:
    """The aware UTC datetime of an epoch-milliseconds value."""
    return _EPOCH + timedelta(milliseconds=millis)


def firing_since(state: dict[str, Any], updated_at: datetime) -> datetime:
    """When a firing alert's episode began: its stored state says; the row's `updated_at` (which
    every poll rewrites) only when the state does not."""
    try:
        return datetime.fromisoformat(state["started_at"]).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        return updated_at
