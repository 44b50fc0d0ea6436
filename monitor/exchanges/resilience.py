"""Retry budget, back-off and ban windows for the requests of one fetch.

A venue that answers 418/429 with Retry-After gets no request from us (from any account on the
same venue and address) until the window ends; transient failures are retried a few times within
one fetch, and a timestamp error resynchronises the clock before the retry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from monitor.domain.errors import ExchangeUnavailable, MonitorError, RetryableError, VenuePaused
from monitor.exchanges.errors import (
    DEFAULT_BAN_SECONDS,
    is_account_limit,
    is_clock_skew,
    is_throttled,
    retry_after_of,
    translate,
)
from monitor.retry import RetryPolicy

T = TypeVar("T")


# One fetch tries each request 3 times, 0.5 s then 1 s apart (at most 4 s), and sits out a
# venue-requested wait of up to 5 s rather than failing the fetch with `retry_after`.
FETCH_RETRY = RetryPolicy(
    initial=timedelta(seconds=0.5),
    maximum=timedelta(seconds=4),
    attempts=3,
    max_wait=timedelta(seconds=5),
)


class BanBoard:
    """Ban windows per venue and address, shared by every account that talks to it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}
        self._since: dict[str, float] = {}

    def ban(self, key: str, seconds: float) -> None:
        """Keep away from `key` for `seconds` (a longer existing ban is kept)."""
        now = self._clock()
        if self.remaining(key) <= 0:
            self._since[key] = now  # a new pause; an extension keeps its start
        self._until[key] = max(now + seconds, self._until.get(key, 0.0))

    def remaining(self, key: str) -> float:
        """Seconds until requests to `key` are allowed again (0 = allowed now)."""
        return max(0.0, self._until.get(key, 0.0) - self._clock())

    def elapsed(self, key: str) -> float:
        """Seconds since the current ban of `key` began (0 when there is none)."""
        if self.remaining(key) <= 0:
            return 0.0
        return max(0.0, self._clock() - self._since.get(key, self._clock()))

    def paused(self, key: str, message: str) -> VenuePaused:
        """The error for a request to `key` refused by its current ban."""
        return VenuePaused(
            message, venue=key, retry_after=self.remaining(key), elapsed=self.elapsed(key)
        )


async def call(
    request: Callable[[], Awaitable[T]],
    *,
    where: str,
    ban_key: str,
    bans: BanBoard,
    account_key: str | None = None,
    policy: RetryPolicy,
    resync_clock: Callable[[], Awaitable[object]],
) -> T:
    """Run one venue request under the retry budget; raise our error when the budget is spent.

    `ban_key` names the venue and address (bans for everyone there), `account_key` the account
    (limits the venue applies per API key)."""
    resynced = False
    attempt = 0
    while True:
        address_ban = bans.remaining(ban_key)
        banned_for = max(address_ban, bans.remaining(account_key or ban_key))
        if banned_for > policy.max_wait.total_seconds():
            message = f"{where}: the exchange banned this address; next request allowed in {banned_for:.0f}s"
            if address_ban >= banned_for:
                # The whole address waits: one venue-wide pause, not this account's trouble.
                raise bans.paused(ban_key, message)
            raise ExchangeUnavailable(message, retry_after=banned_for)
        if banned_for > 0:
            await asyncio.sleep(banned_for)
        attempt += 1
        try:
            return await request()
        except Exception as exc:  # noqa: BLE001 - every failure is translated below
            failure = exc
        if is_clock_skew(failure) and not resynced:
            resynced = True
            await _resync(resync_clock, where)
            attempt -= 1  # a resync is not a failed attempt of the budget
            continue
        scope: str | None = None
        if is_throttled(failure):
            wait = retry_after_of(failure)
            scope = account_key if account_key and is_account_limit(failure) else ban_key
            bans.ban(scope, wait if wait is not None else DEFAULT_BAN_SECONDS)
        error = translate(failure, where)
        if not isinstance(error, RetryableError) or attempt >= policy.attempts:
            if scope == ban_key and bans.remaining(ban_key) > policy.max_wait.total_seconds():
                raise bans.paused(ban_key, str(error)) from failure
            raise error from failure
        if not is_throttled(failure):
            await asyncio.sleep(policy.delay(attempt).total_seconds())


async def _resync(resync_clock: Callable[[], Awaitable[object]], where: str) -> None:
    try:
        await resync_clock()
    except Exception as exc:
        error: MonitorError = translate(exc, f"{where}: clock resync")
        if not isinstance(error, RetryableError):
            raise error from exc
