"""Volatility from public klines: real ccxt against the simulator's kline endpoints (both venues),
one read per symbol and venue shared by every account, hourly refresh, and a venue that refuses
the endpoint degrading to unknown sigmas with one warning; venue-documented payloads parsed as
they are."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.domain.errors import ExchangeDataError
from monitor.domain.margin import assess
from monitor.domain.model import Venue
from monitor.domain.volatility import DAILY_RETURNS, HOURLY_RETURNS
from monitor.exchanges import ExchangeHub, VenueClient
from monitor.exchanges.klines import KlineBook, closed_closes
from monitor.exchanges.resilience import BanBoard
from monitor.simulator.server import SimulatorServer
from tests.exchanges.cli_support import cli, write_config
from tests.exchanges.conftest import TEST_RETRY
from tests.support.simulator import account_settings, ccxt_client

KLINE_PATHS = {"binance": "/fapi/v1/klines", "bybit": "/v5/market/kline"}


@pytest.fixture
async def vol_hub() -> AsyncIterator[ExchangeHub]:
    async with ExchangeHub(
        retry=TEST_RETRY, timeout=1.0, rate_limit=False, volatility=True
    ) as opened:
        yield opened


def _client(
    sim: SimulatorServer, hub: ExchangeHub, account: str, venue: Venue, *, volatility: bool = True
) -> VenueClient:
    settings = account_settings(sim, account, venue, volatility=volatility)
    return hub.client_for(account, settings)


def _straightforward_sigma(closes: list[float]) -> float:
    returns = [math.log(closes[i] / closes[i - 1]) for i in range(1, len(closes))]
    mean = sum(returns) / len(returns)
    return math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))


async def _served_closes(
    sim: SimulatorServer, venue: Venue, symbol: str, daily: bool
) -> list[float]:
    """The closes the simulator serves for this candle, read without ccxt, oldest first."""
    returns = DAILY_RETURNS if daily else HOURLY_RETURNS
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        if venue.exchange == "binance":
            path = "/dapi/v1/klines" if venue.inverse else KLINE_PATHS["binance"]
            params = {"symbol": symbol, "interval": "1d" if daily else "1h", "limit": "40"}
            rows = (await http.get(path, params=params)).json()
        else:
            params = {
                "category": "inverse" if venue.inverse else "linear",
                "symbol": symbol,
                "interval": "D" if daily else "60",
                "limit": "40",
            }
            answer = await http.get(KLINE_PATHS["bybit"], params=params)
            rows = answer.json()["result"]["list"]
            rows.reverse()
    # The newest candle is still open: the last `returns` + 1 closed ones.
    return [float(row[4]) for row in rows[:-1][-(returns + 1) :]]


@pytest.mark.parametrize(
    ("account", "venue"),
    [
        ("bn-oneway", Venue.BINANCE_USDM),
        ("bn-oneway", Venue.BINANCE_COINM),
        ("by-cross", Venue.BYBIT_LINEAR),
        ("by-cross", Venue.BYBIT_INVERSE),
    ],
)
async def test_sigmas_match_a_straightforward_computation_on_the_served_klines(
    sim: SimulatorServer, vol_hub: ExchangeHub, account: str, venue: Venue
) -> None:
    state = await _client(sim, vol_hub, account, venue).fetch_account()
    assert state.positions
    assert {entry.symbol for entry in state.volatility} == {p.symbol for p in state.positions}
    for entry in state.volatility:
        hourly = _straightforward_sigma(await _served_closes(sim, venue, entry.symbol, False))
        daily = _straightforward_sigma(await _served_closes(sim, venue, entry.symbol, True))
        assert entry.hourly == pytest.approx(hourly, abs=1e-9)
        assert entry.daily == pytest.approx(daily, abs=1e-9)
        # Realistic sizes: a typical hour well below a typical day.
        assert entry.hourly is not None
        assert entry.daily is not None
        assert 0.001 < entry.hourly < entry.daily < 0.1
    risk = assess(state)
    assert risk.volatility is not None
    assert all(
        p.hourly is not None
        for p, r in zip(risk.volatility.positions, risk.positions, strict=True)
        if r.liquidation_price
    )
    assert not any("volatility" in text for text in state.assumptions)


async def test_one_read_per_symbol_and_venue_shared_by_every_account(
    sim: SimulatorServer, vol_hub: ExchangeHub
) -> None:
    clients = [
        _client(sim, vol_hub, "bn-oneway", Venue.BINANCE_USDM),
        _client(sim, vol_hub, "bn-hedge", Venue.BINANCE_USDM),
    ]
    states = await asyncio.gather(*(client.fetch_account() for client in clients))
    await asyncio.gather(*(client.fetch_account() for client in clients))
    symbols = {p.symbol for state in states for p in state.positions}
    reads = [r for r in sim.request_log if r.path == KLINE_PATHS["binance"]]
    asked = sorted((r.params["symbol"], r.params["interval"]) for r in reads)
    # Two polls of two accounts: each symbol's hourly and daily candles read once, at weight 1.
    assert asked == sorted((s, i) for s in symbols for i in ("1h", "1d"))
    assert {r.weight for r in reads} == {1}
    assert all(r.account is None for r in reads)


async def test_an_account_with_volatility_off_reads_no_klines(
    sim: SimulatorServer, vol_hub: ExchangeHub
) -> None:
    client = _client(sim, vol_hub, "bn-oneway", Venue.BINANCE_USDM, volatility=False)
    state = await client.fetch_account()
    assert state.positions
    assert state.volatility == ()
    assert assess(state).volatility is None
    assert not any(r.path == KLINE_PATHS["binance"] for r in sim.request_log)


async def test_klines_are_read_again_after_an_hour(sim: SimulatorServer) -> None:
    exchange = ccxt_client(sim, None, "binanceusdm")
    now = [0.0]

    async def markets() -> Any:
        await exchange.load_markets()
        return exchange

    book = KlineBook(
        markets, name="binanceusdm", ban_key="sim", bans=BanBoard(), clock=lambda: now[0]
    )
    try:
        first, _ = await book.volatility(Venue.BINANCE_USDM, ["BTCUSDT"])
        now[0] = 3599.0
        await book.volatility(Venue.BINANCE_USDM, ["BTCUSDT"])
        assert sum(r.path == KLINE_PATHS["binance"] for r in sim.request_log) == 2
        now[0] = 3600.0
        sim.advance(3600)  # the next hour's candles
        second, _ = await book.volatility(Venue.BINANCE_USDM, ["BTCUSDT"])
        assert sum(r.path == KLINE_PATHS["binance"] for r in sim.request_log) == 4
        assert second[0].hourly is not None
        assert second[0].hourly != first[0].hourly  # the walk of the next scenario hour
    finally:
        await exchange.close()


@pytest.mark.parametrize("kind", ["server_error", "auth", "malformed_json"])
async def test_a_venue_refusing_klines_leaves_sigmas_unknown_with_one_warning(
    sim: SimulatorServer, vol_hub: ExchangeHub, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    sim.inject_fault(kind, path="/fapi/v1/klines", status=503)
    client = _client(sim, vol_hub, "bn-oneway", Venue.BINANCE_USDM)
    with caplog.at_level(logging.WARNING):
        state = await client.fetch_account()
        again = await client.fetch_account()
    # The account is watched as before: positions and liquidation prices, no sigma figures.
    assert state.positions
    risk = assess(again)
    assert any(p.liquidation_price for p in risk.positions)
    assert risk.volatility is not None
    assert risk.volatility.hourly_sigma is None
    assert all(p.hourly is None and p.daily is None for p in risk.volatility.positions)
    stated = [text for text in again.assumptions if text.startswith("volatility of")]
    assert len(stated) == 1
    assert "BTCUSDT" in stated[0]
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "volatility of" in r.getMessage()
    ]
    # One warning per symbol, not one per poll; and no second request within the retry pause.
    assert len(warnings) == len({p.symbol for p in state.positions})
    # One attempt per symbol and interval (both asked at once), none again on the second poll.
    reads = [r for r in sim.request_log if r.path == "/fapi/v1/klines"]
    assert len(reads) == 2 * len({p.symbol for p in state.positions})


# Binance USDⓈ-M "Kline/Candlestick Data" response example, as documented (one candle).
BINANCE_DOCUMENTED = [
    [
        1499040000000,
        "0.01634790",
        "0.80000000",
        "0.01575800",
        "0.01577100",
        "148976.11427815",
        1499644799999,
        "2434.19055334",
        308,
        "1756.87402397",
        "28.46694368",
        "17928899.62484339",
    ]
]
# Bybit v5 "Get Kline" response example, as documented (BTCUSD inverse, hourly, newest first).
BYBIT_DOCUMENTED: dict[str, Any] = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "symbol": "BTCUSD",
        "category": "inverse",
        "list": [
            ["1670608800000", "17071", "17073", "17027", "17055.5", "268611", "15.74462667"],
            ["1670605200000", "17071.5", "17071.5", "17061", "17071", "4177", "0.24469757"],
            ["1670601600000", "17086.5", "17088", "16978", "17071.5", "6356", "0.37288112"],
        ],
    },
    "retExtInfo": {},
    "time": 1672025956592,
}


def test_documented_bybit_klines_give_the_closed_closes_oldest_first(sim: SimulatorServer) -> None:
    exchange = ccxt_client(sim, None, "bybit")
    rows = exchange.parse_ohlcvs(BYBIT_DOCUMENTED["result"]["list"], None, "1h")
    # The newest candle (17055.5, still open when the example was taken) is not a close yet.
    assert closed_closes(rows, 1, "example") == [17071.5, 17071.0]
    with pytest.raises(ExchangeDataError, match="2 closed candles, 3 needed"):
        closed_closes(rows, 2, "example")


def test_documented_binance_kline_alone_is_too_few_for_a_sigma(sim: SimulatorServer) -> None:
    exchange = ccxt_client(sim, None, "binanceusdm")
    rows = exchange.parse_ohlcvs(BINANCE_DOCUMENTED, None, "1h")
    assert rows[0][4] == pytest.approx(0.015771)
    with pytest.raises(ExchangeDataError, match="0 closed candles, 25 needed"):
        closed_closes(rows, HOURLY_RETURNS, "example")


async def test_show_prints_the_sigma_figures(sim: SimulatorServer, tmp_path: Path) -> None:
    config = write_config(
        sim,
        tmp_path / "config.toml",
        [
            ("main", "bn-oneway", "binance-usdm", "USDT"),
            ("bybit", "by-cross", "bybit-linear", "USDT"),
        ],
    )
    code, out, err = await cli("show", "--config", str(config), "--format", "json")
    assert code == 0, err
    for account in json.loads(out):
        volatility = account["risk"]["volatility"]
        assert volatility["hourly_sigma"] > 0
        assert set(account["state"]["volatility"]) == {
            p["symbol"] for p in account["state"]["positions"]
        }
    code, out, err = await cli(
        "show", "--config", str(config), "--account", "main", "--format", "table"
    )
    assert code == 0, err
    assert "in sigmas of recent moves" in out
    assert "BTCUSDT long" in out


async def test_a_venue_hanging_on_klines_does_not_hold_up_the_account(
    sim: SimulatorServer, vol_hub: ExchangeHub
) -> None:
    sim.inject_fault("timeout", path="/fapi/v1/klines", delay=30)
    client = _client(sim, vol_hub, "bn-oneway", Venue.BINANCE_USDM)
    started = asyncio.get_running_loop().time()
    state = await client.fetch_account()
    # Within the hub's kline deadline (its 1 s request timeout here), not the 30 s hang.
    assert asyncio.get_running_loop().time() - started < 5
    assert state.positions
    assert any(text.startswith("volatility of") for text in state.assumptions)
    assert all(entry.hourly is None for entry in state.volatility)
