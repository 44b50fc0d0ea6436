"""Every injected fault reaches ccxt as the error ccxt raises for it on the real venue."""

from __future__ import annotations

from typing import Any

import ccxt.async_support as ccxt_async
import pytest

from monitor.simulator import SimulatorServer
from tests.support.simulator import ccxt_client

BINANCE_EXPECTED: dict[str, type[Exception]] = {
    "rate_limit": ccxt_async.DDoSProtection,
    "ip_ban": ccxt_async.DDoSProtection,
    "server_error": ccxt_async.ExchangeNotAvailable,
    "timeout": ccxt_async.RequestTimeout,
    "timestamp": ccxt_async.InvalidNonce,
    "auth": ccxt_async.AuthenticationError,
    "maintenance": ccxt_async.OnMaintenance,
}
BYBIT_EXPECTED: dict[str, type[Exception]] = {
    "rate_limit": ccxt_async.RateLimitExceeded,
    "ip_ban": ccxt_async.RateLimitExceeded,
    "server_error": ccxt_async.ExchangeNotAvailable,
    "timeout": ccxt_async.RequestTimeout,
    "timestamp": ccxt_async.InvalidNonce,
    "auth": ccxt_async.AuthenticationError,
    "maintenance": ccxt_async.ExchangeNotAvailable,
}
CASES = [
    ("binance-oneway", "binanceusdm", kind, error) for kind, error in BINANCE_EXPECTED.items()
] + [("bybit-cross", "bybit", kind, error) for kind, error in BYBIT_EXPECTED.items()]


async def _fetch(exchange: Any) -> Any:
    if exchange.id == "bybit":
        return await exchange.fetch_positions()
    return await exchange.fetch_balance()


@pytest.mark.parametrize(
    ("account", "exchange_id", "kind", "error"), CASES, ids=[f"{c[1]}-{c[2]}" for c in CASES]
)
async def test_fault_raises_what_ccxt_raises_on_the_venue(
    simulator: SimulatorServer, account: str, exchange_id: str, kind: str, error: type[Exception]
) -> None:
    exchange = ccxt_client(simulator, account, exchange_id, timeout=300)
    try:
        await exchange.load_markets()
        fault = simulator.inject_fault(kind, account=account, count=1, delay=1.0, retry_after=7)
        with pytest.raises(error):
            await _fetch(exchange)
        # count=1: the next request succeeds.
        await _fetch(exchange)
    finally:
        await exchange.close()
    assert fault.hits == 1
    # A timed-out request is logged once the simulator has answered it, after `delay`.
    if kind != "timeout":
        assert [r.account for r in simulator.request_log if r.fault == kind] == [account]


async def test_binance_rate_limit_and_ban_carry_retry_after(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(simulator, "binance-oneway", "binanceusdm")
    try:
        await exchange.load_markets()
        for kind in ("rate_limit", "ip_ban"):
            simulator.inject_fault(kind, account="binance-oneway", count=1, retry_after=42)
            with pytest.raises(ccxt_async.DDoSProtection):
                await exchange.fetch_balance()
            assert exchange.last_response_headers["Retry-After"] == "42"
    finally:
        await exchange.close()


async def test_server_error_status_is_configurable(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(simulator, "binance-oneway", "binanceusdm")
    try:
        await exchange.load_markets()
        simulator.inject_fault("server_error", status=504, count=1)
        with pytest.raises(ccxt_async.RequestTimeout):
            await exchange.fetch_balance()
    finally:
        await exchange.close()


async def test_faults_are_scoped_to_account_path_and_window(simulator: SimulatorServer) -> None:
    other = ccxt_client(simulator, "binance-hedge", "binanceusdm")
    target = ccxt_client(simulator, "binance-oneway", "binanceusdm")
    try:
        await target.load_markets()
        await other.load_markets()
        simulator.inject_fault(
            "auth", account="binance-oneway", path="/fapi/v3/account", start=10, duration=20
        )
        await target.fetch_balance()  # not started yet
        simulator.advance(10)
        with pytest.raises(ccxt_async.AuthenticationError):
            await target.fetch_balance()
        await target.fetch_positions()  # another path
        await other.fetch_balance()  # another account
        simulator.advance(20)
        await target.fetch_balance()  # window over
    finally:
        await target.close()
        await other.close()


async def test_malformed_json_is_not_an_error_to_ccxt(simulator: SimulatorServer) -> None:
    """ccxt swallows a truncated body: positions come back empty and balances carry the raw text.
    Adapters must check the raw response themselves, or an outage looks like a flat account."""
    for account, exchange_id in (("binance-oneway", "binanceusdm"), ("bybit-cross", "bybit")):
        exchange = ccxt_client(simulator, account, exchange_id)
        try:
            await exchange.load_markets()
            fault = simulator.inject_fault("malformed_json", account=account)
            assert await exchange.fetch_positions() == []
            balance = await exchange.fetch_balance()
            assert isinstance(balance["info"], str)
            simulator.faults.remove(fault)
            assert await exchange.fetch_positions() != []
        finally:
            await exchange.close()


async def test_scenario_faults_follow_the_clock() -> None:
    from tests.support.simulator import running_simulator

    scenario = {
        "feeds": {"BTC": {"price": 60000}},
        "instruments": [{"venue": "binance-usdm", "symbol": "BTCUSDT"}],
        "accounts": {"a": {"exchange": "binance", "wallet": {"USDT": 100}}},
        "faults": [{"kind": "maintenance", "start": "5s", "duration": "5s"}],
    }
    async with running_simulator(scenario) as sim:
        exchange = ccxt_client(sim, "a", "binanceusdm")
        try:
            await exchange.load_markets()
            sim.advance(5)
            with pytest.raises(ccxt_async.OnMaintenance):
                await exchange.fetch_mark_prices()
            sim.advance(5)
            assert (await exchange.fetch_mark_prices())["BTC/USDT:USDT"]["markPrice"] == 60000
        finally:
            await exchange.close()
