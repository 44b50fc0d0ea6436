"""The `[streams]` section: live marks over the venues' public websockets."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, field_validator

from monitor.config.types import Duration

# The daemon's record of how each account's marks arrive, in the state directory (read by
# `portfolio-monitor status`).
STREAM_STATUS_FILE = "streams.json"


class StreamsSettings(BaseModel):
    """`enabled`: follow the marks of every held symbol over one shared websocket per venue and
    address, and recompute the accounts holding it as marks move (on by default).
    `reconcile_interval`: how often an account is fetched over REST while its marks stream
    (positions and balances); the account's own `poll_interval` applies while they do not.
    `heartbeat_timeout`: a stream that sends nothing for this long counts as down.
    `stale_after`: a mark older than this is never used as the current price.
    `account_events`: follow each account's private stream (Binance user-data stream, Bybit
    private `position`/`wallet` topics) and refresh the account over REST at once when it tells
    of a fill, transfer, funding or margin change (on by default; needs `enabled`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    reconcile_interval: Duration = timedelta(seconds=60)
    heartbeat_timeout: Duration = timedelta(seconds=10)
    stale_after: Duration = timedelta(seconds=5)
    account_events: bool = True

    @field_validator("reconcile_interval", "heartbeat_timeout", "stale_after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value
