"""The `[database]` section: where snapshots are stored, schema migration and retention."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, model_validator

from monitor.config.types import Duration


class DatabaseSettings(BaseModel):
    """`url` is an SQLAlchemy URL; None = an SQLite file `monitor.db` in the state directory.

    `auto_migrate` None means: migrate SQLite at daemon start (after a backup copy), never
    PostgreSQL (run `portfolio-monitor migrate`). Raw snapshots are kept `retention_raw`, then
    one row per minute until `retention_minute`, then one per hour until `retention_hour`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    auto_migrate: bool | None = None
    retention_raw: Duration = timedelta(days=7)
    retention_minute: Duration = timedelta(days=30)
    retention_hour: Duration = timedelta(days=730)

    @model_validator(mode="after")
    def _periods_grow(self) -> DatabaseSettings:
        if self.retention_raw < timedelta(hours=1):
            raise ValueError("retention_raw: keep raw snapshots at least 1h")
        if self.retention_minute < self.retention_raw:
            raise ValueError("retention_minute: must be at least retention_raw")
        if self.retention_hour < self.retention_minute:
            raise ValueError("retention_hour: must be at least retention_minute")
        return self
