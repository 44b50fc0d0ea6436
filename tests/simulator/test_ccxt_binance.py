"""Real ccxt (binanceusdm, binancecoinm) against the simulator: every call a risk monitor makes parses
with the scenario's values."""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest

from monitor.domain.model import Side, Venue
from monitor.simulator import SimulatorServer
from tests.support.simulator import ccxt_client


def _scenario_positions(
    sim: SimulatorServer, account: str, venue: Venue
) -> dict[tuple[str, str], object]:
    spec = next(a for a in sim.scenario.accounts if a.name == account)
    return {
        (p.symbol, p.side.value): p
        for p in spec.positions
        if sim.scenario.instrument(spec.exchange, p.symbol).venue is venue  # type: ignore[union-attr]
    }


def _engine_liquidation_prices(
    sim: SimulatorServer, account: str, venue: Venue
) -> dict[tuple[str, str], float | None]:
    prices = {}
    for pool in sim.market.pools(sim.market.accounts[account]):
        if pool.venue is venue:
            for view in pool.positions:
                prices[(view.position.instrument.symbol, view.position.side.value)] = (
                    view.risk.liquidation_price
                )
    return prices


async def test_usdm_one_way_positions_balance_tiers_and_marks(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(simulator, "binance-oneway", "binanceusdm")
    try:
        markets = await exchange.load_markets()
        assert {"BTC/USDT:USDT", "ETH/USDT:USDT", "BNB/USDT:USDT", "BTC/USDC:USDC"} <= set(markets)
        assert markets["BTC/USDT:USDT"]["precision"]["price"] == pytest.approx(0.1)
        positions = await exchange.fetch_positions()
        expected = _scenario_positions(simulator, "binance-oneway", Venue.BINANCE_USDM)
        liquidation = _engine_liquidation_prices(simulator, "binance-oneway", Venue.BINANCE_USDM)
        assert {(p["info"]["symbol"], p["side"]) for p in positions} == set(expected)
        for position in positions:
            key = (position["info"]["symbol"], position["side"])
            spec = expected[key]
            assert position["contracts"] == pytest.approx(spec.quantity)  # type: ignore[attr-defined]
            assert position["entryPrice"] == pytest.approx(spec.entry_price)  # type: ignore[attr-defined]
            assert position["marginMode"] == spec.margin_mode.value  # type: ignore[attr-defined]
            assert position["liquidationPrice"] == pytest.approx(liquidation[key], rel=1e-9)
        marks = await exchange.fetch_mark_prices()
        assert marks["BTC/USDT:USDT"]["markPrice"] == 60000.0
        assert marks["ETH/USDT:USDT"]["markPrice"] == 3000.0
        balance = await exchange.fetch_balance()
        # total = marginBalance: 20000 cross + 610 isolated wallet + uPnL (+1000 BTC, +500 ETH short, -100 BNB)
        assert balance["USDT"]["total"] == pytest.approx(20000 + 610 + 1000 + 500 - 100)
        assert float(balance["info"]["totalCrossWalletBalance"]) == pytest.approx(20000)
        tiers = await exchange.fetch_leverage_tiers()
        btc = tiers["BTC/USDT:USDT"]
        assert [t["maxNotional"] for t in btc] == [50000, 600000, 3000000, 12000000, 70000000]
        assert [t["info"]["cum"] for t in btc][:3] == pytest.approx([0.0, 50.0, 950.0])
        assert (await exchange.fetch_position_mode())["hedged"] is False
        modes = await exchange.fetch_margin_modes()
        assert modes["BNB/USDT:USDT"]["marginMode"] == "isolated"
        assert modes["BTC/USDT:USDT"]["marginMode"] == "cross"
        leverages = await exchange.fetch_leverages()
        assert leverages["BTC/USDT:USDT"]["longLeverage"] == 20
    finally:
        await exchange.close()


async def test_usdm_hedge_mode_legs_share_one_liquidation_price(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(simulator, "binance-hedge", "binanceusdm")
    try:
        positions = await exchange.fetch_positions()
        legs = {(p["info"]["symbol"], p["side"]): p for p in positions}
        assert set(legs) == {("BTCUSDT", "long"), ("BTCUSDT", "short"), ("ETHUSDT", "long")}
        assert all(p["hedged"] for p in positions)
        assert (
            legs[("BTCUSDT", "long")]["liquidationPrice"]
            == legs[("BTCUSDT", "short")]["liquidationPrice"]
        )
        assert legs[("ETHUSDT", "long")]["marginMode"] == "isolated"
        assert (await exchange.fetch_position_mode())["hedged"] is True
        raw = await exchange.fapiPrivateV3GetPositionRisk()
        # The flat ETH short leg is listed (ccxt drops it because its entry price is 0).
        flat = [row for row in raw if row["symbol"] == "ETHUSDT" and row["positionSide"] == "SHORT"]
        assert flat
        assert float(flat[0]["positionAmt"]) == 0
    finally:
        await exchange.close()


async def test_usdm_per_user_brackets_and_bracket_of_liquidation_notional(
    simulator: SimulatorServer,
) -> None:
    exchange = ccxt_client(simulator, "binance-brackets", "binanceusdm")
    try:
        tiers = await exchange.fetch_leverage_tiers(["ETH/USDT:USDT"])
        assert [t["maintenanceMarginRate"] for t in tiers["ETH/USDT:USDT"]] == [0.005, 0.01, 0.02]
        positions = {p["side"]: p for p in await exchange.fetch_positions()}
        btc = positions["long"]
        # Entry notional 3.6M sits in the 1 % bracket, the notional at the liquidation price below 3M.
        assert btc["notional"] > 3_000_000
        assert btc["contracts"] * btc["liquidationPrice"] < 3_000_000
        assert float(btc["info"]["maintMargin"]) == pytest.approx(3_600_000 * 0.01 - 11450)
    finally:
        await exchange.close()


async def test_coinm_positions_balance_and_brackets(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(simulator, "binance-oneway", "binancecoinm")
    try:
        markets = await exchange.load_markets()
        assert markets["BTC/USD:BTC"]["contractSize"] == 100
        positions = {p["symbol"]: p for p in await exchange.fetch_positions()}
        liquidation = _engine_liquidation_prices(simulator, "binance-oneway", Venue.BINANCE_COINM)
        btc = positions["BTC/USD:BTC"]
        assert btc["contracts"] == 100
        assert btc["side"] == "long"
        assert btc["marginMode"] == "cross"
        assert btc["liquidationPrice"] == pytest.approx(
            liquidation[("BTCUSD_PERP", Side.LONG.value)], rel=1e-9
        )
        eth = positions["ETH/USD:ETH"]
        assert eth["side"] == "short"
        assert eth["marginMode"] == "isolated"
        balance = await exchange.fetch_balance()
        pnl = 100 * 100 * (1 / 55000 - 1 / 60000)
        assert balance["BTC"]["total"] == pytest.approx(1.0 + pnl, rel=1e-6)
        tiers = await exchange.fetch_leverage_tiers()
        assert [t["maxNotional"] for t in tiers["BTC/USD:BTC"]] == [5, 10, 20]
        marks = await exchange.fetch_mark_prices()
        assert marks["ETH/USD:ETH"]["markPrice"] == 3000.0
    finally:
        await exchange.close()


async def test_empty_account_and_key_permissions(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(simulator, "binance-empty", "binanceusdm")
    try:
        assert await exchange.fetch_positions() == []
        balance = await exchange.fetch_balance()
        assert balance["USDT"]["total"] == 1000
        restrictions = await exchange.sapiGetAccountApiRestrictions()
        assert restrictions["enableReading"] is True
        assert restrictions["enableWithdrawals"] is False
        assert restrictions["enableSpotAndMarginTrading"] is False
    finally:
        await exchange.close()


async def test_default_load_markets_with_keys_reaches_sapi(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(
        simulator, "binance-oneway", "binanceusdm", options={"fetchCurrencies": True}
    )
    try:
        markets = await exchange.load_markets()
        assert "BTC/USDT:USDT" in markets
        paths = {record.path for record in simulator.request_log}
        assert "/sapi/v1/capital/config/getall" in paths
        assert all(record.status == 200 for record in simulator.request_log)
    finally:
        await exchange.close()


async def test_multi_assets_mode_usd_totals_and_asset_index(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(simulator, "binance-multi-assets", "binanceusdm")
    try:
        assert (await exchange.fapiPrivateGetMultiAssetsMargin())["multiAssetsMargin"] is True
        index = {row["symbol"]: row for row in await exchange.fapiPublicGetAssetIndex()}
        assert float(index["BTCUSD"]["index"]) == 60000.0
        assert float(index["BTCUSD"]["bidRate"]) == pytest.approx(60000 * 0.95)
        assert float(index["USDTUSD"]["askRate"]) == pytest.approx(1.0001)
        account = await exchange.fapiPrivateV3GetAccount()
        # USD totals: 2000 USDT and 3000 USDC at 99.99 %, 0.5 BTC at 95 %, plus the PnL of the
        # BTCUSDT long (+2000 USDT) and the ETHUSDC short (+500 USDC) at 99.99 %.
        wallet = (2000 + 3000) * 0.9999 + 0.5 * 60000 * 0.95
        assert float(account["totalCrossWalletBalance"]) == pytest.approx(wallet)
        assert float(account["totalMarginBalance"]) == pytest.approx(wallet + 2500 * 0.9999)
        assert {a["asset"] for a in account["assets"]} == {"BTC", "USDC", "USDT"}
        pool = next(
            p
            for p in simulator.market.pools(simulator.market.accounts["binance-multi-assets"])
            if p.state.pooled
        )
        assert float(account["totalMaintMargin"]) == pytest.approx(pool.risk.maintenance_margin)
        positions = {p["symbol"]: p for p in await exchange.fetch_positions()}
        assert positions["ETH/USDC:USDC"]["side"] == "short"
        liquidation = _engine_liquidation_prices(
            simulator, "binance-multi-assets", Venue.BINANCE_USDM
        )
        assert positions["BTC/USDT:USDT"]["liquidationPrice"] == pytest.approx(
            liquidation[("BTCUSDT", "long")], rel=1e-9
        )
    finally:
        await exchange.close()


async def test_portfolio_margin_account_answers_on_papi_only(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(simulator, "binance-portfolio", "binanceusdm")
    try:
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await exchange.fapiPrivateV3GetAccount()
        account = await exchange.papiGetAccount()
        equity = float(account["accountEquity"])
        maintenance = float(account["accountMaintMargin"])
        assert float(account["uniMMR"]) == pytest.approx(equity / maintenance)
        # 5000 USDT at 100 % and 1 BTC at 95 %, a 1.5 BTC short from 61000 and 20 ETH from 2950.
        assert equity == pytest.approx(5000 + 57000 + 1500 + 1000)
        balances = {row["asset"]: row for row in await exchange.papiGetBalance()}
        assert float(balances["USDT"]["umWalletBalance"]) == 5000
        assert float(balances["BTC"]["crossMarginAsset"]) == 1
        rows = await exchange.papiGetUmPositionRisk()
        assert {row["symbol"] for row in rows} == {"BTCUSDT", "ETHUSDT"}
        rates = {
            row["asset"]: row["collateralRate"]
            for row in await exchange.sapiGetPortfolioCollateralRate()
        }
        assert rates["BTC"] == "0.9500"
    finally:
        await exchange.close()
    other = ccxt_client(simulator, "binance-oneway", "binanceusdm")
    try:
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await other.papiGetAccount()
    finally:
        await other.close()
