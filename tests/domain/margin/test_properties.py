"""Properties of the engine on random pools, checked against the plain oracle (tests.domain.margin.oracle)."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.domain.margin import assess
from monitor.domain.model import AccountState, MarginMode, Side
from tests.domain.margin.oracle import cross_equity_and_margin, isolated_equity_and_margin
from tests.domain.margin.strategies import pools

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# Points strictly between the mark and the liquidation point, as fractions of the way to it.
BETWEEN = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999)
# "Equal" for equity vs maintenance margin: relative to the gross size of the pool's terms.
EXACT = 1e-9


def price_groups(state: AccountState) -> list[list[int]]:
    """Cross positions priced together: hedge legs of one symbol; every other position alone."""
    groups: dict[object, list[int]] = {}
    for index, position in enumerate(state.positions):
        key: object = index
        if position.margin_mode is MarginMode.CROSS and position.hedge:
            key = ("hedge", position.symbol)
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def surplus_at(state: AccountState, members: list[int], price: float) -> tuple[float, float]:
    """(equity - MM, scale) of the pool holding `members` when their marks sit at `price`."""
    first = state.positions[members[0]]
    if first.margin_mode is MarginMode.ISOLATED:
        equity, margin, gross = isolated_equity_and_margin(first, state.venue, price)
    else:
        marks = [p.mark_price for p in state.positions]
        for index in members:
            marks[index] = price
        equity, margin, gross = cross_equity_and_margin(state, marks)
    return equity - margin, gross


def cross_surplus_after_move(state: AccountState, move: float) -> tuple[float, float]:
    equity, margin, gross = cross_equity_and_margin(
        state, [p.mark_price * (1 + move) for p in state.positions]
    )
    return equity - margin, gross


@PROPERTY_SETTINGS
@given(pools())
def test_liquidation_price_is_the_nearest_point_where_equity_meets_margin(
    state: AccountState,
) -> None:
    risk = assess(state)
    for members in price_groups(state):
        price = risk.positions[members[0]].liquidation_price
        assert all(risk.positions[i].liquidation_price == price for i in members)
        mark = state.positions[members[0]].mark_price
        healthy, _ = surplus_at(state, members, mark)
        if price is None:
            if healthy > 0:
                for far in (mark * 1e-6, mark * 1e6):
                    assert surplus_at(state, members, far)[0] > 0, far
            continue
        gap, scale = surplus_at(state, members, price)
        assert abs(gap) <= EXACT * scale, (gap, scale)
        if healthy <= 0:
            continue
        for fraction in BETWEEN:
            between = mark + (price - mark) * fraction
            assert surplus_at(state, members, between)[0] > 0, fraction
        # Nothing closer on the other side of the mark either.
        distance = abs(price - mark) / mark
        for fraction in BETWEEN[1:]:
            other = mark * (1 - (distance if price > mark else -distance) * fraction)
            if other > 0:
                assert surplus_at(state, members, other)[0] > 0, ("other side", fraction)


@PROPERTY_SETTINGS
@given(pools())
def test_account_move_is_the_nearest_uniform_move_to_maintenance_margin(
    state: AccountState,
) -> None:
    risk = assess(state)
    move = risk.account_liquidation_move
    has_cross = any(p.margin_mode is MarginMode.CROSS for p in state.positions)
    if not has_cross:
        assert move is None
        return
    healthy, _ = cross_surplus_after_move(state, 0.0)
    if healthy <= 0:
        assert move == 0.0
        return
    if move is None:
        for far in (-1 + 1e-6, 1e6):
            assert cross_surplus_after_move(state, far)[0] > 0, far
        return
    assert move > -1
    gap, scale = cross_surplus_after_move(state, move)
    # m itself is a double: its last bit moves every mark by about 2^-52/(1+m) relative, which
    # matters only for moves within a hair of -100 % (a wildly over-collateralised pool).
    representation = 4 * 2.0**-52 * scale / (1 + move)
    assert abs(gap) <= EXACT * scale + representation, (gap, scale)
    for fraction in BETWEEN:
        assert cross_surplus_after_move(state, move * fraction)[0] > 0, fraction
        other = -move * fraction
        if other > -1:
            assert cross_surplus_after_move(state, other)[0] > 0, ("other side", fraction)


@PROPERTY_SETTINGS
@given(pools(), st.integers(0, 2**32))
def test_results_do_not_depend_on_position_order(state: AccountState, seed: int) -> None:
    order = list(range(len(state.positions)))
    random.Random(seed).shuffle(order)
    shuffled = AccountState(
        venue=state.venue,
        wallet_balance=state.wallet_balance,
        positions=tuple(state.positions[i] for i in order),
    )
    original, reordered = assess(state), assess(shuffled)

    def close(a: float | None, b: float | None) -> bool:
        if a is None or b is None:
            return a is b
        return abs(a - b) <= EXACT * max(abs(a), abs(b), 1e-300) + 1e-12

    assert close(original.account_liquidation_move, reordered.account_liquidation_move)
    assert close(original.equity, reordered.equity)
    for new_index, old_index in enumerate(order):
        before, after = original.positions[old_index], reordered.positions[new_index]
        assert close(before.liquidation_price, after.liquidation_price)
        assert close(before.maintenance_margin, after.maintenance_margin)


@PROPERTY_SETTINGS
@given(pools())
def test_healthy_long_liquidates_below_its_mark_and_short_above(state: AccountState) -> None:
    risk = assess(state)
    for position, result in zip(state.positions, risk.positions, strict=True):
        if position.hedge or result.liquidation_price is None:
            continue
        members = [state.positions.index(position)]
        if surplus_at(state, members, position.mark_price)[0] <= 0:
            continue
        if position.side is Side.LONG:
            assert result.liquidation_price < position.mark_price
        else:
            assert result.liquidation_price > position.mark_price
        assert (
            result.distance_to_liquidation
            == abs(position.mark_price - result.liquidation_price) / position.mark_price
        )


@PROPERTY_SETTINGS
@given(pools(rough=True))
def test_inconsistent_tables_liquidate_at_the_first_failing_price(state: AccountState) -> None:
    # Margin may jump at a floor, so equity need not equal margin anywhere: the liquidation price
    # is then the floor where the pool first fails. Healthy all the way to it, failing just past it.
    risk = assess(state)
    for members in price_groups(state):
        price = risk.positions[members[0]].liquidation_price
        mark = state.positions[members[0]].mark_price
        if surplus_at(state, members, mark)[0] <= 0:
            continue
        if price is None:
            for far in (mark * 1e-6, mark * 1e6):
                assert surplus_at(state, members, far)[0] > 0, far
            continue
        for fraction in BETWEEN:
            assert surplus_at(state, members, mark + (price - mark) * fraction)[0] > 0, fraction
        beyond = price * (1 + (1e-9 if price > mark else -1e-9))
        gap, scale = surplus_at(state, members, beyond)
        assert gap <= EXACT * scale, (gap, scale)


@PROPERTY_SETTINGS
@given(pools(rough=True))
def test_inconsistent_tables_account_move(state: AccountState) -> None:
    move = assess(state).account_liquidation_move
    if move is None or move == 0.0:
        return
    for fraction in BETWEEN:
        assert cross_surplus_after_move(state, move * fraction)[0] > 0, fraction
    if 1 + move == 0.0:
        # A root a rounding error above price zero (a 1x long whose equity reaches zero only
        # there) reads as -100 %: no price lies beyond it to check.
        return
    gap, scale = cross_surplus_after_move(state, move * (1 + 1e-9))
    representation = 4 * 2.0**-52 * scale / (1 + move)
    assert gap <= EXACT * scale + representation, (gap, scale)
