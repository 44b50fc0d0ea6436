"""Column types that store time the same way on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Integer
from sqlalchemy.types import TypeDecorator

from monitor.storage.decode import from_millis, to_millis

# Autoincrement keys: SQLite needs INTEGER PRIMARY KEY (the rowid); PostgreSQL gets BIGSERIAL.
IdType = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime: naive ones are rejected on write, UTC is re-attached on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} cannot be stored: give it a UTC tzinfo"
            )
        utc = value.astimezone(UTC)
        # SQLite keeps text: store the naive UTC form so ordering and comparison stay textual.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class EpochMillis(TypeDecorator[datetime]):
    """An aware UTC datetime stored as integer milliseconds since the epoch.

    Used by the time-series tables: 6 bytes instead of a 26-byte text on SQLite, and bucketing by
    minute or hour is plain integer division on every engine.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, int):
            return value
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"{value!r} cannot be stored: give an aware UTC datetime")
        return to_millis(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> datetime | None:
        return None if value is None else from_millis(value)
