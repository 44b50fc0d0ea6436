"""Signatures, API keys and timestamps are checked the way Binance and Bybit check them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import aiohttp
import ccxt.async_support as ccxt_async
import pytest

from monitor.simulator import SimulatorServer
from tests.support.simulator import ccxt_client


def _binance_query(secret: str, query: str) -> str:
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={signature}"


async def _get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, json.loads(await response.text())


async def test_binance_signature_key_and_timestamp(simulator: SimulatorServer) -> None:
    info = simulator.accounts["binance-oneway"]
    url = f"{simulator.base_url}/fapi/v3/account"
    now = int(time.time() * 1000)
    good = _binance_query(info.api_secret, f"timestamp={now}&recvWindow=5000")
    status, body = await _get(f"{url}?{good}", {"X-MBX-APIKEY": info.api_key})
    assert status == 200
    assert "assets" in body

    forged = _binance_query("not-the-secret", f"timestamp={now}&recvWindow=5000")
    assert await _get(f"{url}?{forged}", {"X-MBX-APIKEY": info.api_key}) == (
        400,
        {"code": -1022, "msg": "Signature for this request is not valid."},
    )
    stale = _binance_query(info.api_secret, f"timestamp={now - 6000}&recvWindow=5000")
    status, body = await _get(f"{url}?{stale}", {"X-MBX-APIKEY": info.api_key})
    assert (status, body["code"]) == (400, -1021)
    ahead = _binance_query(info.api_secret, f"timestamp={now + 5000}&recvWindow=5000")
    status, body = await _get(f"{url}?{ahead}", {"X-MBX-APIKEY": info.api_key})
    assert (status, body["code"]) == (400, -1021)
    status, body = await _get(f"{url}?{good}", {"X-MBX-APIKEY": "unknown-key"})
    assert (status, body["code"]) == (401, -2015)
    # A Bybit key is not a Binance key.
    status, body = await _get(
        f"{url}?{good}", {"X-MBX-APIKEY": simulator.accounts["bybit-cross"].api_key}
    )
    assert (status, body["code"]) == (401, -2015)
    status, body = await _get(f"{url}?{good}", {})
    assert (status, body["code"]) == (401, -2014)


async def test_bybit_signature_key_and_timestamp(simulator: SimulatorServer) -> None:
    info = simulator.accounts["bybit-cross"]
    query = "accountType=UNIFIED"
    url = f"{simulator.base_url}/v5/account/wallet-balance?{query}"

    def headers(
        timestamp: int, secret: str = info.api_secret, key: str = info.api_key
    ) -> dict[str, str]:
        origin = f"{timestamp}{key}5000{query}"
        return {
            "X-BAPI-API-KEY": key,
            "X-BAPI-TIMESTAMP": str(timestamp),
            "X-BAPI-RECV-WINDOW": "5000",
            "X-BAPI-SIGN": hmac.new(secret.encode(), origin.encode(), hashlib.sha256).hexdigest(),
        }

    now = int(time.time() * 1000)
    status, body = await _get(url, headers(now))
    assert (status, body["retCode"], body["retMsg"]) == (200, 0, "OK")
    status, body = await _get(url, headers(now, secret="wrong"))
    assert (status, body["retCode"]) == (401, 10004)
    status, body = await _get(url, headers(now - 10_000))
    assert (status, body["retCode"]) == (200, 10002)
    status, body = await _get(url, headers(now, key="nobody"))
    assert (status, body["retCode"]) == (401, 10003)


@pytest.mark.parametrize(
    ("account", "exchange_id"), [("binance-oneway", "binanceusdm"), ("bybit-cross", "bybit")]
)
async def test_clock_skew_is_fixed_by_resyncing_time(
    simulator: SimulatorServer, account: str, exchange_id: str
) -> None:
    exchange = ccxt_client(simulator, account, exchange_id)
    try:
        await exchange.load_markets()
        simulator.server_time_offset = 60
        with pytest.raises(ccxt_async.InvalidNonce):
            await exchange.fetch_positions()
        await exchange.load_time_difference()
        assert abs(exchange.options["timeDifference"] + 60_000) < 2_000
        await exchange.fetch_positions()
    finally:
        await exchange.close()


async def test_keys_without_futures_permission_are_refused() -> None:
    from tests.support.simulator import running_simulator

    scenario = {
        "feeds": {"BTC": {"price": 60000}},
        "instruments": [{"venue": "binance-usdm", "symbol": "BTCUSDT"}],
        "accounts": {
            "spot-only": {
                "exchange": "binance",
                "wallet": {"USDT": 1},
                "permissions": {"futures": False},
            }
        },
    }
    async with running_simulator(scenario) as sim:
        exchange = ccxt_client(sim, "spot-only", "binanceusdm")
        try:
            with pytest.raises(ccxt_async.AuthenticationError):
                await exchange.fetch_balance()
            restrictions = await exchange.sapiGetAccountApiRestrictions()
            assert restrictions["enableFutures"] is False
        finally:
            await exchange.close()
