"""Public mark streams over ccxt.pro: one websocket connection set per venue and address, shared
by every account there, subscribed to exactly the symbols those accounts hold.

Binance USDⓈ-M / COIN-M: `watch_mark_prices` (`<symbol>@markPrice@1s`). Bybit linear / inverse:
`watch_tickers` (`tickers.<SYMBOL>`, whose snapshot and deltas carry the mark). A stream that
closes, refuses or sends nothing for `heartbeat` seconds is reported down and reconnected with
back-off (never a busy loop); the accounts on it fall back to polling meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.domain.errors import MonitorError, RetryableError
from monitor.domain.model import Venue
from monitor.exchanges.errors import translate
from monitor.ports import MarkListener, MarkUpdate
from monitor.retry import RetryPolicy

log = logging.getLogger(__name__)

# Reconnect back-off: 1 s, 2 s, 4 s ... at most 30 s between attempts.
RECONNECT = RetryPolicy(initial=timedelta(seconds=1), maximum=timedelta(seconds=30))


class VenueMarkStream:
    """The mark stream of one venue at one address (a `MarkStream`).

    `exchange` is a key-less ccxt.pro instance pointed at the venue (its websocket URLs already
    rewritten for a local `base_url`); `markets` returns an instance holding the venue's market
    list (the one the REST clients share), so the stream costs no extra market download.
    """

    def __init__(
        self,
        key: str,
        venue: Venue,
        exchange: Any,
        markets: Callable[[], Awaitable[Any]],
        *,
        heartbeat: float = 10.0,
        reconnect: RetryPolicy = RECONNECT,
    ) -> None:
        self._key = key
        self._venue = venue
        self._exchange = exchange
        self._markets = markets
        self._heartbeat = heartbeat
        self._reconnect = reconnect
        self._wanted: frozenset[str] = frozenset()
        self._changed = asyncio.Event()
        self._subscribed: frozenset[str] = frozenset()
        # Venue time of the last mark passed on per symbol (ccxt keeps every ticker it saw).
        self._seen: dict[str, int] = {}

    @property
    def key(self) -> str:
        """Venue and address this stream serves."""
        return self._key

    def follow(self, symbols: frozenset[str]) -> None:
        """Subscribe to exactly `symbols` (venue ids) from now on."""
        if symbols != self._wanted:
            self._wanted = symbols
            self._changed.set()

    async def close(self) -> None:
        """Close the websocket connections."""
        with contextlib.suppress(Exception):
            await self._exchange.close()

    async def run(self, listener: MarkListener) -> None:
        """Stream until cancelled, reporting marks and health to `listener`."""
        failures = 0
        up = False
        while True:
            if not self._wanted:
                if self._subscribed:
                    await self._drop()
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                got = await self._next(listener)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is translated below
                error = exc if isinstance(exc, MonitorError) else translate(exc, self._where)
                failures += 1
                if up or failures == 1:
                    listener.health(self._key, False, str(error))
                up = False
                await self._drop()
                await asyncio.sleep(self._reconnect.delay(failures).total_seconds())
                continue
            if got and not up:
                up = True
                failures = 0
                listener.health(self._key, True, "streaming")

    @property
    def _where(self) -> str:
        return f"{self._venue.value} mark stream"

    async def _next(self, listener: MarkListener) -> bool:
        """Wait for the next update (or a change of symbols); True when marks came."""
        wanted = self._wanted
        if wanted != self._subscribed:
            await self._resubscribe(wanted)
        self._changed.clear()
        listed = self._unified(wanted)
        if not listed:
            self._changed.clear()
            await self._changed.wait()  # nothing to stream until the holdings change
            return False
        watch = asyncio.ensure_future(self._watch(listed))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            done, _ = await asyncio.wait(
                {watch, changed}, timeout=self._heartbeat, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            changed.cancel()
        if watch not in done:
            # Closing the connection ends the pending watch with an error; it is not awaited
            # again, so cancel it rather than leave it to the next call.
            watch.cancel()
            with contextlib.suppress(BaseException):
                await watch
            if changed in done:
                return False
            raise RetryableError(f"{self._where}: no message for {self._heartbeat:g}s")
        watch.result()
        updates = self._fresh(wanted)
        if updates:
            listener.marks(self._key, updates)
        return True

    async def _watch(self, symbols: list[str]) -> Any:
        if self._venue.exchange == "binance":
            return await self._exchange.watch_mark_prices(symbols)
        return await self._exchange.watch_tickers(symbols)

    async def _resubscribe(self, wanted: frozenset[str]) -> None:
        """Bring the exchange's market list in, and drop the subscriptions no longer wanted."""
        source = await self._markets()
        if self._exchange.markets is not source.markets:
            # References, not copies: the REST clients' hourly re-read reaches the stream too.
            self._exchange.set_markets_from_exchange(source)
        if self._subscribed:
            # ccxt opens another connection for a changed symbol list (Binance: another stream
            # index) and unsubscribing is venue-specific: a fresh connection subscribes exactly
            # the wanted set, and holdings change rarely.
            await self._drop()
        unknown = sorted(s for s in wanted if s not in self._exchange.markets_by_id)
        if unknown:
            # One odd symbol must not take the marks of every other account away: it gets no
            # mark (its accounts are polled) and the rest stream.
            log.warning(
                "%s: the venue lists no market %s; its accounts are polled",
                self._where,
                ", ".join(unknown),
            )
        self._subscribed = wanted

    async def _drop(self) -> None:
        with contextlib.suppress(Exception):
            await self._exchange.close()
        self._exchange.clients = {}
        self._subscribed = frozenset()

    def _unified(self, ids: frozenset[str]) -> list[str]:
        symbols = []
        for market_id in sorted(ids):
            markets = self._exchange.markets_by_id.get(market_id)
            if not markets:
                continue
            market = next((m for m in markets if m.get("contract")), markets[0])
            symbols.append(market["symbol"])
        return symbols

    def _fresh(self, wanted: frozenset[str]) -> list[MarkUpdate]:
        """Marks ccxt holds for the wanted symbols that are newer than the ones passed on (one
        read may bring several symbols; ccxt answers the waiting call with one of them)."""
        updates = []
        for ticker in list(self._exchange.tickers.values()):
            info = ticker.get("info") or {}
            market_id = info.get("s") or info.get("symbol")
            stamp = ticker.get("timestamp")
            price = ticker.get("markPrice")
            if market_id not in wanted or stamp is None or price is None:
                continue
            if self._seen.get(market_id, -1) >= stamp:
                continue
            self._seen[market_id] = stamp
            updates.append(
                MarkUpdate(
                    symbol=market_id,
                    price=float(price),
                    at=datetime.fromtimestamp(stamp / 1000, UTC),
                )
            )
        return updates
