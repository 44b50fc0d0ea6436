"""The `[database]` section: where snapshots are stored, schema migration and retention."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from monitor.config.types import Duration
from monitor.errors import StorageError


class DatabaseSettings(BaseModel):
    """`url` is an SQLAlchemy URL; None = an SQLite file `monitor.db` in the state directory.

    `auto_migrate` None means: migrate SQLite at daemon start (after a backup copy), never
    PostgreSQL (run `portfolio-monitor migrate`). Raw snapshots are kept `retention_raw`, then
    one row per minute until `retention_minute`, then one per hour until `retention_hour`.

    PostgreSQL only (several daemons may share it): `daemon_name` identifies this daemon in
    account leases and `status` (None: `HOST:PID`); `takeover` is the longest an account goes
    unpolled after the daemon holding it died.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    auto_migrate: bool | None = None
    retention_raw: Duration = timedelta(days=7)
    retention_minute: Duration = timedelta(days=30)
    retention_hour: Duration = timedelta(days=730)
    daemon_name: str | None = None
    takeover: Duration = timedelta(seconds=30)

    @field_validator("daemon_name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or len(value) > 100 or value != value.strip()):
            raise ValueError("a name of 1 to 100 characters without surrounding spaces")
        return value

    @field_validator("takeover")
    @classmethod
    def _takeover_range(cls, value: timedelta) -> timedelta:
        # Under 2 s a lease lasts 1 s: one slow database round would hand accounts around.
        if not timedelta(seconds=2) <= value <= timedelta(hours=1):
            raise ValueError("between 2s and 1h")
        return value

    @field_validator("url")
    @classmethod
    def _usable_url(cls, value: str | None) -> str | None:
        if not value:
            return value
        # Imported here so that only a configured URL pays for SQLAlchemy at load time.
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        from monitor.storage.engine import async_url

        try:
            make_url(value)
        except (ArgumentError, ValueError):
            # Not echoed: the URL may carry a password.
            raise ValueError(
                "not a database URL (examples: sqlite:////var/lib/portfolio-monitor/monitor.db, "
                "postgresql://monitor@localhost/monitor)"
            ) from None
        try:
            async_url(value)
        except StorageError as exc:
            raise ValueError(str(exc).removeprefix("database URL: ")) from None
        return value

    @model_validator(mode="after")
    def _periods_grow(self) -> DatabaseSettings:
        if self.retention_raw < timedelta(hours=1):
            raise ValueError("retention_raw: keep raw snapshots at least 1h")
        if self.retention_minute < self.retention_raw:
            raise ValueError("retention_minute: must be at least retention_raw")
        if self.retention_hour < self.retention_minute:
            raise ValueError("retention_hour: must be at least retention_minute")
        return self


def without_password(url: str) -> str:
    """The database URL with its password shown as `***`, for logs and `check-config`."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    user, colon, _password = userinfo.partition(":")
    # SQLAlchemy's own rule: a user name holds no '/' or ':', a password no '@'.
    if not sep or not at or not colon or "/" in user:
        return url
    return f"{scheme}{sep}{user}:***@{host}"
