"""Retry budget, back-off and ban windows for the requests of one fetch.

A venue that answers 418/429 with Retry-After gets no request from us (from any account on the
same venue and address) until the window ends; transient failures are retried a few times within
one fetch, and a timestamp error resynchronises the clock before the retry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from monitor.domain.errors import ExchangeUnavailable, MonitorError, VenuePaused
from monitor.exchanges.errors import (
    DEFAULT_BAN_SECONDS,
    is_account_limit,
    is_clock_skew,
    is_throttled,
    retry_after_of,
    translate,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard one fetch tries: `attempts` per request, exponential back-off from `base_delay`
    capped at `max_delay`, and the longest venue-requested wait (`max_wait`) we sit out inside a
    fetch rather than failing it with `retry_after` for the caller."""

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 4.0
    max_wait: float = 5.0

    def delay(self, attempt: int) -> float:
        """Back-off before retry number `attempt` (1 = first retry)."""
        return float(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


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
        if banned_for > policy.max_wait:
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
        if not error.retryable or attempt >= policy.attempts:
            if scope == ban_key and bans.remaining(ban_key) > policy.max_wait:
                raise bans.paused(ban_key, str(error)) from failure
            raise error from failure
        if not is_throttled(failure):
            await asyncio.sleep(policy.delay(attempt))


async def _resync(resync_clock: Callable[[], Awaitable[object]], where: str) -> None:
    try:
        await resync_clock()
    except Exception as exc:
        error: MonitorError = translate(exc, f"{where}: clock resync")
        if not error.retryable:
            raise error from exc
