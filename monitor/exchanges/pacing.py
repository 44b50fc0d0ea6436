"""Request pacing that sleeps until a request's slot instead of polling for it, and the HTTP
session every ccxt instance of one event loop shares.

ccxt's own throttler wakes the event loop every millisecond while any request waits for its
turn (a 1 ms `asyncio.sleep` loop per bucket); with a few hundred accounts queued behind one
address's weight limit that spin cost 2.7 times the CPU of an unpaced cycle. A `Pacer` keeps the
same leaky bucket (same rate, same burst, same per-request costs) but works out, when a request
asks, the moment it may go, and sleeps once until then."""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import certifi

# Clock arithmetic leaves a bucket that is due at 0 a hair below it; a timer may also fire a
# hair early. Neither should cost another wake-up.
_EPSILON = 1e-6


class Pacer:
    """A leaky bucket of `burst` units refilled at `per_second` units per second, shared by every
    request that counts against one limit. A request of cost c may start once the bucket holds
    at least 0 units, and takes c; requests start in the order they asked. While any wait, one
    task sleeps until the first one's slot (one wake-up per request, not one per millisecond);
    a request cancelled while it waits (its poll hit its deadline) takes nothing from the
    bucket, so a backlog cannot eat the budget of the requests behind it."""

    def __init__(
        self,
        per_second: float,
        *,
        burst: float = 1.0,
        default_cost: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self._rate = per_second
        self._burst = burst
        self._default_cost = default_cost
        self._clock = clock
        self._tokens = burst
        self._at = clock()
        self._waiting: collections.deque[tuple[asyncio.Future[None], float]] = collections.deque()
        self._releaser: asyncio.Task[None] | None = None
        # ccxt's `open()` stores the instance's event loop here; the pacer needs none.
        self.loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_bucket(cls, bucket: Mapping[str, Any]) -> Pacer:
        """The pacer of a ccxt `tokenBucket` (refill rate per millisecond, capacity, cost)."""
        return cls(
            float(bucket["refillRate"]) * 1000.0,
            burst=float(bucket.get("capacity", 1.0)),
            default_cost=float(bucket.get("cost", 1.0)),
        )

    @property
    def per_second(self) -> float:
        """Units the bucket refills per second: the sustained rate of the limit."""
        return self._rate

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        return self._tokens

    def try_take(self, cost: float | None = None) -> bool:
        """Take `cost` units now if no request waits and the bucket is not negative."""
        spend = self._default_cost if cost is None else float(cost)
        if self._waiting or self._refill() < -_EPSILON:
            return False
        self._tokens -= spend
        return True

    async def __call__(self, cost: float | None = None) -> None:
        """Wait for the request's slot (ccxt calls `await exchange.throttler(cost)`)."""
        spend = self._default_cost if cost is None else float(cost)
        if self.try_take(spend):
            return
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((slot, spend))
        if self._releaser is None or self._releaser.done():
            self._releaser = asyncio.create_task(self._release())
        await slot

    async def _release(self) -> None:
        while self._waiting:
            slot, spend = self._waiting[0]
            if slot.done():  # cancelled while waiting: it takes nothing
                self._waiting.popleft()
                continue
            tokens = self._refill()
            if tokens < -_EPSILON:
                await asyncio.sleep(-tokens / self._rate)
                continue
            self._tokens -= spend
            self._waiting.popleft()
            slot.set_result(None)


class PacerChain:
    """A request that counts against two limits: its own bucket (at ccxt's cost), then the
    address's (one request each), e.g. Bybit's per-key and per-IP limits."""

    def __init__(self, own: Pacer, address: Pacer) -> None:
        self.own = own
        self.address = address
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, cost: float | None = None) -> None:
        """Wait for the request's slot in both buckets."""
        await self.own(cost)
        await self.address(1.0)


CONNECTIONS = 100


class SharedSessions:
    """One aiohttp session (one connection pool, one TLS context) per event loop for every ccxt
    instance, instead of ccxt's own session and certificate store per instance (about 1 MiB and
    2 file descriptors per API key). ccxt leaves a session it was given open when an instance
    closes (`own_session` is False); `aclose` closes them."""

    def __init__(self) -> None:
        self._ssl: ssl.SSLContext | None = None
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context every instance shares: the CA bundle ccxt would load per instance."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=certifi.where())
        return self._ssl

    def config(self) -> dict[str, Any]:
        """What to add to a ccxt constructor's config so the instance uses the running loop's
        shared session; empty outside a running loop (the instance then opens its own)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return {}
        session = self._sessions.get(loop)
        if session is None or session.closed:
            # At most 100 connections (aiohttp's default) for all accounts: the venues allow
            # about 8 (Binance, 2,400 weight a minute) to 120 (Bybit) requests per second per
            # address, which 100 connections carry at any realistic latency; an idle pool keeps
            # its sockets open, so the cap is also the file descriptors the pool can hold.
            connector = aiohttp.TCPConnector(
                ssl=self.ssl_context,
                limit=CONNECTIONS,
                family=socket.AF_UNSPEC,
                happy_eyeballs_delay=0,
            )
            session = aiohttp.ClientSession(connector=connector)
            self._sessions[loop] = session
        return {"session": session, "ssl_context": self.ssl_context}

    async def aclose(self) -> None:
        """Close the running loop's session (a session of another, finished loop is dropped)."""
        loop = asyncio.get_running_loop()
        sessions, self._sessions = self._sessions, {}
        for owner, session in sessions.items():
            if owner is loop:
                await session.close()
