"""The engine on hand-built pools: bracket re-selection, hedge grouping, edge cases, ratios."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from monitor.domain.codec import state_from_json
from monitor.domain.errors import InvalidInput
from monitor.domain.margin import assess
from monitor.domain.model import AccountState, MarginMode, Position, PositionRisk, Side, Tier, Venue
from tests.domain.margin.oracle import cross_equity_and_margin, maintenance, pnl, tier_for
from tests.support.vectors import VECTOR_DIR, load

# Binance BTCUSDT-like brackets (the first five), deductions from the cum recursion.
FLOORS = (0.0, 50_000.0, 600_000.0, 3_000_000.0, 12_000_000.0)
RATES = (0.004, 0.005, 0.0065, 0.01, 0.02)


def brackets(scale: float = 1.0) -> tuple[Tier, ...]:
    tiers: list[Tier] = []
    deduction = 0.0
    for index, (floor, rate) in enumerate(zip(FLOORS, RATES, strict=True)):
        if index:
            deduction += floor * scale * (rate - RATES[index - 1])
        tiers.append(Tier(floor=floor * scale, cap=None, mmr=rate, deduction=deduction))
    return tuple(tiers)


def single(
    venue: Venue, side: Side, quantity: float, mark: float, wallet: float, **extra: object
) -> AccountState:
    position = Position(
        symbol="BTC",
        side=side,
        margin_mode=MarginMode.CROSS,
        quantity=quantity,
        entry_price=mark,
        mark_price=mark,
        tiers=extra.pop("tiers", brackets(1.0 if not venue.inverse else 1e-4)),  # type: ignore[arg-type]
        contract_size=float(extra.pop("contract_size", 1.0)),  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )
    return AccountState(venue=venue, wallet_balance=wallet, positions=(position,))


def notional(position: Position, venue: Venue, price: float) -> float:
    if venue.inverse:
        return position.quantity * position.contract_size / price
    return position.quantity * price


# (venue, side, quantity, mark, target liquidation price): in each case the notional at the target
# sits in a different bracket from the notional at the mark.
BRACKET_CASES = [
    pytest.param(Venue.BINANCE_USDM, Side.LONG, 100.0, 31_000.0, 28_000.0, id="linear-long"),
    pytest.param(Venue.BINANCE_USDM, Side.SHORT, 18.0, 31_000.0, 36_000.0, id="linear-short"),
    pytest.param(Venue.BYBIT_LINEAR, Side.SHORT, 90.0, 30_000.0, 34_000.0, id="bybit-linear-short"),
    pytest.param(Venue.BINANCE_COINM, Side.LONG, 89_900.0, 31_000.0, 29_000.0, id="inverse-long"),
    pytest.param(Venue.BINANCE_COINM, Side.SHORT, 94_550.0, 31_000.0, 36_000.0, id="inverse-short"),
    pytest.param(
        Venue.BYBIT_INVERSE, Side.LONG, 89_900.0, 31_000.0, 29_000.0, id="bybit-inverse-long"
    ),
]


@pytest.mark.parametrize(("venue", "side", "quantity", "mark", "target"), BRACKET_CASES)
def test_bracket_is_the_one_holding_the_notional_at_the_liquidation_price(
    venue: Venue, side: Side, quantity: float, mark: float, target: float
) -> None:
    contract_size = 100.0 if venue.inverse else 1.0
    probe = single(venue, side, quantity, mark, 0.0, contract_size=contract_size)
    position = probe.positions[0]
    at_mark = tier_for(position.tiers, notional(position, venue, mark))
    at_target = tier_for(position.tiers, notional(position, venue, target))
    assert at_mark != at_target, "case does not cross a bracket floor"
    # The wallet that puts equity exactly at maintenance margin when the mark reaches `target`.
    wallet = maintenance(position, venue, target) - pnl(position, venue, target)
    state = replace(probe, wallet_balance=wallet)

    price = assess(state).positions[0].liquidation_price

    assert price == pytest.approx(target, rel=1e-12)
    # Keeping the mark's bracket would have put the price elsewhere.
    sign = side.sign
    if venue.inverse:
        size = quantity * contract_size
        mark_bracket_price = (
            size * (at_mark.mmr + sign) / (wallet + at_mark.deduction + sign * size / mark)
        )
    else:
        mark_bracket_price = (wallet + at_mark.deduction - sign * quantity * mark) / (
            quantity * at_mark.mmr - sign * quantity
        )
    assert abs(mark_bracket_price - target) > 1.0


def test_only_hedge_legs_share_a_price() -> None:
    vector = load(VECTOR_DIR / "binance_usdm_hedge_cross.json")
    hedged = state_from_json(vector["state"])
    together = assess(hedged).positions
    assert together[0].liquidation_price == together[1].liquidation_price

    apart_state = replace(
        hedged, positions=tuple(replace(p, hedge=False) for p in hedged.positions)
    )
    apart = assess(apart_state).positions
    long_price, short_price = apart[0].liquidation_price, apart[1].liquidation_price
    assert long_price is not None
    assert short_price is not None
    assert long_price < 30_000 < short_price
    # Each leg alone, the other held at its mark: equity meets margin at its own price.
    for index, price in ((0, long_price), (1, short_price)):
        marks = [p.mark_price for p in apart_state.positions]
        marks[index] = price
        equity, margin, gross = cross_equity_and_margin(apart_state, marks)
        assert abs(equity - margin) <= 1e-9 * gross


def test_hedge_margin_is_charged_on_both_legs_gross() -> None:
    state = state_from_json(load(VECTOR_DIR / "binance_usdm_hedge_cross.json")["state"])
    risk = assess(state)
    gross = sum(p.quantity * p.mark_price * p.tiers[0].mmr for p in state.positions)
    assert risk.maintenance_margin == pytest.approx(gross, rel=1e-12)


def test_fully_collateralised_long_has_no_liquidation_price() -> None:
    state = single(Venue.BINANCE_USDM, Side.LONG, 1.0, 100.0, 1_000.0)
    risk = assess(state)
    assert risk.positions[0].liquidation_price is None
    assert risk.positions[0].distance_to_liquidation is None
    assert risk.account_liquidation_move is None


def test_short_always_has_a_liquidation_price() -> None:
    state = single(Venue.BINANCE_USDM, Side.SHORT, 1.0, 100.0, 1_000_000.0)
    price = assess(state).positions[0].liquidation_price
    assert price is not None
    assert price > 100.0


def test_pool_below_maintenance_reports_zero_distance_and_zero_move() -> None:
    state = single(Venue.BINANCE_USDM, Side.LONG, 10.0, 30_000.0, 100.0)
    risk = assess(state)
    assert risk.margin_ratio is not None
    assert risk.margin_ratio < 1
    position = risk.positions[0]
    assert position.liquidation_price is not None
    assert position.liquidation_price > 30_000.0  # where it would be healthy again
    assert position.distance_to_liquidation == 0.0
    assert risk.account_liquidation_move == 0.0


def test_margin_jump_in_an_inconsistent_table_liquidates_at_the_floor() -> None:
    # The lower bracket charges more than the upper one at its floor: margin jumps up as the
    # notional falls below 1,000,000, so the long fails exactly there.
    floor = 1_000_000.0
    tiers = (Tier(0.0, floor, 0.05, 0.0), Tier(floor, None, 0.01, 0.0))
    quantity, mark = 40.0, 30_000.0
    position_at_floor = floor / quantity
    # Healthy just above the floor (upper bracket), failing just below (lower bracket).
    wallet = 0.03 * floor - quantity * (position_at_floor - mark)
    state = single(Venue.BINANCE_USDM, Side.LONG, quantity, mark, wallet, tiers=tiers)
    price = assess(state).positions[0].liquidation_price
    assert price == pytest.approx(position_at_floor, rel=1e-12)
    for nudge, healthy in ((1.0001, True), (0.9999, False)):
        equity, margin, _ = cross_equity_and_margin(state, [position_at_floor * nudge])
        assert (equity > margin) is healthy


def test_ratios_without_cross_positions_are_none() -> None:
    state = state_from_json(load(VECTOR_DIR / "binance_usdm_isolated_two_longs.json")["state"])
    risk = assess(state)
    assert (risk.margin_ratio, risk.exchange_margin_ratio, risk.account_liquidation_move) == (
        None,
        None,
        None,
    )
    for position in risk.positions:
        assert position.equity is not None
        assert position.margin_ratio is not None
        assert position.exchange_margin_ratio == pytest.approx(1 / position.margin_ratio)


def test_negative_equity_has_a_margin_ratio_but_no_exchange_ratio() -> None:
    state = single(Venue.BINANCE_USDM, Side.LONG, 10.0, 30_000.0, 100.0)
    state = replace(state, positions=(replace(state.positions[0], entry_price=31_000.0),))
    risk = assess(state)
    assert risk.equity < 0
    assert risk.margin_ratio is not None
    assert risk.margin_ratio < 0
    assert risk.exchange_margin_ratio is None


def test_bybit_fee_to_close_is_part_of_maintenance_margin() -> None:
    base = single(Venue.BYBIT_LINEAR, Side.LONG, 2.0, 20_000.0, 5_000.0, leverage=10.0)
    with_fee = replace(base, positions=(replace(base.positions[0], taker_fee=0.0006),))
    difference = (
        assess(with_fee).positions[0].maintenance_margin
        - assess(base).positions[0].maintenance_margin
    )
    bankruptcy = 20_000.0 * (1 - 1 / 10.0)
    assert difference == pytest.approx(2.0 * bankruptcy * 0.0006, rel=1e-12)
    binance = replace(with_fee, venue=Venue.BINANCE_USDM)
    assert (
        assess(binance).positions[0].maintenance_margin
        == assess(replace(base, venue=Venue.BINANCE_USDM)).positions[0].maintenance_margin
    )


def test_bybit_isolated_margin_is_valued_at_entry() -> None:
    state = state_from_json(load(VECTOR_DIR / "bybit_linear_isolated.json")["state"])
    moved = replace(
        state, positions=tuple(replace(p, mark_price=p.mark_price * 0.99) for p in state.positions)
    )
    before, after = assess(state), assess(moved)
    for a, b in zip(before.positions, after.positions, strict=True):
        assert a.maintenance_margin == b.maintenance_margin
        assert a.liquidation_price == b.liquidation_price


def test_unsorted_table_is_rejected_with_the_position_path() -> None:
    state = single(
        Venue.BINANCE_USDM, Side.LONG, 1.0, 100.0, 10.0, tiers=tuple(reversed(brackets()))
    )
    with pytest.raises(InvalidInput) as raised:
        assess(state)
    assert raised.value.path == "positions[0].tiers"


def test_position_risk_field_order_matches_the_engine_positional_call() -> None:
    # The engine builds PositionRisk positionally (twice as fast); new fields may only be appended.
    assert [field.name for field in fields(PositionRisk)][:11] == [
        "symbol",
        "side",
        "margin_mode",
        "notional",
        "unrealized_pnl",
        "maintenance_margin",
        "liquidation_price",
        "distance_to_liquidation",
        "equity",
        "margin_ratio",
        "exchange_margin_ratio",
    ]


def test_a_closed_position_has_no_margin_and_no_price() -> None:
    state = single(Venue.BINANCE_USDM, Side.LONG, 0.0, 100.0, 10.0)
    result = assess(state).positions[0]
    assert (result.maintenance_margin, result.unrealized_pnl, result.liquidation_price) == (
        0.0,
        0.0,
        None,
    )


@pytest.mark.parametrize(
    "change",
    [{"quantity": -1.0}, {"mark_price": 0.0}, {"entry_price": float("nan")}],
    ids=["negative-quantity", "zero-mark", "nan-entry"],
)
def test_impossible_positions_are_refused_not_priced(change: dict[str, float]) -> None:
    state = single(Venue.BINANCE_USDM, Side.LONG, 1.0, 100.0, 10.0)
    state = replace(state, positions=(replace(state.positions[0], **change),))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as raised:
        assess(state)
    assert raised.value.path == "positions[0]"


@pytest.mark.parametrize("venue", [Venue.BYBIT_LINEAR, Venue.BYBIT_INVERSE])
@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_fee_to_close_is_never_negative(venue: Venue, side: Side) -> None:
    state = single(venue, side, 10.0, 100.0, 1_000.0, leverage=0.5, taker_fee=0.00055)
    free = replace(state, positions=(replace(state.positions[0], taker_fee=0.0),))
    assert (
        assess(state).positions[0].maintenance_margin
        >= assess(free).positions[0].maintenance_margin
    )
