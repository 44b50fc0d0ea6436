"""The `[accounts.NAME]` sections: which exchange accounts to watch and how to reach them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from monitor.config.alerts import AccountAlerts
from monitor.config.types import Credential, Duration
from monitor.domain.model import Venue

# The margin pool a venue's account watches unless `asset` says otherwise.
DEFAULT_ASSET = {
    Venue.BINANCE_USDM: "USDT",
    Venue.BINANCE_COINM: "BTC",
    Venue.BYBIT_LINEAR: "USDT",
    Venue.BYBIT_INVERSE: "BTC",
}


class AccountSettings(BaseModel):
    """One exchange account (one API key) and the margin pool on it that we watch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    venue: Venue
    api_key: Credential
    api_secret: Credential
    poll_interval: Duration = timedelta(seconds=10)
    # Replaces scheme and host of every API URL (simulator, proxy); the path is kept.
    base_url: str | None = None
    testnet: bool = False
    asset: str = ""
    # Keys that replace the [alerts] defaults for this account ([accounts.NAME.alerts.RULE]).
    alerts: AccountAlerts | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_asset(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("asset"):
            try:
                venue = Venue(str(data.get("venue")))
            except ValueError:
                return data
            return {**data, "asset": DEFAULT_ASSET[venue]}
        return data

    @field_validator("asset")
    @classmethod
    def _upper_asset(cls, value: str) -> str:
        if not value.isalnum():
            raise ValueError(f"{value!r} is not an asset code (examples: USDT, USDC, BTC)")
        return value.upper()

    @field_validator("poll_interval")
    @classmethod
    def _positive_interval(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL (example: http://127.0.0.1:8900)")
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise ValueError("only scheme and host are replaced: give no path, query or fragment")
        return f"{parts.scheme}://{parts.netloc}"
