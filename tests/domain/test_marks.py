"""Live marks on the last fetched state: only prices move; the figures are the engine's on the
state the venue would report at those marks."""

from __future__ import annotations

from dataclasses import MISSING, fields, replace

import pytest

from monitor.domain.margin import assess
from monitor.domain.marks import with_marks
from monitor.domain.model import (
    AccountState,
    Collateral,
    ExchangeAccountFigures,
    MarginMode,
    PoolModel,
    Position,
    Side,
    Tier,
    Venue,
    VenueTerm,
)
from monitor.domain.volatility import SymbolVolatility
from tests.domain.margin.test_pool import coin, perp, pool

TIERS = (Tier(0.0, None, 0.005),)


def _two_longs(btc: float, eth: float) -> AccountState:
    return AccountState(
        Venue.BINANCE_USDM,
        1_500.0,
        (
            Position("BTCUSDT", Side.LONG, MarginMode.CROSS, 0.5, 60_000.0, btc, TIERS),
            Position("ETHUSDT", Side.LONG, MarginMode.CROSS, 5.0, 3_000.0, eth, TIERS),
        ),
    )


def test_a_live_mark_gives_the_figures_of_the_state_fetched_at_that_mark() -> None:
    fetched = _two_longs(60_000.0, 3_000.0)
    live = with_marks(fetched, {"BTCUSDT": 58_000.0, "SOLUSDT": 150.0})
    assert assess(live) == assess(_two_longs(58_000.0, 3_000.0))
    assert live.positions[1] is fetched.positions[1]  # no mark for ETH: as fetched
    assert live.assumptions == ()


def test_unchanged_marks_return_the_same_state() -> None:
    fetched = _two_longs(60_000.0, 3_000.0)
    assert with_marks(fetched, {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0}) is fetched
    assert with_marks(fetched, {"BTCUSDT": 0.0}) is fetched  # never a price of zero


def test_pooled_collateral_moves_with_the_mark_of_its_coin_and_says_when_it_cannot() -> None:
    fetched = pool(
        Venue.BYBIT_LINEAR,
        [coin("USDT", 1_000.0), coin("BTC", 0.1, 60_000.0), coin("ETH", 1.0, 3_000.0)],
        [perp("BTCUSDT", Side.LONG, 0.5, 60_000.0, 60_000.0)],
    )
    live = with_marks(fetched, {"BTCUSDT": 54_000.0})
    prices = {c.asset: c.price for c in live.collateral}
    assert prices["BTC"] == pytest.approx(54_000.0)  # -10 % with the BTC mark
    assert prices["USDT"] == 1.0
    assert prices["ETH"] == 3_000.0
    assert live.assumptions == (
        "ETH collateral valued at its price of the last full fetch (no live mark follows it)",
    )
    expected = pool(
        Venue.BYBIT_LINEAR,
        [coin("USDT", 1_000.0), coin("BTC", 0.1, 54_000.0), coin("ETH", 1.0, 3_000.0)],
        [perp("BTCUSDT", Side.LONG, 0.5, 60_000.0, 54_000.0)],
    )
    assert assess(live).equity == pytest.approx(assess(expected).equity)


def test_a_position_at_another_mark_keeps_every_other_field() -> None:
    """`Position.at_mark` lists the fields by hand (it is on the live path): a field it forgot
    would come back at its default, which this sample's values all differ from."""
    sample = Position(
        "BTCUSD_PERP",
        Side.SHORT,
        MarginMode.ISOLATED,
        600.0,
        61_000.0,
        60_000.0,
        TIERS,
        contract_size=100.0,
        leverage=20.0,
        isolated_margin=0.05,
        taker_fee=0.0005,
        hedge=True,
        exchange_liquidation_price=63_000.0,
        exchange_maintenance_margin=0.004,
        settle_asset="BTC",
        underlying="BTC",
    )
    defaults = {f.name: f.default for f in fields(Position) if f.default is not MISSING}
    assert all(getattr(sample, name) != default for name, default in defaults.items())
    assert sample.at_mark(58_500.0) == replace(sample, mark_price=58_500.0)


def test_an_account_at_live_marks_keeps_every_other_field() -> None:
    """`AccountState.at_marks` lists the fields by hand too: every field of this sample differs
    from its default, and all but the three re-priced ones must come through."""
    sample = AccountState(
        Venue.BINANCE_USDM,
        1_000.0,
        (perp("BTCUSDT", Side.LONG, 0.5, 60_000.0, 59_000.0),),
        asset="USD",
        reported=ExchangeAccountFigures(equity=1_000.0),
        model=PoolModel.MULTI_ASSETS,
        collateral=(Collateral("USDT", 1_000.0, 1.0, stable=True),),
        liquidation_ratio=1.05,
        venue_terms=(VenueTerm("options", maintenance_margin=5.0),),
        assumptions=("a stated assumption",),
        volatility=(SymbolVolatility("BTCUSDT", 0.01, 0.05),),
        protective_orders=(),
    )
    defaults = {
        f.name: f.default_factory() if f.default_factory is not MISSING else f.default
        for f in fields(AccountState)
        if f.default is not MISSING or f.default_factory is not MISSING
    }
    assert all(getattr(sample, name) != default for name, default in defaults.items())
    positions = (perp("BTCUSDT", Side.LONG, 0.5, 60_000.0, 58_000.0),)
    collateral = (Collateral("USDT", 1_000.0, 1.0, stable=True),)
    assert sample.at_marks(positions, collateral, ("another",)) == replace(
        sample, positions=positions, collateral=collateral, assumptions=("another",)
    )
