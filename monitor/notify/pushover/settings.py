"""`[notify.webhooks.NAME]` with `kind = "pushover"`: an application token, a user or group key,
and how an emergency alarm repeats."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from monitor.config.types import Credential, Duration
from monitor.notify.http.settings import DEFAULT_TIMEOUT, BaseUrl, Timeout


class PushoverSettings(BaseModel):
    """One user (or group) key; emergency alarms repeat every `emergency_retry` until
    acknowledged or `emergency_expire` passed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["pushover"]
    api_url: BaseUrl | None = None
    token: Credential
    user: Credential
    emergency_retry: Duration | None = None
    emergency_expire: Duration | None = None
    timeout: Timeout = DEFAULT_TIMEOUT

    @field_validator("emergency_retry")
    @classmethod
    def _retry(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value.total_seconds() < 30:
            raise ValueError("Pushover needs at least 30s between emergency retries")
        return value

    @field_validator("emergency_expire")
    @classmethod
    def _expire(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and not 0 < value.total_seconds() <= 10800:
            raise ValueError("Pushover accepts an emergency expiry up to 3h")
        return value
