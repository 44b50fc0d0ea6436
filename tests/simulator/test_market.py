"""The market moves on the injected clock, the venue liquidates as the venue would, and what it
reports is what the margin engine computes from the same figures read back over the wire."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.domain.margin import assess
from monitor.domain.model import AccountState, MarginMode, Position, Side, Tier, Venue
from monitor.simulator import SimulatorServer
from tests.support.simulator import ccxt_client, running_simulator


async def test_scripted_move_follows_the_injected_clock(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(simulator, None, "binanceusdm")
    try:
        await exchange.load_markets()

        async def btc() -> float:
            marks = await exchange.fetch_mark_prices(["BTC/USDT:USDT"])
            return float(marks["BTC/USDT:USDT"]["markPrice"])

        assert await btc() == 60000
        simulator.advance(600 + 30)  # halfway down the -15 % slide
        assert await btc() == pytest.approx(60000 * (1 - 0.075))
        simulator.advance(30 + 30)  # bottom, held
        assert await btc() == pytest.approx(60000 * 0.85)
        simulator.advance(60)  # recovered
        assert await btc() == 60000
        eth = await exchange.fetch_mark_prices(["ETH/USDT:USDT"])
        assert eth["ETH/USDT:USDT"]["markPrice"] == 3000  # only BTC moves
    finally:
        await exchange.close()


async def test_crossing_the_liquidation_price_liquidates(simulator: SimulatorServer) -> None:
    fragile = ccxt_client(simulator, "binance-fragile", "binanceusdm")
    isolated = ccxt_client(simulator, "bybit-isolated", "bybit")
    try:
        [cross_position] = await fragile.fetch_positions()
        [isolated_position] = await isolated.fetch_positions()
        cross_liquidation = cross_position["liquidationPrice"]
        isolated_liquidation = isolated_position["liquidationPrice"]
        simulator.advance(600 + 60 + 30 + 60)  # down 15 %, held, recovered
        assert await fragile.fetch_positions() == []
        assert await isolated.fetch_positions() == []
        events = {event.account: event for event in simulator.liquidations}
        assert set(events) == {"binance-fragile", "bybit-isolated"}
        assert events["binance-fragile"].mark_price <= cross_liquidation
        assert (
            events["binance-fragile"].mark_price > cross_liquidation * 0.99
        )  # caught within one tick
        assert events["bybit-isolated"].mark_price <= isolated_liquidation
        # Cross: the pool keeps equity minus maintenance margin. Isolated: the margin is gone, the rest stays.
        cross_wallet = float((await fragile.fetch_balance())["info"]["totalWalletBalance"])
        assert 0 <= cross_wallet < 1500 - 0.2 * (60000 - cross_liquidation)
        usdt = (await isolated.fetch_balance())["USDT"]["total"]
        assert usdt == pytest.approx(3000)
        # ETHPERP (USDC, isolated, short) is untouched.
        assert len(await isolated.fetch_positions(None, {"settleCoin": "USDC"})) == 1
    finally:
        await fragile.close()
        await isolated.close()


def _binance_state(
    positions: list[dict[str, Any]], brackets: list[dict[str, Any]], wallet: float
) -> AccountState:
    tables = {
        entry["symbol"]: tuple(
            Tier(b["notionalFloor"], b["notionalCap"], b["maintMarginRatio"], b["cum"])
            for b in entry["brackets"]
        )
        for entry in brackets
    }
    rows = [
        row for row in positions if float(row["positionAmt"]) != 0 and row["marginAsset"] == "USDT"
    ]
    return AccountState(
        venue=Venue.BINANCE_USDM,
        wallet_balance=wallet,
        positions=tuple(
            Position(
                symbol=row["symbol"],
                side=Side.LONG if float(row["positionAmt"]) > 0 else Side.SHORT,
                margin_mode=MarginMode.ISOLATED
                if float(row["isolatedWallet"])
                else MarginMode.CROSS,
                quantity=abs(float(row["positionAmt"])),
                entry_price=float(row["entryPrice"]),
                mark_price=float(row["markPrice"]),
                tiers=tables[row["symbol"]],
                isolated_margin=float(row["isolatedWallet"]) or None,
                hedge=row["positionSide"] != "BOTH",
            )
            for row in rows
        ),
    )


@pytest.mark.parametrize("account", ["binance-oneway", "binance-hedge", "binance-brackets"])
async def test_binance_liquidation_prices_are_the_engines_on_the_reported_figures(
    account: str,
) -> None:
    async with running_simulator("test") as sim:
        exchange = ccxt_client(sim, account, "binanceusdm")
        try:
            sim.advance(630)  # mid-crash: marks away from entries
            positions = await exchange.fapiPrivateV3GetPositionRisk()
            brackets = await exchange.fapiPrivateGetLeverageBracket()
            assets = (await exchange.fapiPrivateV3GetAccount())["assets"]
        finally:
            await exchange.close()
    wallet = float(next(a for a in assets if a["asset"] == "USDT")["crossWalletBalance"])
    state = _binance_state(positions, brackets, wallet)
    risk = assess(state)
    reported = [
        row for row in positions if float(row["positionAmt"]) != 0 and row["marginAsset"] == "USDT"
    ]
    assert len(reported) == len(risk.positions) > 0
    for row, computed in zip(reported, risk.positions, strict=True):
        expected = computed.liquidation_price
        assert float(row["liquidationPrice"]) == pytest.approx(expected or 0.0, rel=1e-9, abs=1e-6)
        assert float(row["maintMargin"]) == pytest.approx(computed.maintenance_margin, abs=1e-8)


async def test_bybit_liquidation_prices_are_the_engines_on_the_reported_figures(
    simulator: SimulatorServer,
) -> None:
    exchange = ccxt_client(simulator, "bybit-usdt-only", "bybit")
    try:
        simulator.advance(630)
        rows = (
            await exchange.privateGetV5PositionList({"category": "linear", "settleCoin": "USDT"})
        )["result"]["list"]
        limits = (await exchange.publicGetV5MarketRiskLimit({"category": "linear"}))["result"][
            "list"
        ]
        fees = (await exchange.privateGetV5AccountFeeRate({"category": "linear"}))["result"]["list"]
        coins = (await exchange.privateGetV5AccountWalletBalance({"accountType": "UNIFIED"}))[
            "result"
        ]["list"][0]["coin"]
    finally:
        await exchange.close()
    tiers: dict[str, list[Tier]] = {}
    for row in limits:
        table = tiers.setdefault(row["symbol"], [])
        floor = table[-1].cap if table else 0.0
        table.append(
            Tier(
                floor or 0.0,
                float(row["riskLimitValue"]),
                float(row["maintenanceMargin"]),
                float(row["mmDeduction"]),
            )
        )
    taker = {row["symbol"]: float(row["takerFeeRate"]) for row in fees}
    usdt = next(c for c in coins if c["coin"] == "USDT")
    state = AccountState(
        venue=Venue.BYBIT_LINEAR,
        wallet_balance=float(usdt["walletBalance"]),
        positions=tuple(
            Position(
                symbol=row["symbol"],
                side=Side.LONG if row["side"] == "Buy" else Side.SHORT,
                margin_mode=MarginMode.CROSS,
                quantity=float(row["size"]),
                entry_price=float(row["avgPrice"]),
                mark_price=float(row["markPrice"]),
                tiers=tuple(tiers[row["symbol"]]),
                leverage=float(row["leverage"]),
                taker_fee=taker[row["symbol"]],
            )
            for row in rows
        ),
    )
    risk = assess(state)
    for row, computed in zip(rows, risk.positions, strict=True):
        assert float(row["liqPrice"]) == pytest.approx(computed.liquidation_price, rel=1e-9)
        assert float(row["positionMM"]) == pytest.approx(computed.maintenance_margin, abs=1e-8)


async def test_a_pinned_price_takes_effect_at_once(simulator: SimulatorServer) -> None:
    exchange = ccxt_client(simulator, "binance-fragile", "binanceusdm")
    try:
        [position] = await exchange.fetch_positions()
        simulator.set_price("BTC", position["liquidationPrice"] * 1.001)
        [position] = await exchange.fetch_positions()
        assert position["markPrice"] == pytest.approx(
            position["liquidationPrice"] * 1.001, rel=1e-5
        )
        simulator.set_price("BTC", position["liquidationPrice"] * 0.999)
        assert await exchange.fetch_positions() == []
        simulator.set_price("BTC", None)
        marks = await exchange.fetch_mark_prices(["BTC/USDT:USDT"])
        assert marks["BTC/USDT:USDT"]["markPrice"] == 60000
    finally:
        await exchange.close()


async def test_demo_scenario_warns_escalates_and_recovers_within_a_minute() -> None:
    async with running_simulator("demo") as sim:
        account = sim.market.accounts["demo-binance"]
        ratios = []
        for _ in range(61):
            [pool] = [p for p in sim.market.pools(account) if p.venue is Venue.BINANCE_USDM]
            assert pool.risk.margin_ratio is not None
            ratios.append(pool.risk.margin_ratio)
            sim.advance(1)
    below_warning = next(t for t, ratio in enumerate(ratios) if ratio < 3.0)
    below_critical = next(t for t, ratio in enumerate(ratios) if ratio < 1.5)
    recovered = next(
        t for t, ratio in enumerate(ratios) if t > below_critical and ratio > 3.0 * 1.2
    )
    assert ratios[0] > 3.0 * 1.2
    assert 5 < below_warning < below_critical < recovered <= 60
    assert below_critical + 10 < recovered  # critical long enough for a debounced alert
    assert min(ratios) > 1.1  # close, but the venue does not liquidate
    assert sim.liquidations == []
