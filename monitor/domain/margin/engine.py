"""The margin engine: equity, maintenance margin, ratios and liquidation points of one margin pool."""

from __future__ import annotations

import math

from monitor.domain.errors import InvalidInput
from monitor.domain.margin.legs import Leg
from monitor.domain.margin.pool import assess_pool
from monitor.domain.margin.ratios import ratios
from monitor.domain.margin.solver import nearest_own_root, nearest_root
from monitor.domain.model import AccountRisk, AccountState, MarginMode
from monitor.domain.stops import judge_stops
from monitor.domain.volatility import assess_volatility


def assess(state: AccountState) -> AccountRisk:
    """Everything a trader needs to know about how close this pool is to liquidation.

    Cross pool: equity = wallet + Σ cross unrealized PnL, maintenance margin = Σ cross MM at the
    marks, both ratios, and the uniform move of all marks that liquidates it. Per position: PnL,
    MM, and the liquidation price (cross: every other mark held where it is; hedge legs of one
    symbol move together; the tier is the one holding the notional AT that price). A pool already
    at or below its maintenance margin reports distance 0 and account move 0, so alerts fire.
    A pooled account (several collateral coins, in USD) is assessed by `pool.assess_pool`.
    With the symbols' volatility in the state, the distances are also given in sigmas.
    """
    risk = _assess_margin(state)
    volatility = assess_volatility(state, risk) if state.volatility else None
    # Built once more with the stops and sigmas (not dataclasses.replace, twice: live marks
    # assess every account every second).
    return AccountRisk(
        risk.equity,
        risk.maintenance_margin,
        risk.margin_ratio,
        risk.exchange_margin_ratio,
        risk.account_liquidation_move,
        risk.positions,
        risk.collateral_values,
        volatility,
        judge_stops(state, risk),
    )


def _assess_margin(state: AccountState) -> AccountRisk:
    if state.collateral:
        return assess_pool(state)
    if state.venue_terms or state.liquidation_ratio != 1.0:
        raise InvalidInput(
            "collateral", "venue terms and a liquidation ratio need a pooled account's collateral"
        )
    venue = state.venue
    inverse = venue.inverse
    bybit = venue.exchange == "bybit"
    legs = []
    for number, position in enumerate(state.positions):
        try:
            legs.append(Leg(position, inverse, bybit))
        except InvalidInput as error:
            path = f"positions[{number}]" + (f".{error.path}" if error.path else "")
            raise InvalidInput(path, error.problem) from None
    pnl = [leg.unrealized_pnl for leg in legs]
    margin = [leg.maintenance_margin for leg in legs]
    cross = [i for i, leg in enumerate(legs) if leg.position.margin_mode is MarginMode.CROSS]
    equity = state.wallet_balance + sum((pnl[i] for i in cross), 0.0)
    maintenance = sum((margin[i] for i in cross), 0.0)
    surplus = equity - maintenance

    # Hedge legs of one symbol share a price; everything else is solved alone in the loop below.
    shared: dict[int, float | None] = {}
    for members in _hedge_groups(legs, cross):
        moving = [legs[i] for i in members]
        rest = surplus - sum(pnl[i] - margin[i] for i in members)
        root = nearest_root(rest, moving, [1.0] * len(moving), moving[0].x0, inverse)
        for i in members:
            shared[i] = root

    risks = []
    for i, leg in enumerate(legs):
        position = leg.position
        if position.margin_mode is MarginMode.ISOLATED:
            own_equity = (position.isolated_margin or 0.0) + pnl[i]
            root = nearest_own_root(position.isolated_margin or 0.0, leg, inverse)
            risks.append(leg.risk(root, own_equity - margin[i], inverse, own_equity))
            continue
        if i in shared:
            root = shared[i]
        else:
            root = nearest_own_root(surplus - pnl[i] + margin[i], leg, inverse)
        risks.append(leg.risk(root, surplus, inverse, None))

    ratio, exchange_ratio = ratios(equity, maintenance)
    return AccountRisk(
        equity=equity,
        maintenance_margin=maintenance,
        margin_ratio=ratio,
        exchange_margin_ratio=exchange_ratio,
        account_liquidation_move=_account_move(
            state.wallet_balance, [legs[i] for i in cross], surplus, inverse
        ),
        positions=tuple(risks),
    )


def _hedge_groups(legs: list[Leg], cross: list[int]) -> list[list[int]]:
    """Cross hedge legs that share one liquidation price, grouped by symbol."""
    hedged: dict[str, list[int]] = {}
    for i in cross:
        position = legs[i].position
        if position.hedge:
            hedged.setdefault(position.symbol, []).append(i)
    return list(hedged.values())


def _account_move(
    wallet: float, cross_legs: list[Leg], surplus: float, inverse: bool
) -> float | None:
    """Uniform relative move m of every mark (mark*(1+m)) that brings cross equity to maintenance margin."""
    if not cross_legs:
        return None
    if surplus <= 0.0:
        return 0.0
    # On the move axis a leg sits at x0*z, with z = 1+m for linear and 1/(1+m) for inverse.
    root = nearest_root(wallet, cross_legs, [leg.x0 for leg in cross_legs], 1.0, inverse)
    if root is None or (inverse and root <= 0.0):
        return None
    move = (1.0 / root if inverse else root) - 1.0
    return move if math.isfinite(move) else None
