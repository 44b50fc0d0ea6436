"""The `[accounts.NAME]` sections: which exchange accounts to watch and how to reach them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

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

# Linear (USDⓈ-M) contracts settle in these; coin-margined ones in the coin itself.
STABLECOIN_POOLS = frozenset({"USDT", "USDC"})
_COIN_VENUE = {Venue.BINANCE_USDM: "binance-coinm", Venue.BYBIT_LINEAR: "bybit-inverse"}
_LINEAR_VENUE = {Venue.BINANCE_COINM: "binance-usdm", Venue.BYBIT_INVERSE: "bybit-linear"}


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
    # Read the held symbols' public klines hourly for distances in sigmas of 1 h and 1 d moves.
    volatility: bool = True
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
    def _asset_of_the_venue(cls, value: str, info: ValidationInfo) -> str:
        if not value.isalnum():
            raise ValueError(f"{value!r} is not an asset code (examples: USDT, USDC, BTC)")
        asset, venue = value.upper(), info.data.get("venue")
        # A pool the venue cannot have would read as an empty account: "no positions, all safe".
        if venue in _COIN_VENUE and asset not in STABLECOIN_POOLS:
            raise ValueError(
                f"{asset!r} is not a margin pool of {venue.value} "
                f"({' or '.join(sorted(STABLECOIN_POOLS))}); coin-margined contracts are "
                f"venue = {_COIN_VENUE[venue]!r}"
            )
        if venue in _LINEAR_VENUE and asset in STABLECOIN_POOLS:
            raise ValueError(
                f"{asset!r} is not a margin pool of {venue.value}, whose contracts are margined "
                f"in coins (BTC, ETH, ...); {asset}-margined contracts are "
                f"venue = {_LINEAR_VENUE[venue]!r}"
            )
        return asset

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
