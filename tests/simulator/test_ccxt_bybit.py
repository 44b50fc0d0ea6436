"""Real ccxt (bybit, v5 unified account) against the simulator: USDT and USDC settlement, inverse,
hedge and isolated modes, balance, risk limits and tickers parse with the scenario's values."""

from __future__ import annotations

import ccxt.async_support as ccxt_async
import pytest

from monitor.domain.model import Venue
from monitor.simulator import SimulatorServer
from tests.support.simulator import ccxt_client


def _engine(
    sim: SimulatorServer, account: str
) -> dict[tuple[str, str], tuple[float | None, float]]:
    """(symbol, side) -> (liquidation price, maintenance margin) as the engine computes them."""
    result = {}
    for pool in sim.market.pools(sim.market.accounts[account]):
        for view in pool.positions:
            key = (view.position.instrument.symbol, view.position.side.value)
            result[key] = (view.risk.liquidation_price, view.risk.maintenance_margin)
    return result


async def test_linear_usdt_and_usdc_and_inverse_positions(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(simulator, "bybit-cross", "bybit")
    try:
        markets = await exchange.load_markets()
        assert {"BTC/USDT:USDT", "ETH/USDT:USDT", "ETH/USDC:USDC", "BTC/USD:BTC"} <= set(markets)
        assert markets["BTC/USD:BTC"]["inverse"] is True
        engine = _engine(simulator, "bybit-cross")
        usdt = await exchange.fetch_positions()
        usdc = await exchange.fetch_positions(None, {"settleCoin": "USDC"})
        inverse = await exchange.fetch_positions(None, {"subType": "inverse"})
        assert {p["symbol"] for p in usdt} == {"BTC/USDT:USDT", "ETH/USDT:USDT"}
        assert [p["symbol"] for p in usdc] == ["ETH/USDC:USDC"]
        assert [p["symbol"] for p in inverse] == ["BTC/USD:BTC"]
        for position in usdt + usdc + inverse:
            liquidation, maintenance = engine[(position["info"]["symbol"], position["side"])]
            if liquidation is None:
                # The unified pool backs these with every coin: no price liquidates them alone.
                assert position["liquidationPrice"] is None
            else:
                assert position["liquidationPrice"] == pytest.approx(liquidation, rel=1e-9)
            # Bybit sends 8 decimals, also for coin amounts of inverse positions.
            assert position["maintenanceMargin"] == pytest.approx(maintenance, rel=1e-6, abs=5e-9)
            assert position["hedged"] is False
        btc = next(p for p in usdt if p["symbol"] == "BTC/USDT:USDT")
        assert (btc["side"], btc["contracts"], btc["entryPrice"], btc["markPrice"]) == (
            "long",
            0.2,
            59000,
            60000,
        )
        assert btc["unrealizedPnl"] == pytest.approx(200)
        assert inverse[0]["contracts"] == 5000
        assert inverse[0]["contractSize"] == 1
        assert [p["contracts"] for p in await exchange.fetch_positions(["ETH/USDT:USDT"])] == [3]
    finally:
        await exchange.close()


async def test_unified_balance_risk_limits_tickers_and_margin_mode(
    simulator: SimulatorServer,
) -> None:
    exchange = ccxt_client(simulator, "bybit-cross", "bybit")
    try:
        balance = await exchange.fetch_balance()
        assert balance["USDT"]["total"] == 10000
        assert balance["USDC"]["total"] == 5000
        # UTA 1.0 keeps the coin of its inverse contracts in the separate contract wallet.
        assert "BTC" not in balance
        contract = await exchange.privateGetV5AccountWalletBalance({"accountType": "CONTRACT"})
        [row] = contract["result"]["list"][0]["coin"]
        assert (row["coin"], float(row["walletBalance"])) == ("BTC", 0.2)
        summary = balance["info"]["result"]["list"][0]
        assert summary["accountType"] == "UNIFIED"
        assert float(summary["totalMaintenanceMargin"]) > 0
        rate = float(summary["totalMaintenanceMargin"]) / float(summary["totalMarginBalance"])
        assert float(summary["accountMMRate"]) == pytest.approx(rate, abs=1e-4)
        tiers = await exchange.fetch_leverage_tiers()
        assert [t["maxNotional"] for t in tiers["BTC/USDT:USDT"]] == [2_000_000, 4_000_000]
        assert float(tiers["BTC/USDT:USDT"][1]["info"]["mmDeduction"]) == pytest.approx(10_000)
        inverse_tiers = await exchange.fetch_leverage_tiers(None, {"subType": "inverse"})
        assert [t["maxNotional"] for t in inverse_tiers["BTC/USD:BTC"]] == [150, 300]
        tickers = await exchange.fetch_tickers(None, {"subType": "linear"})
        assert tickers["ETH/USDC:USDC"]["markPrice"] == 3000
        inverse_tickers = await exchange.fetch_tickers(None, {"subType": "inverse"})
        assert inverse_tickers["BTC/USD:BTC"]["markPrice"] == 60000
        mode = await exchange.fetch_margin_mode("BTC/USDT:USDT")
        assert mode["marginMode"] == "cross"
        fees = await exchange.privateGetV5AccountFeeRate({"category": "linear"})
        assert {row["takerFeeRate"] for row in fees["result"]["list"]} == {"0.00055"}
    finally:
        await exchange.close()


async def test_hedge_mode_legs(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(simulator, "bybit-hedge", "bybit")
    try:
        positions = await exchange.fetch_positions()
        assert {(p["side"], p["contracts"], p["hedged"]) for p in positions} == {
            ("long", 0.1, True),
            ("short", 0.05, True),
        }
        assert {p["info"]["positionIdx"] for p in positions} == {1, 2}
    finally:
        await exchange.close()


async def test_isolated_margin_account(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(simulator, "bybit-isolated", "bybit")
    try:
        assert (await exchange.fetch_margin_mode("BTC/USDT:USDT"))["marginMode"] == "isolated"
        usdt = await exchange.fetch_positions()
        usdc = await exchange.fetch_positions(None, {"settleCoin": "USDC"})
        engine = _engine(simulator, "bybit-isolated")
        btc, eth = usdt[0], usdc[0]
        assert btc["initialMargin"] == pytest.approx(0.1 * 60000 / 10)
        assert eth["initialMargin"] == pytest.approx(3000 / 5)
        assert btc["liquidationPrice"] == pytest.approx(engine[("BTCUSDT", "long")][0], rel=1e-9)
        assert btc["liquidationPrice"] < 60000
        assert eth["liquidationPrice"] > 3000
    finally:
        await exchange.close()


async def test_empty_account_and_key_info(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(simulator, "bybit-empty", "bybit")
    try:
        assert await exchange.fetch_positions() == []
        assert await exchange.fetch_positions(None, {"subType": "inverse"}) == []
        # Asked by symbol, Bybit answers with a flat row.
        flat = await exchange.fetch_positions(["BTC/USDT:USDT"])
        assert [(p["contracts"], p["side"]) for p in flat] == [(0, None)]
        key = await exchange.privateGetV5UserQueryApi()
        assert key["result"]["readOnly"] == 1
        assert key["result"]["permissions"]["Wallet"] == []
    finally:
        await exchange.close()


def test_every_venue_is_in_the_test_scenario(simulator: SimulatorServer) -> None:
    venues = {pool[0] for info in simulator.accounts.values() for pool in info.pools}
    assert venues == set(Venue)


async def test_position_list_pages_by_limit_and_cursor(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(simulator, "bybit-cross", "bybit")
    try:
        request = {"category": "linear", "settleCoin": "USDT", "limit": 1}
        first = (await exchange.privateGetV5PositionList(request))["result"]
        assert len(first["list"]) == 1
        assert first["nextPageCursor"]
        second = (
            await exchange.privateGetV5PositionList(request | {"cursor": first["nextPageCursor"]})
        )["result"]
        assert second["nextPageCursor"] == ""
        assert {first["list"][0]["symbol"], second["list"][0]["symbol"]} == {"BTCUSDT", "ETHUSDT"}
        with pytest.raises(ccxt_async.BadRequest):
            await exchange.privateGetV5PositionList(request | {"limit": 201})
    finally:
        await exchange.close()


async def test_default_load_markets_with_keys(simulator: SimulatorServer) -> None:
    """ccxt's defaults: spot, six option bases, linear, inverse and the private coin list."""
    exchange = ccxt_client(simulator, "bybit-cross", "bybit", options={"fetchMarkets": {}})
    exchange.has["fetchCurrencies"] = True
    try:
        markets = await exchange.load_markets()
        assert set(markets) == {"BTC/USDT:USDT", "ETH/USDT:USDT", "ETH/USDC:USDC", "BTC/USD:BTC"}
        assert {"BTC", "USDT", "USDC", "ETH"} <= set(exchange.currencies)
        paths = [record.path for record in simulator.request_log]
        assert "/v5/asset/coin/query-info" in paths
        assert all(record.status == 200 for record in simulator.request_log)
    finally:
        await exchange.close()
