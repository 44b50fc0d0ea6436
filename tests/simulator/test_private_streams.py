"""Real ccxt.pro over loopback against the simulator's private websockets: Binance's user-data
stream (listenKey created, kept alive, closed, expired) and Bybit v5's private `position` and
`wallet` topics, each pushing an event when the simulator's account changes."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import ccxt.pro
import pytest

from monitor.exchanges.urls import rewrite_api_urls, rewrite_ws_urls
from monitor.simulator import SimulatorServer
from tests.support.waiting import wait_until

QUIET = {
    "fetchCurrencies": False,
    "watchBalance": {"fetchBalanceSnapshot": False},
    "watchPositions": {"fetchPositionsSnapshot": False},
}


def _pro(sim: SimulatorServer, cls: type[Any], account: str, **options: Any) -> Any:
    info = sim.accounts[account]
    exchange = cls({"apiKey": info.api_key, "secret": info.api_secret, "options": QUIET | options})
    api = exchange.urls["api"]
    exchange.urls = {
        **exchange.urls,
        "api": {
            **rewrite_api_urls({k: v for k, v in api.items() if k != "ws"}, sim.base_url),
            "ws": rewrite_ws_urls(api["ws"], sim.base_url),
        },
    }
    return exchange


async def _soon(sim: SimulatorServer, connections: int = 1) -> None:
    await wait_until(lambda: sim.private.connections >= connections, 3, "the private stream")


async def test_binance_usdm_user_data_stream_pushes_a_fill(simulator: SimulatorServer) -> None:
    exchange = _pro(simulator, ccxt.pro.binanceusdm, "binance-oneway")
    try:
        await exchange.load_markets()
        waiting = asyncio.ensure_future(exchange.watch_positions())
        await _soon(simulator)
        listen_key = exchange.options["linear"]["listenKey"]
        url = next(u for u in exchange.clients if "listenKey" in u)
        assert (
            url == f"{simulator.base_url.replace('http', 'ws')}/private/ws?listenKey={listen_key}"
        )
        await simulator.fill("binance-oneway", "BTCUSDT", 0.25)
        async with asyncio.timeout(3):
            positions = await waiting
        btc = next(p for p in positions if p["symbol"] == "BTC/USDT:USDT")
        assert btc["contracts"] == 0.25
        assert btc["side"] == "long"
        # A transfer is an ACCOUNT_UPDATE too: the balance watcher sees the new wallet.
        balance = asyncio.ensure_future(exchange.watch_balance())
        await asyncio.sleep(0.1)  # the watcher registers in ccxt (nothing observable to wait on)
        await simulator.transfer("binance-oneway", "USDT", -500.0)
        async with asyncio.timeout(3):
            assert (await balance)["USDT"]["total"] == 19500.0
        # The keepalive ccxt sends every 20 minutes: a PUT answered with the same key.
        assert (await exchange.fapiPrivatePutListenKey())["listenKey"] == listen_key
        # POST again while active: the same key.
        assert (await exchange.fapiPrivatePostListenKey())["listenKey"] == listen_key
    finally:
        await exchange.close()


async def test_binance_listen_key_lifecycle(simulator: SimulatorServer) -> None:
    exchange = _pro(simulator, ccxt.pro.binancecoinm, "binance-oneway")
    try:
        key = (await exchange.dapiPrivatePostListenKey())["listenKey"]
        ws = simulator.base_url.replace("http", "ws")
        async with aiohttp.ClientSession() as session:
            socket = await session.ws_connect(f"{ws}/ws/{key}")
            await simulator.fill("binance-oneway", "BTCUSD_PERP", 5)
            async with asyncio.timeout(3):
                order = await socket.receive_json()
                update = await socket.receive_json()
            assert order["e"] == "ORDER_TRADE_UPDATE"
            assert order["o"]["s"] == "BTCUSD_PERP"
            assert update["e"] == "ACCOUNT_UPDATE"
            assert update["a"]["m"] == "ORDER"
            assert {"s": "BTCUSD_PERP", "pa": "5"}.items() <= update["a"]["P"][0].items()
            # Only the COIN-M positions: the USDⓈ-M ones are another stream.
            assert {p["s"] for p in update["a"]["P"]} <= {"BTCUSD_PERP", "ETHUSD_PERP"}
            assert await simulator.private.expire_listen_keys() == 1
            async with asyncio.timeout(3):
                expired = await socket.receive_json()
                closing = await socket.receive()
            assert expired == {"e": "listenKeyExpired", "E": expired["E"], "listenKey": key}
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            await socket.close()
            # A lapsed key is refused at the handshake.
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await session.ws_connect(f"{ws}/private/ws?listenKey={key}")
        with pytest.raises(ccxt.BaseError, match="-1125"):
            await exchange.dapiPrivatePutListenKey()
        fresh = (await exchange.dapiPrivatePostListenKey())["listenKey"]
        assert fresh != key
        assert await exchange.dapiPrivateDeleteListenKey() == {}
    finally:
        await exchange.close()


async def test_binance_listen_key_refused_without_a_known_api_key(
    simulator: SimulatorServer,
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{simulator.base_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": "nope"}
        ) as response,
    ):
        assert response.status == 401
        assert (await response.json())["code"] == -2015


async def test_bybit_private_position_and_wallet_topics(simulator: SimulatorServer) -> None:
    exchange = _pro(simulator, ccxt.pro.bybit, "bybit-cross")
    try:
        await exchange.load_markets()
        positions = asyncio.ensure_future(exchange.watch_positions())
        balance = asyncio.ensure_future(exchange.watch_balance())
        await _soon(simulator)
        url = next(iter(exchange.clients))
        assert url == f"{simulator.base_url.replace('http', 'ws')}/v5/private"
        await wait_until(
            lambda: simulator.private.subscribed("bybit-cross") == {"position", "wallet"},
            3,
            "the subscriptions",
        )
        await simulator.fill("bybit-cross", "ETHUSDT", 1.5)
        async with asyncio.timeout(3):
            seen = await positions
            wallet = await balance
        eth = next(p for p in seen if p["symbol"] == "ETH/USDT:USDT")
        assert eth["contracts"] == 1.5
        before = wallet["USDT"]["total"]
        balance = asyncio.ensure_future(exchange.watch_balance())
        await asyncio.sleep(0.05)  # the watcher registers in ccxt (nothing observable to wait on)
        await simulator.transfer("bybit-cross", "USDT", -1000.0)
        async with asyncio.timeout(3):
            assert (await balance)["USDT"]["total"] == pytest.approx(before - 1000.0)
    finally:
        await exchange.close()


async def test_bybit_private_auth_refuses_a_bad_signature(simulator: SimulatorServer) -> None:
    info = simulator.accounts["bybit-cross"]
    async with aiohttp.ClientSession() as session:
        ws = simulator.base_url.replace("http", "ws")
        async with session.ws_connect(f"{ws}/v5/private") as socket:
            expires = str(simulator.server_ms() + 10_000)
            await socket.send_json({"op": "auth", "args": [info.api_key, expires, "0" * 64]})
            reply = await socket.receive_json()
            assert reply["success"] is False
            await socket.send_json({"op": "subscribe", "args": ["position"]})
            assert (await socket.receive_json())["success"] is False


async def test_control_api_fills_and_transfers(simulator: SimulatorServer) -> None:
    base = f"{simulator.base_url}/_sim/accounts"
    async with aiohttp.ClientSession() as session:
        async with session.put(
            f"{base}/binance-oneway/positions/BTCUSDT", json={"quantity": 0}
        ) as response:
            assert response.status == 200
        assert all(
            p.instrument.symbol != "BTCUSDT"
            for p in simulator.market.accounts["binance-oneway"].positions
        )
        async with session.put(
            f"{base}/binance-oneway/positions/BTCUSDT", json={"quantity": 1}
        ) as response:
            assert response.status == 400
            assert "holds no position in 'BTCUSDT'" in (await response.json())["error"]
        async with session.put(
            f"{base}/binance-oneway/positions/ETHUSDT", json={"quantity": -1}
        ) as response:
            assert (await response.json())["error"].startswith("quantity:")
        async with session.post(
            f"{base}/binance-oneway/transfers", json={"asset": "USDT", "amount": 250}
        ) as response:
            assert response.status == 200
        assert simulator.market.accounts["binance-oneway"].wallet["USDT"] == 20250
        async with session.post(f"{base}/nobody/transfers", json={}) as response:
            assert (await response.json())["error"] == "account: unknown account 'nobody'"
        async with session.put(
            f"{simulator.base_url}/_sim/private-streams", json={"mode": "sideways"}
        ) as response:
            assert response.status == 400
