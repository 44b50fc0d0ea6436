"""The `[database]` section: where snapshots are stored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DatabaseSettings(BaseModel):
    """`url` is an SQLAlchemy URL; None = an SQLite file `monitor.db` in the state directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
