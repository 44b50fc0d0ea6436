"""A plain, slow statement of pooled-account equity and maintenance margin, written independently of
the engine's segment walk: every coin valued tranche by tranche at the prices given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from monitor.domain.model import AccountState, Collateral, MarginMode
from tests.domain.margin.oracle import maintenance, pnl


def coin_value(coin: Collateral, equity: float) -> float:
    """Coin units after value ratios: liabilities at the liability rate, tranches at their ratio."""
    if equity < 0:
        return equity * coin.liability_rate
    total = 0.0
    for index, tier in enumerate(coin.ratios):
        upper = coin.ratios[index + 1].floor if index + 1 < len(coin.ratios) else float("inf")
        if equity > tier.floor:
            total += (min(equity, upper) - tier.floor) * tier.ratio
    return total


def pooled_surplus(
    state: AccountState, marks: Sequence[float], prices: Mapping[str, float] | None = None
) -> tuple[float, float, float]:
    """(equity - liquidation_ratio x MM, equity, gross size) with positions at `marks` and coins
    at `prices` (default: their own)."""
    prices = prices or {}
    coin_equity = {coin.asset: coin.quantity for coin in state.collateral}
    margin = 0.0
    gross = 0.0
    rates = {coin.asset: coin for coin in state.collateral}
    for position, mark in zip(state.positions, marks, strict=True):
        if position.margin_mode is not MarginMode.CROSS:
            continue
        asset = position.settle_asset or state.asset
        position_pnl = pnl(position, state.venue, mark)
        coin_equity[asset] += position_pnl
        coin = rates[asset]
        price = prices.get(asset, coin.price)
        position_margin = maintenance(position, state.venue, mark) * price * coin.liability_rate
        margin += position_margin
        gross += abs(position_pnl) * price + position_margin
    equity = 0.0
    for coin in state.collateral:
        price = prices.get(coin.asset, coin.price)
        value = coin_value(coin, coin_equity[coin.asset]) * price
        equity += value
        gross += abs(coin.quantity) * price
    for term in state.venue_terms:
        equity += term.equity
        margin += term.maintenance_margin
        gross += abs(term.equity) + abs(term.maintenance_margin)
    return equity - state.liquidation_ratio * margin, equity, gross
