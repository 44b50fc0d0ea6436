"""The cheap screen that lets the simulator skip the full engine while replaying time never misses a
liquidation: whenever the engine says a pool is at or past liquidation, the screen says "check"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.domain.model import MarginMode, Side
from monitor.simulator import ManualClock, load_scenario
from monitor.simulator.market import Market

VENUES = {
    "binance": [("binance-usdm", "BTCUSDT", "BTC"), ("binance-coinm", "BTCUSD_PERP", "BTC")],
    "bybit": [("bybit-linear", "BTCUSDT", "BTC"), ("bybit-inverse", "BTCUSD", "BTC")],
}


@st.composite
def tiers(draw: st.DrawFn, inverse: bool) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 4))
    scale = 10.0 if inverse else 100_000.0
    caps = sorted(draw(st.lists(st.floats(0.1, 100), min_size=count, max_size=count, unique=True)))
    rates = sorted(draw(st.lists(st.floats(0.002, 0.1), min_size=count, max_size=count)))
    return [{"cap": cap * scale, "mmr": rate} for cap, rate in zip(caps, rates, strict=True)]


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    exchange = draw(st.sampled_from(sorted(VENUES)))
    instruments = [
        {
            "venue": venue,
            "symbol": symbol,
            "feed": feed,
            "tick_size": "0.1",
            "tiers": draw(tiers(venue.endswith(("coinm", "inverse")))),
        }
        for venue, symbol, feed in VENUES[exchange]
    ]
    positions = []
    for venue, symbol, _feed in VENUES[exchange]:
        if not draw(st.booleans()):
            continue
        inverse = venue.endswith(("coinm", "inverse"))
        position = {
            "symbol": symbol,
            "side": draw(st.sampled_from(["long", "short"])),
            "quantity": draw(st.floats(100, 5000)) if inverse else draw(st.floats(0.01, 5)),
            "entry_price": draw(st.floats(30_000, 90_000)),
            "leverage": draw(st.integers(1, 50)),
        }
        if exchange == "binance" and draw(st.booleans()):
            position["margin_mode"] = "isolated"
        positions.append(position)
    account: dict[str, Any] = {
        "exchange": exchange,
        "wallet": {"USDT": draw(st.floats(0, 20_000)), "BTC": draw(st.floats(0, 0.5))},
        "positions": positions,
    }
    if exchange == "bybit" and draw(st.booleans()):
        account["margin_mode"] = "isolated"
    return {
        "feeds": {"BTC": {"price": draw(st.floats(20_000, 100_000))}},
        "instruments": instruments,
        "accounts": {"a": account},
    }


def _doomed(market: Market) -> bool:
    """Whether the engine says some pool of account "a" is at or past liquidation now."""
    for pool in market._pools(market.accounts["a"], 0.0):
        risk = pool.risk
        crosses = [v for v in pool.positions if v.position.margin_mode is MarginMode.CROSS]
        if crosses and risk.maintenance_margin > 0 and risk.equity <= risk.maintenance_margin:
            return True
        for view in pool.positions:
            liquidation = view.risk.liquidation_price
            if view.position.margin_mode is MarginMode.ISOLATED and liquidation is not None:
                long = view.position.side is Side.LONG
                if (view.mark_price <= liquidation) if long else (view.mark_price >= liquidation):
                    return True
    return False


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.integers(0, 3), st.floats(-0.01, 0.03))
def test_screen_never_misses_a_liquidation(data: dict[str, Any], which: int, beyond: float) -> None:
    market = Market(load_scenario(data), ManualClock(datetime(2026, 1, 1, tzinfo=UTC)))
    account = market.accounts["a"]
    views = [view for pool in market._pools(account, 0.0) for view in pool.positions]
    # Put the mark near (just before or past) one position's liquidation price: the hard cases.
    candidates = [v for v in views if v.risk.liquidation_price is not None]
    if candidates:
        view = candidates[which % len(candidates)]
        liquidation = view.risk.liquidation_price
        assert liquidation is not None
        factor = 1 - beyond if view.position.side is Side.LONG else 1 + beyond
        market.set_price("BTC", max(liquidation * factor, 1.0))
    if _doomed(market):
        assert market._may_liquidate(account, 0.0)
