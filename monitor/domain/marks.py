"""Live marks applied to the last full state of an account: between two fetches of positions and
balances, only the prices move, so the risk now is the last state re-run at today's marks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from monitor.domain.model import AccountState, Collateral


def with_marks(state: AccountState, marks: Mapping[str, float]) -> AccountState:
    """The account as it was last fetched, with the mark of every position whose symbol is in
    `marks` replaced by the live one: what the trader's margin looks like at the current prices
    if nothing else changed. A coin held as collateral in a pooled account moves with the mark
    of a position on it (its index and the mark move together); a coin with no such position
    keeps the price of the last fetch, and the state says so among its assumptions."""
    moved: dict[str, float] = {}
    positions = []
    changed = False
    for position in state.positions:
        mark = marks.get(position.symbol)
        if mark is None or mark <= 0 or mark == position.mark_price:
            positions.append(position)
            continue
        changed = True
        if position.underlying is not None and position.mark_price > 0:
            moved.setdefault(position.underlying, mark / position.mark_price)
        positions.append(position.at_mark(mark))
    if not changed:
        return state
    collateral: list[Collateral] = []
    unmoved: list[str] = []
    for coin in state.collateral:
        if coin.stable:
            collateral.append(coin)
        elif coin.asset in moved:
            collateral.append(replace(coin, price=coin.price * moved[coin.asset]))
        else:
            collateral.append(coin)
            if coin.quantity:
                unmoved.append(coin.asset)
    assumptions = state.assumptions
    if unmoved:
        assumptions = (
            *assumptions,
            f"{', '.join(sorted(unmoved))} collateral valued at its price of the last full "
            "fetch (no live mark follows it)",
        )
    return state.at_marks(tuple(positions), tuple(collateral), assumptions)
