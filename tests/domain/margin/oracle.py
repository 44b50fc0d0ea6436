"""A deliberately plain reference for equity and maintenance margin at arbitrary marks.

It shares no code with the engine: the tests use it to check that the engine's liquidation
prices and account moves really are where equity meets maintenance margin.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.domain.model import AccountState, MarginMode, Position, Tier, Venue


def tier_for(tiers: Sequence[Tier], notional: float) -> Tier:
    """The last tier whose floor is at or below the notional (the first tier below every floor)."""
    chosen = tiers[0]
    for tier in tiers:
        if tier.floor <= notional:
            chosen = tier
    return chosen


def pnl(position: Position, venue: Venue, mark: float) -> float:
    """Unrealized PnL at `mark`."""
    sign = 1 if position.side.value == "long" else -1
    if venue.inverse:
        contracts_value = position.quantity * position.contract_size
        return sign * contracts_value * (1 / position.entry_price - 1 / mark)
    return sign * position.quantity * (mark - position.entry_price)


def fee_to_close(position: Position, venue: Venue) -> float:
    """Bybit's taker fee on the bankruptcy value; zero elsewhere."""
    if venue.exchange != "bybit" or position.taker_fee == 0:
        return 0.0
    sign = 1 if position.side.value == "long" else -1
    share = 1 / position.leverage if position.leverage else 0.0
    if venue.inverse:
        if 1 + sign * share <= 0:
            return 0.0  # a short below 1x never goes bankrupt
        bankruptcy = position.entry_price / (1 + sign * share)
        return position.quantity * position.contract_size / bankruptcy * position.taker_fee
    bankruptcy = max(position.entry_price * (1 - sign * share), 0.0)
    return position.quantity * bankruptcy * position.taker_fee


def maintenance(position: Position, venue: Venue, mark: float) -> float:
    """Maintenance margin at `mark` (Bybit isolated: at entry value)."""
    price = mark
    if venue.exchange == "bybit" and position.margin_mode is MarginMode.ISOLATED:
        price = position.entry_price
    if venue.inverse:
        notional = position.quantity * position.contract_size / price
    else:
        notional = position.quantity * price
    tier = tier_for(position.tiers, notional)
    return notional * tier.mmr - tier.deduction + fee_to_close(position, venue)


def cross_equity_and_margin(
    state: AccountState, marks: Sequence[float]
) -> tuple[float, float, float]:
    """Cross pool equity, maintenance margin and gross size with every position at the given marks.

    The gross size (|wallet| + sum of |PnL| + sum of MM) is the scale for "equal to 1e-9
    relative": equity and margin are differences of terms that large, so floating-point
    rounding is relative to it, not to their (possibly tiny) values.
    """
    equity = state.wallet_balance
    margin = 0.0
    gross = abs(state.wallet_balance)
    for position, mark in zip(state.positions, marks, strict=True):
        if position.margin_mode is MarginMode.CROSS:
            position_pnl = pnl(position, state.venue, mark)
            position_margin = maintenance(position, state.venue, mark)
            equity += position_pnl
            margin += position_margin
            gross += abs(position_pnl) + abs(position_margin)
    return equity, margin, gross


def isolated_equity_and_margin(
    position: Position, venue: Venue, mark: float
) -> tuple[float, float, float]:
    """An isolated position's own equity, maintenance margin and gross size at `mark`."""
    assert position.isolated_margin is not None
    position_pnl = pnl(position, venue, mark)
    position_margin = maintenance(position, venue, mark)
    gross = abs(position.isolated_margin) + abs(position_pnl) + abs(position_margin)
    return position.isolated_margin + position_pnl, position_margin, gross
