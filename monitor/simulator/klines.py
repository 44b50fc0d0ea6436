"""Public klines of both venues: Binance `GET /fapi/v1/klines` and `/dapi/v1/klines`, Bybit
`GET /v5/market/kline`, in the shapes their documentation shows.

The candles are a reproducible random walk (per symbol, interval and scenario candle) that ends at
the instrument's mark: the newest candle is the one still open, as on the venues. Typical moves
are `HOURLY_MOVE` per hour and `DAILY_MOVE` per day, so the sigmas a client computes are of
realistic size; tests compare them with their own computation on the same candles.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from monitor.domain.model import Venue
from monitor.simulator.protocol import Call, binance_error, bybit_error, decimals_of, fmt
from monitor.simulator.scenario import Instrument

HOURLY_MOVE = 0.006
DAILY_MOVE = 0.03
_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS
# interval parameter -> (candle length in ms, typical log move per candle)
_BINANCE_INTERVALS = {"1h": (_HOUR_MS, HOURLY_MOVE), "1d": (_DAY_MS, DAILY_MOVE)}
_BYBIT_INTERVALS = {"60": (_HOUR_MS, HOURLY_MOVE), "D": (_DAY_MS, DAILY_MOVE)}


def binance_weight(params: Mapping[str, str]) -> int:
    """Binance's documented kline weight by `limit` (default 500)."""
    try:
        limit = int(params.get("limit", "500"))
    except ValueError:
        return 1
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    return 5 if limit <= 1000 else 10


def binance(call: Call, venue: Venue) -> list[list[Any]]:
    """`/fapi/v1/klines` / `/dapi/v1/klines`: oldest first, 12 columns per candle."""
    symbol = call.params.get("symbol") or call.params.get("pair")
    instrument = next((i for i in call.market.instruments(venue) if i.symbol == symbol), None)
    if instrument is None:
        raise binance_error(400, -1121, "Invalid symbol.")
    interval = _BINANCE_INTERVALS.get(call.params.get("interval", ""))
    if interval is None:
        raise binance_error(400, -1120, "Invalid interval.")
    limit = _limit(call.params.get("limit"), 500, 1500)
    if limit is None:
        raise binance_error(400, -1130, "Data sent for parameter 'limit' is not valid.")
    decimals = decimals_of(instrument.tick_size)
    rows = []
    for start, open_, high, low, close in _candles(call, instrument, *interval, limit):
        rows.append(
            [
                start,
                fmt(open_, decimals),
                fmt(high, decimals),
                fmt(low, decimals),
                fmt(close, decimals),
                "1000.000",
                start + interval[0] - 1,
                fmt(1000 * close, 5),
                100,
                "500.000",
                fmt(500 * close, 5),
                "0",
            ]
        )
    return rows


def bybit(call: Call) -> dict[str, Any]:
    """`/v5/market/kline`: the result object, candles newest first, 7 string columns each."""
    category = call.params.get("category", "linear")
    venues = {"linear": Venue.BYBIT_LINEAR, "inverse": Venue.BYBIT_INVERSE}
    venue = venues.get(category)
    symbol = call.params.get("symbol")
    instrument = None
    if venue is not None:
        instrument = next((i for i in call.market.instruments(venue) if i.symbol == symbol), None)
    if instrument is None:
        raise bybit_error(10001, "params error: symbol invalid", now_ms=call.server_ms)
    interval = _BYBIT_INTERVALS.get(call.params.get("interval", ""))
    limit = _limit(call.params.get("limit"), 200, 1000)
    if interval is None or limit is None:
        raise bybit_error(10001, "params error", now_ms=call.server_ms)
    decimals = decimals_of(instrument.tick_size)
    rows = [
        [
            str(start),
            fmt(open_, decimals),
            fmt(high, decimals),
            fmt(low, decimals),
            fmt(close, decimals),
            "1000",
            fmt(1000 * close, 4),
        ]
        for start, open_, high, low, close in _candles(call, instrument, *interval, limit)
    ]
    rows.reverse()
    return {"symbol": instrument.symbol, "category": category, "list": rows}


def _limit(raw: str | None, default: int, maximum: int) -> int | None:
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        return None
    return limit if 1 <= limit <= maximum else None


def _candles(
    call: Call, instrument: Instrument, length: int, move: float, limit: int
) -> list[tuple[int, float, float, float, float]]:
    """(open time, open, high, low, close) oldest first; the last one is open and closes at the mark."""
    current = call.server_ms // length * length
    # Seeded by the scenario's candle (its clock, not the wall's): a manual clock serves the
    # same candles until it is advanced past a candle boundary.
    candle = int(call.elapsed * 1000) // length
    generator = random.Random(f"{instrument.venue}/{instrument.symbol}/{length}/{candle}")
    closes = [call.mark(instrument)]
    for _ in range(limit):
        closes.append(closes[-1] / math.exp(generator.gauss(0.0, move)))
    closes.reverse()  # closes[0] is the open of the oldest candle served
    candles = []
    for index in range(limit):
        open_, close = closes[index], closes[index + 1]
        wick = 1.0 + move / 4
        start = current - (limit - 1 - index) * length
        candles.append((start, open_, max(open_, close) * wick, min(open_, close) / wick, close))
    return candles
