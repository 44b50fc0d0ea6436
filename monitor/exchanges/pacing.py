"""Request pacing that sleeps until a request's slot instead of polling for it, and the HTTP
session every ccxt instance of one event loop shares.

ccxt's own throttler wakes the event loop every millisecond while any request waits for its
turn (a 1 ms `asyncio.sleep` loop per bucket); with a few hundred accounts queued behind one
address's weight limit that spin cost 2.7 times the CPU of an unpaced cycle. A `Pacer` keeps the
same leaky bucket (same rate, same burst, same per-request costs) but works out, when a request
asks, the moment it may go, and sleeps once until then."""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import certifi


class Pacer:
    """A leaky bucket of `burst` units refilled at `per_second` units per second, shared by every
    request that counts against one limit. A request of cost c may start once the bucket holds
    at least 0 units, and takes c; its start time is fixed when it asks (first come, first
    served), so each waiting request sleeps exactly once."""

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
        self._unit = 1.0 / per_second
        self._burst = burst
        self._default_cost = default_cost
        self._clock = clock
        # The moment the bucket, after every request granted so far, is back at 0 units.
        self._free = -math.inf
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
        return 1.0 / self._unit

    def reserve(self, cost: float | None = None) -> float:
        """Take the next slot for a request of `cost` units: seconds until it may start."""
        spend = self._default_cost if cost is None else float(cost)
        now = self._clock()
        start = max(now, self._free)
        held = min(self._burst, (start - self._free) / self._unit)
        self._free = start + (spend - held) * self._unit
        return start - now

    async def __call__(self, cost: float | None = None) -> None:
        """Wait for the request's slot (ccxt calls `await exchange.throttler(cost)`)."""
        delay = self.reserve(cost)
        if delay > 0:
            await asyncio.sleep(delay)


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
