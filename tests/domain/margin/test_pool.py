"""The engine on pooled accounts (several collateral coins in USD): published cases and properties."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.domain.errors import InvalidInput
from monitor.domain.margin import assess
from monitor.domain.model import (
    AccountState,
    Collateral,
    CollateralTier,
    MarginMode,
    PoolModel,
    Position,
    Side,
    Tier,
    Venue,
    VenueTerm,
)
from tests.domain.margin.pool_oracle import pooled_surplus
from tests.domain.margin.strategies import tables

EXACT = 1e-9
BETWEEN = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999)
FLAT_05 = (Tier(0.0, None, 0.005, 0.0),)
STABLE = {"USDT", "USDC"}


def coin(asset: str, quantity: float, price: float = 1.0, **extra: object) -> Collateral:
    return Collateral(asset, quantity, price, stable=asset in STABLE, **extra)  # type: ignore[arg-type]


def perp(
    symbol: str, side: Side, quantity: float, entry: float, mark: float, **extra: object
) -> Position:
    settle = "USDC" if symbol.endswith("USDC") else "USDT"
    return Position(
        symbol=symbol,
        side=side,
        margin_mode=MarginMode.CROSS,
        quantity=quantity,
        entry_price=entry,
        mark_price=mark,
        tiers=extra.pop("tiers", FLAT_05),  # type: ignore[arg-type]
        settle_asset=settle,
        underlying=symbol.removesuffix(settle),
        **extra,  # type: ignore[arg-type]
    )


def pool(
    venue: Venue, collateral: list[Collateral], positions: list[Position], **extra: object
) -> AccountState:
    return AccountState(
        venue=venue,
        wallet_balance=0.0,
        positions=tuple(positions),
        asset="USD",
        collateral=tuple(collateral),
        **{"model": PoolModel.UNIFIED, **extra},  # type: ignore[arg-type]
    )


def test_usdc_collateral_keeps_a_usdt_long_far_from_liquidation() -> None:
    # 10,000 USDC behind a BTCUSDT long 0.5 @ 60,000, mark 58,000 (unified-accounts.md): the USDT
    # loss is a liability at 100 %, so 10,000 + 0.5(P - 60,000) = 0.5 P x 0.5 % gives P = 40,201.005.
    state = pool(
        Venue.BYBIT_LINEAR,
        [coin("USDC", 10_000.0), coin("USDT", 0.0)],
        [perp("BTCUSDT", Side.LONG, 0.5, 60_000.0, 58_000.0)],
    )
    risk = assess(state)
    assert risk.equity == pytest.approx(9_000.0)
    assert risk.maintenance_margin == pytest.approx(145.0)
    assert risk.positions[0].liquidation_price == pytest.approx(20_000 / 0.4975, rel=1e-12)
    assert risk.collateral_values == pytest.approx((10_000.0, -1_000.0))


def test_btc_collateral_behind_a_btc_long_is_exposed_twice() -> None:
    usdt = [coin("USDT", 20_000.0), perp("BTCUSDT", Side.LONG, 1.0, 60_000.0, 60_000.0)]
    alone = assess(pool(Venue.BYBIT_LINEAR, [usdt[0]], [usdt[1]]))  # type: ignore[list-item]
    # Swap the USDT for BTC of the same collateral value (0.95 ratio): same equity today ...
    btc = coin("BTC", 20_000 / 60_000 / 0.95, 60_000.0, ratios=(CollateralTier(0.0, 0.95),))
    both = assess(pool(Venue.BYBIT_LINEAR, [btc, coin("USDT", 0.0)], [usdt[1]]))  # type: ignore[list-item]
    assert both.equity == pytest.approx(alone.equity)
    # ... but the collateral falls with the mark, so liquidation is much nearer.
    assert alone.positions[0].liquidation_price == pytest.approx(40_000 / 0.995)
    price = both.positions[0].liquidation_price
    assert price is not None
    assert price > 45_000
    # at that price: BTC worth 20,000 * P/60,000; USDT equity 1*(P - 60,000); MM 0.005 P
    assert 20_000 * price / 60_000 + (price - 60_000) == pytest.approx(0.005 * price)
    # The account move moves the collateral too: it equals the position's own move here.
    assert both.account_liquidation_move == pytest.approx(price / 60_000 - 1)


def test_binance_multi_assets_faq_example() -> None:
    # Binance FAQ c983a9268cfa4e70a4916c276bb3b7bc: USDT 200 at bid 0.9801 (ask 0.99495), USDC 220
    # at 1; BTCUSDT 0.5 @ 20,000 MMR 0.8 %, ETHUSDC 20 @ 600 MMR 1 % -> 416.02, 199.596, 0.47977.
    state = pool(
        Venue.BINANCE_USDM,
        [
            coin("USDT", 200.0, ratios=(CollateralTier(0.0, 0.9801),), liability_rate=0.99495),
            coin("USDC", 220.0),
        ],
        [
            perp("BTCUSDT", Side.LONG, 0.5, 20_000.0, 20_000.0, tiers=(Tier(0.0, None, 0.008),)),
            perp("ETHUSDC", Side.LONG, 20.0, 600.0, 600.0, tiers=(Tier(0.0, None, 0.01),)),
        ],
        model=PoolModel.MULTI_ASSETS,
    )
    risk = assess(state)
    assert risk.equity == pytest.approx(416.02, rel=1e-12)
    assert risk.maintenance_margin == pytest.approx(199.596, rel=1e-12)
    # Binance prints the ratio truncated to five places: 0.4797750... -> 0.47977.
    assert risk.exchange_margin_ratio is not None
    assert int(risk.exchange_margin_ratio * 1e5) == 47_977


def test_tiered_collateral_is_valued_tranche_by_tranche() -> None:
    # Bybit's illustration: BTC 0-10 at 0.98, 10-20 at 0.95, 20-30 at 0.9 ... > 50 at 0.
    tiers = tuple(
        CollateralTier(floor, ratio)
        for floor, ratio in ((0, 0.98), (10, 0.95), (20, 0.9), (30, 0.85), (40, 0.8), (50, 0.0))
    )
    state = pool(
        Venue.BYBIT_LINEAR, [coin("BTC", 25.0, 100.0, ratios=tiers), coin("USDT", 0.0)], []
    )
    assert assess(state).equity == pytest.approx((10 * 0.98 + 10 * 0.95 + 5 * 0.9) * 100)
    huge = replace(state, collateral=(coin("BTC", 60.0, 100.0, ratios=tiers), coin("USDT", 0.0)))
    assert assess(huge).equity == pytest.approx((9.8 + 9.5 + 9 + 8.5 + 8) * 100)


def test_portfolio_margin_liquidates_at_its_own_ratio_and_counts_venue_terms() -> None:
    base = pool(
        Venue.BINANCE_USDM,
        [coin("USDT", 1_000.0)],
        [perp("BTCUSDT", Side.LONG, 1.0, 50_000.0, 50_000.0)],
    )
    plain = assess(base)
    pm = assess(
        replace(
            base,
            model=PoolModel.PORTFOLIO,
            liquidation_ratio=1.05,
            venue_terms=(VenueTerm("margin loans (venue figure)", maintenance_margin=10.0),),
        )
    )
    assert pm.maintenance_margin == pytest.approx(plain.maintenance_margin + 10.0)
    price = pm.positions[0].liquidation_price
    assert price is not None
    # 1,000 + (P - 50,000) = 1.05 (0.005 P + 10)
    assert 1_000 + price - 50_000 == pytest.approx(1.05 * (0.005 * price + 10))


def test_a_settlement_coin_missing_from_collateral_is_refused_by_path() -> None:
    state = pool(
        Venue.BYBIT_LINEAR, [coin("USDT", 10.0)], [perp("ETHUSDC", Side.LONG, 1.0, 1.0, 1.0)]
    )
    with pytest.raises(
        InvalidInput, match=r"positions\[0\]\.settle_asset: 'USDC' is not in collateral"
    ):
        assess(state)


def test_inverse_contracts_are_not_pooled() -> None:
    state = pool(Venue.BYBIT_INVERSE, [coin("USDT", 10.0)], [])
    with pytest.raises(InvalidInput, match="own coin"):
        assess(state)


@st.composite
def pooled_states(draw: st.DrawFn) -> AccountState:
    """Random pooled accounts: USDT/USDC (sometimes borrowed), BTC/ETH collateral with tiers,
    long and short perpetuals on BTC/ETH/SOL settled in USDT or USDC, sometimes hedged."""
    prices = {
        "BTC": draw(st.floats(1_000, 100_000)),
        "ETH": draw(st.floats(100, 5_000)),
        "SOL": draw(st.floats(1, 500)),
    }
    collateral = [
        coin(
            "USDT",
            draw(st.floats(-5_000, 50_000)),
            draw(st.floats(0.98, 1.02)),
            ratios=(CollateralTier(0.0, draw(st.floats(0.9, 1.0))),),
            liability_rate=draw(st.floats(1.0, 1.02)),
        ),
        coin("USDC", draw(st.floats(-5_000, 50_000)), 1.0),
    ]
    for asset in ("BTC", "ETH"):
        if draw(st.booleans()):
            first = draw(st.floats(0.5, 50))
            ratios = (
                CollateralTier(0.0, draw(st.floats(0.5, 1.0))),
                CollateralTier(first, draw(st.floats(0.0, 0.9))),
            )
            collateral.append(coin(asset, draw(st.floats(-2, 20)), prices[asset], ratios=ratios))
    positions = []
    marks: dict[str, float] = {}
    for _ in range(draw(st.integers(1, 5))):
        underlying = draw(st.sampled_from(sorted(prices)))
        settle = draw(st.sampled_from(["USDT", "USDC"]))
        # One mark per symbol, as on the venue (hedge legs share it).
        mark = marks.setdefault(
            underlying + settle, prices[underlying] * draw(st.floats(0.99, 1.01))
        )
        quantity = draw(st.floats(0.01, 50_000)) / mark
        positions.append(
            Position(
                symbol=underlying + settle,
                side=draw(st.sampled_from(list(Side))),
                margin_mode=MarginMode.CROSS,
                quantity=quantity,
                entry_price=mark * draw(st.floats(0.7, 1.3)),
                mark_price=mark,
                tiers=draw(tables(quantity * mark)),
                settle_asset=settle,
                underlying=underlying,
                leverage=draw(st.floats(1, 50)),
                taker_fee=draw(st.sampled_from([0.0, 0.00055])),
                hedge=draw(st.booleans()),
            )
        )
    venue = draw(st.sampled_from([Venue.BINANCE_USDM, Venue.BYBIT_LINEAR]))
    factor = draw(st.sampled_from([1.0, 1.05]))
    return pool(venue, collateral, positions, liquidation_ratio=factor)


def _moved(state: AccountState, members: list[int], price: float) -> tuple[float, float]:
    """Surplus with `members` at `price` and collateral of their underlying moved with them."""
    first = state.positions[members[0]]
    marks = [p.mark_price for p in state.positions]
    for index in members:
        marks[index] = price
    prices = {}
    for held in state.collateral:
        if held.asset == first.underlying and not held.stable:
            prices[held.asset] = held.price * price / first.mark_price
    surplus, _, gross = pooled_surplus(state, marks, prices)
    return surplus, gross


def _groups(state: AccountState) -> list[list[int]]:
    groups: dict[object, list[int]] = {}
    for index, position in enumerate(state.positions):
        key: object = ("hedge", position.symbol) if position.hedge else index
        groups.setdefault(key, []).append(index)
    return list(groups.values())


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(pooled_states())
def test_pooled_liquidation_price_is_where_equity_meets_margin_nearest_the_mark(
    state: AccountState,
) -> None:
    risk = assess(state)
    surplus, equity, _ = pooled_surplus(state, [p.mark_price for p in state.positions])
    assert risk.equity == pytest.approx(equity, rel=1e-12, abs=1e-9)
    for members in _groups(state):
        price = risk.positions[members[0]].liquidation_price
        mark = state.positions[members[0]].mark_price
        if price is None:
            if surplus > 0:
                for far in (mark * 1e-6, mark * 1e6):
                    assert _moved(state, members, far)[0] > 0, far
            continue
        gap, scale = _moved(state, members, price)
        assert abs(gap) <= EXACT * scale, (gap, scale)
        if surplus <= 0:
            continue
        for fraction in BETWEEN:
            assert _moved(state, members, mark + (price - mark) * fraction)[0] > 0, fraction
        distance = abs(price - mark) / mark
        for fraction in BETWEEN[1:]:
            other = mark * (1 - (distance if price > mark else -distance) * fraction)
            if other > 0:
                assert _moved(state, members, other)[0] > 0, ("other side", fraction)


def _after_move(state: AccountState, move: float) -> tuple[float, float]:
    prices = {c.asset: c.price * (1 + move) for c in state.collateral if not c.stable}
    surplus, _, gross = pooled_surplus(
        state, [p.mark_price * (1 + move) for p in state.positions], prices
    )
    return surplus, gross


@PROPERTY
@given(pooled_states())
def test_pooled_account_move_moves_marks_and_collateral_together(state: AccountState) -> None:
    move = assess(state).account_liquidation_move
    healthy, _ = _after_move(state, 0.0)
    if healthy <= 0:
        assert move == 0.0
        return
    if move is None:
        for far in (-1 + 1e-6, 1e6):
            assert _after_move(state, far)[0] > 0, far
        return
    gap, scale = _after_move(state, move)
    representation = 4 * 2.0**-52 * scale / (1 + move)
    assert abs(gap) <= EXACT * scale + representation, (gap, scale)
    for fraction in BETWEEN:
        assert _after_move(state, move * fraction)[0] > 0, fraction
        other = -move * fraction
        if other > -1:
            assert _after_move(state, other)[0] > 0, ("other side", fraction)
