"""Request weights: Binance per-IP weight per minute (429, then 418), Bybit per-IP and per-key counts."""

from __future__ import annotations

import tomllib
from typing import Any

import aiohttp
import ccxt.async_support as ccxt_async
import pytest

from monitor.simulator import builtin_scenario_path
from tests.support.simulator import ccxt_client, running_simulator


def _test_scenario(**limits: int) -> dict[str, Any]:
    data = tomllib.loads(builtin_scenario_path("test").read_text())
    data["limits"] = limits
    return data


async def test_binance_weight_header_and_429_with_retry_after() -> None:
    async with running_simulator(_test_scenario(binance_weight_per_minute=12)) as sim:
        exchange = ccxt_client(sim, "binance-oneway", "binanceusdm")
        try:
            await exchange.load_markets()  # weight 1
            await exchange.fetch_balance()  # weight 5
            assert exchange.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "6"
            await exchange.fetch_balance()  # 11
            with pytest.raises(ccxt_async.DDoSProtection):
                await exchange.fetch_balance()  # 16 > 12
            assert exchange.last_response_headers["Retry-After"] == "60"
            sim.advance(30)
            with pytest.raises(ccxt_async.DDoSProtection):
                await exchange.fetch_balance()
            assert exchange.last_response_headers["Retry-After"] == "30"
            sim.advance(30)  # a new minute
            await exchange.fetch_balance()
            assert exchange.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "5"
        finally:
            await exchange.close()


async def test_binance_bans_an_ip_that_keeps_sending_after_429() -> None:
    scenario = _test_scenario(binance_weight_per_minute=5, binance_ban_after=2)
    async with running_simulator(scenario) as sim, aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(7):
            async with session.get(f"{sim.base_url}/fapi/v1/premiumIndex") as response:
                statuses.append(response.status)
        assert statuses == [200] * 5 + [429, 429]
        async with session.get(f"{sim.base_url}/fapi/v1/premiumIndex") as response:
            assert response.status == 418
            assert "banned until" in await response.text()
            retry_after = response.headers["Retry-After"]
        assert retry_after == "120"
        sim.advance(60)  # a new minute, but the ban lasts 120 s
        async with session.get(f"{sim.base_url}/fapi/v1/premiumIndex") as response:
            assert response.status == 418
        sim.advance(61)
        async with session.get(f"{sim.base_url}/fapi/v1/premiumIndex") as response:
            assert response.status == 200


async def test_bybit_ip_limit_and_per_key_limit() -> None:
    scenario = _test_scenario(bybit_ip_requests_per_5s=20, bybit_uid_requests_per_second=2)
    async with running_simulator(scenario) as sim:
        exchange = ccxt_client(sim, "bybit-cross", "bybit")
        try:
            await exchange.load_markets()  # 4 public requests
            await exchange.fetch_positions()
            assert exchange.last_response_headers["X-Bapi-Limit"] == "2"
            assert exchange.last_response_headers["X-Bapi-Limit-Status"] == "1"
            await exchange.fetch_positions()
            with pytest.raises(ccxt_async.RateLimitExceeded):
                await exchange.fetch_positions()
            sim.advance(1)
            await exchange.fetch_positions()
            for _ in range(20):
                try:
                    await exchange.fetch_time()
                except ccxt_async.RateLimitExceeded:
                    break
            else:
                pytest.fail("the IP limit never answered 403")
            assert sim.request_log[-1].status == 403
        finally:
            await exchange.close()
