"""Realised volatility from the venue's public klines, read once an hour per symbol and venue and
shared by every account on that venue and address.

Requests (public, unsigned), each made through ccxt's `fetch_ohlcv` on the venue's key-less
instance that also holds the shared market list:
- Binance USDⓈ-M `GET /fapi/v1/klines`, COIN-M `GET /dapi/v1/klines`: weight by `limit`
  ([1,100) 1, [100,500) 2, [500,1000] 5, above 10); we ask 26 hourly and 32 daily candles, weight
  1 each, counted against the per-IP weight the accounts on that address share.
- Bybit `GET /v5/market/kline` (`category` linear/inverse): public, counted against the per-IP
  limit of 600 requests per 5 s shared by everything on api.bybit.com.
So a symbol costs two requests an hour on its venue, however many accounts hold it.

The venue's newest candle is the one still open (both venues return it first / last without a
time range), so it is dropped: the sigma describes closed hours and days only.

Volatility is optional data: a venue that refuses the endpoint, bans the address or sends too few
candles leaves the symbol's sigma unknown, with one warning and a stated assumption on the
account, and never fails the account's fetch; a venue that hangs holds it up at most
`KLINE_DEADLINE_SECONDS` (both intervals are asked at once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from monitor.domain.errors import ExchangeDataError, InvalidInput, MonitorError
from monitor.domain.model import Venue
from monitor.domain.volatility import Horizon, SymbolVolatility, realised_sigma
from monitor.exchanges.base import all_of
from monitor.exchanges.resilience import FETCH_RETRY, BanBoard, call

log = logging.getLogger(__name__)

# How often a symbol's klines are read again: a sigma of the last day of hours changes slowly.
KLINE_REFRESH_SECONDS = 3600.0
# After a failed read: asked again this much later, not every poll (a venue that refuses the
# endpoint would otherwise cost every poll a failed request).
KLINE_RETRY_SECONDS = 300.0
# A sigma read before a failure is kept this long (a few hours of a 24 h / 30 d window barely
# move it); older, it becomes unknown.
KLINE_KEEP_SECONDS = 3 * KLINE_REFRESH_SECONDS
# One attempt and no waiting out a ban: optional data must not eat the account's fetch deadline.
KLINE_POLICY = replace(FETCH_RETRY, attempts=1, max_wait=timedelta(0))
# The longest a symbol's kline read may hold up an account's fetch (the fetch itself is abandoned
# after its poll interval, at least 10 s): a venue that hangs on klines must not blind accounts.
KLINE_DEADLINE_SECONDS = 5.0

_TIMEFRAMES = {Horizon.HOURLY: "1h", Horizon.DAILY: "1d"}


def closed_closes(ohlcv: Sequence[Sequence[Any]], returns: int, where: str) -> list[float]:
    """The closes of the last `returns` + 1 closed candles, oldest first, from ccxt's OHLCV rows
    ([open time ms, open, high, low, close, volume], oldest first, newest still open).

    Raises ExchangeDataError when the venue sent fewer closed candles than that (a new listing).
    """
    candles = []
    for index, row in enumerate(ohlcv):
        try:
            candles.append((float(row[0]), float(row[4])))
        except (TypeError, ValueError, IndexError):
            # A truncated or garbled body parses into rows of None.
            raise ExchangeDataError(
                f"{where}[{index}]: no open time and close in {row!r}"
            ) from None
    candles.sort()
    closed = [close for _, close in candles[:-1]]
    wanted = returns + 1
    if len(closed) < wanted:
        raise ExchangeDataError(
            f"{where}: {len(closed)} closed candles, {wanted} needed for {returns} returns"
        )
    return closed[-wanted:]


@dataclass(slots=True)
class _Reading:
    """What is known about one symbol: the sigmas, when they were read, and why not, if not."""

    value: SymbolVolatility
    read_at: float
    retry_at: float
    problem: str | None = None


class KlineBook:
    """The realised volatility of the symbols on one venue and address, shared by its accounts.

    `markets` returns the key-less ccxt instance holding the venue's market list (the hub's);
    `ban_key` and `bans` make the requests honour and record the address's ban windows.
    """

    def __init__(
        self,
        markets: Callable[[], Awaitable[Any]],
        *,
        name: str,
        ban_key: str,
        bans: BanBoard,
        refresh: float = KLINE_REFRESH_SECONDS,
        deadline: float = KLINE_DEADLINE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._markets = markets
        self._name = name
        self._ban_key = ban_key
        self._bans = bans
        self._refresh = refresh
        self._retry = min(KLINE_RETRY_SECONDS, refresh)
        self._keep = max(KLINE_KEEP_SECONDS, refresh)
        self._deadline = deadline
        self._clock = clock
        self._readings: dict[tuple[Venue, str], _Reading] = {}
        self._locks: dict[tuple[Venue, str], asyncio.Lock] = {}

    async def volatility(
        self, venue: Venue, symbols: Iterable[str]
    ) -> tuple[tuple[SymbolVolatility, ...], tuple[str, ...]]:
        """The sigmas of `symbols` (venue symbol ids) and, for those left unknown, one assumption
        sentence to show with the account's figures. Never raises for a venue's refusal."""
        wanted = sorted(set(symbols))
        now = self._clock()
        readings = [r for symbol in wanted if (r := self._fresh((venue, symbol), now)) is not None]
        if len(readings) < len(wanted):
            # Only then a task per symbol: every full fetch of every account asks, and nearly
            # always every sigma is still fresh.
            readings = await asyncio.gather(*(self._reading(venue, symbol) for symbol in wanted))
        problems = sorted({r.problem for r in readings if r.problem is not None})
        unknown = [r.value.symbol for r in readings if r.problem is not None]
        assumptions: tuple[str, ...] = ()
        if unknown:
            assumptions = (
                f"volatility of {', '.join(unknown)} unknown, no sigma figures for it: "
                + "; ".join(problems),
            )
        return tuple(r.value for r in readings), assumptions

    async def _reading(self, venue: Venue, symbol: str) -> _Reading:
        key = (venue, symbol)
        # One request per symbol and venue: accounts asking at once wait for the first one's read.
        async with self._locks.setdefault(key, asyncio.Lock()):
            now = self._clock()
            fresh = self._fresh(key, now)
            if fresh is not None:
                return fresh
            reading = self._readings.get(key)
            try:
                value = await asyncio.wait_for(self._read(venue, symbol), self._deadline)
            except MonitorError as exc:
                reading = self._failed(key, reading, now, str(exc))
            except TimeoutError:
                problem = f"{self._name}: no kline answer for {symbol} within {self._deadline:g} s"
                reading = self._failed(key, reading, now, problem)
            else:
                if reading is not None and reading.problem is not None:
                    log.info("%s: klines of %s readable again", self._name, symbol)
                reading = _Reading(value, now, now + self._refresh)
            self._readings[key] = reading
            return reading

    def _fresh(self, key: tuple[Venue, str], now: float) -> _Reading | None:
        """The reading of `key`, if one is kept and not yet due to be read again."""
        reading = self._readings.get(key)
        return reading if reading is not None and now < reading.retry_at else None

    def _failed(
        self, key: tuple[Venue, str], before: _Reading | None, now: float, problem: str
    ) -> _Reading:
        symbol = key[1]
        if before is not None and before.problem is None and now - before.read_at < self._keep:
            # A sigma of an hour or two ago still describes the last day; keep it, try later.
            log.warning(
                "%s: klines of %s not refreshed (kept the last read): %s",
                self._name,
                symbol,
                problem,
            )
            return _Reading(before.value, before.read_at, now + self._retry)
        if before is None or before.problem != problem:
            log.warning(
                "%s: volatility of %s unknown (no sigma figures for it): %s",
                self._name,
                symbol,
                problem,
            )
        return _Reading(SymbolVolatility(symbol), now, now + self._retry, problem)

    async def _read(self, venue: Venue, symbol: str) -> SymbolVolatility:
        exchange = await self._markets()
        market = _market(exchange, venue, symbol)
        # The first failure cancels the other request (no orphan left running).
        hourly, daily = await all_of(
            self._sigma(exchange, market, symbol, Horizon.HOURLY),
            self._sigma(exchange, market, symbol, Horizon.DAILY),
        )
        return SymbolVolatility(symbol, hourly, daily)

    async def _sigma(
        self, exchange: Any, market: Mapping[str, Any], symbol: str, horizon: Horizon
    ) -> float:
        timeframe = _TIMEFRAMES[horizon]
        where = f"{self._name}: {symbol} {timeframe} klines"

        async def fetch() -> Any:
            return await exchange.fetch_ohlcv(
                market["symbol"], timeframe, limit=horizon.returns + 2
            )

        rows = await call(
            fetch,
            where=where,
            ban_key=self._ban_key,
            bans=self._bans,
            policy=KLINE_POLICY,
            resync_clock=_no_resync,
        )
        if not isinstance(rows, list):
            raise ExchangeDataError(f"{where}: not a list of candles")
        try:
            return realised_sigma(closed_closes(rows, horizon.returns, where))
        except InvalidInput as error:
            raise ExchangeDataError(f"{where}: {error.problem}") from None


def _market(exchange: Any, venue: Venue, symbol: str) -> Mapping[str, Any]:
    """ccxt's market of the venue's symbol id on this venue's contract type (Bybit lists BTCUSDT
    as linear and, with other categories loaded, as spot too)."""
    kind = "inverse" if venue.inverse else "linear"
    for market in (exchange.markets_by_id or {}).get(symbol, ()):
        if market.get(kind):
            found: Mapping[str, Any] = market
            return found
    raise ExchangeDataError(f"{symbol!r} is not a listed {kind} market")


async def _no_resync() -> None:
    """Klines are public: unsigned, so no clock to resync."""
