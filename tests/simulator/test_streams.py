"""Real ccxt.pro over loopback against the simulator's websocket side: Binance mark price streams
(USDⓈ-M per symbol and all-market, COIN-M) and Bybit v5 tickers (linear, inverse), with the
production websocket URLs rewritten to the simulator (scheme, host and port only)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import ccxt.pro
import pytest

from monitor.exchanges.urls import rewrite_api_urls, rewrite_ws_urls
from monitor.simulator import SimulatorServer


def _pro(sim: SimulatorServer, cls: type[Any]) -> Any:
    exchange = cls({"options": {"fetchCurrencies": False}})
    api = exchange.urls["api"]
    exchange.urls = {
        **exchange.urls,
        "api": {
            **rewrite_api_urls({k: v for k, v in api.items() if k != "ws"}, sim.base_url),
            "ws": rewrite_ws_urls(api["ws"], sim.base_url),
        },
    }
    return exchange


async def _marks(exchange: Any, call: Any, want: set[str], within: float = 5.0) -> dict[str, float]:
    seen: dict[str, float] = {}
    async with asyncio.timeout(within):
        while not want <= set(seen):
            await call()
            # ccxt resolves a waiting call with the first update only; the others that came in
            # the same read are in its ticker cache.
            for symbol, ticker in exchange.tickers.items():
                seen[symbol] = float(ticker["markPrice"])
    return seen


async def test_binance_usdm_mark_streams_follow_a_pinned_price(simulator: SimulatorServer) -> None:
    exchange = _pro(simulator, ccxt.pro.binanceusdm)
    try:
        symbols = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
        marks = await _marks(exchange, lambda: exchange.watch_mark_prices(symbols), set(symbols))
        assert marks == {"BTC/USDT:USDT": 60000.0, "ETH/USDT:USDT": 3000.0}
        url = next(iter(exchange.clients))
        assert url.startswith(simulator.base_url.replace("http://", "ws://") + "/market/ws/")
        simulator.set_price("BTC", 55000.0)
        async with asyncio.timeout(3):
            while exchange.tickers["BTC/USDT:USDT"]["markPrice"] != 55000.0:
                await exchange.watch_mark_prices(symbols)
        everything = await _marks(
            exchange, exchange.watch_mark_prices, {"BNB/USDT:USDT", "BTC/USDC:USDC"}
        )
        assert everything["BTC/USDC:USDC"] == 55000.0
    finally:
        await exchange.close()


async def test_binance_coinm_mark_stream(simulator: SimulatorServer) -> None:
    exchange = _pro(simulator, ccxt.pro.binancecoinm)
    try:
        marks = await _marks(
            exchange, lambda: exchange.watch_mark_prices(["BTC/USD:BTC"]), {"BTC/USD:BTC"}
        )
        assert marks["BTC/USD:BTC"] == 60000.0
    finally:
        await exchange.close()


@pytest.mark.parametrize(
    ("symbol", "path"),
    [("BTC/USDT:USDT", "/v5/public/linear"), ("BTC/USD:BTC", "/v5/public/inverse")],
)
async def test_bybit_tickers_snapshot_then_deltas(
    simulator: SimulatorServer, symbol: str, path: str
) -> None:
    exchange = _pro(simulator, ccxt.pro.bybit)
    exchange.options["fetchMarkets"] = {"types": ["linear", "inverse"]}
    try:
        marks = await _marks(exchange, lambda: exchange.watch_tickers([symbol]), {symbol})
        assert marks[symbol] == 60000.0
        assert any(url.endswith(path) for url in exchange.clients)
        simulator.set_price("BTC", 58000.0)
        async with asyncio.timeout(3):
            while exchange.tickers[symbol]["markPrice"] != 58000.0:
                await exchange.watch_tickers([symbol])
    finally:
        await exchange.close()


async def test_bybit_messages_follow_the_documented_shapes(simulator: SimulatorServer) -> None:
    url = simulator.base_url.replace("http://", "ws://") + "/v5/public/linear"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as socket:
        await socket.send_json({"op": "subscribe", "req_id": "1", "args": ["tickers.NOPEUSDT"]})
        refused = json.loads((await socket.receive()).data)
        assert refused["success"] is False
        assert refused["op"] == "subscribe"
        await socket.send_json({"op": "subscribe", "req_id": "2", "args": ["tickers.BTCUSDT"]})
        ack = json.loads((await socket.receive()).data)
        assert ack["success"] is True
        assert ack["req_id"] == "2"
        snapshot = json.loads((await socket.receive()).data)
        assert snapshot["type"] == "snapshot"
        assert snapshot["topic"] == "tickers.BTCUSDT"
        assert {"markPrice", "indexPrice", "lastPrice", "fundingRate"} <= set(snapshot["data"])
        delta = json.loads((await asyncio.wait_for(socket.receive(), 3)).data)
        assert delta["type"] == "delta"
        assert delta["data"]["symbol"] == "BTCUSDT"
        assert "fundingRate" not in delta["data"]  # unchanged fields are left out
        await socket.send_json({"op": "ping", "req_id": "3"})
        async with asyncio.timeout(3):
            while (message := json.loads((await socket.receive()).data)).get("op") != "ping":
                pass
        assert message["ret_msg"] == "pong"


async def test_streams_off_drops_and_refuses_connections(simulator: SimulatorServer) -> None:
    exchange = _pro(simulator, ccxt.pro.binanceusdm)
    try:
        await exchange.watch_mark_prices(["BTC/USDT:USDT"])
        await simulator.streams.set_mode("off")

        async def until_dropped() -> None:
            async with asyncio.timeout(5):
                while True:
                    await exchange.watch_mark_prices(["BTC/USDT:USDT"])

        with pytest.raises(ccxt.NetworkError):
            await until_dropped()
        with pytest.raises(ccxt.NetworkError):
            await exchange.watch_mark_prices(["BTC/USDT:USDT"])
        await simulator.streams.set_mode("on")
        marks = await _marks(
            exchange, lambda: exchange.watch_mark_prices(["BTC/USDT:USDT"]), {"BTC/USDT:USDT"}
        )
        assert marks["BTC/USDT:USDT"] == 60000.0
    finally:
        await exchange.close()
