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
    # One pass: each leg, and the cross pool's sums in the order `sum` would add them.
    legs = []
    cross_legs = []
    hedged: dict[str, list[Leg]] = {}
    cross_pnl = maintenance = 0.0
    for number, position in enumerate(state.positions):
        try:
            leg = Leg(position, inverse, bybit)
        except InvalidInput as error:
            path = f"positions[{number}]" + (f".{error.path}" if error.path else "")
            raise InvalidInput(path, error.problem) from None
        legs.append(leg)
        if position.margin_mode is MarginMode.CROSS:
            cross_legs.append(leg)
            cross_pnl += leg.unrealized_pnl
            maintenance += leg.maintenance_margin
            if position.hedge:
                hedged.setdefault(position.symbol, []).append(leg)
    equity = state.wallet_balance + cross_pnl
    surplus = equity - maintenance

    # Hedge legs of one symbol share a price; everything else is solved alone in the loop below.
    shared: dict[Leg, float | None] = {}
    for moving in hedged.values():
        rest = surplus - sum(leg.unrealized_pnl - leg.maintenance_margin for leg in moving)
        root = nearest_root(rest, moving, [1.0] * len(moving), moving[0].x0, inverse)
        for leg in moving:
            shared[leg] = root

    risks = []
    for leg in legs:
        position = leg.position
        pnl, margin = leg.unrealized_pnl, leg.maintenance_margin
        if position.margin_mode is MarginMode.ISOLATED:
            own_equity = (position.isolated_margin or 0.0) + pnl
            root = nearest_own_root(position.isolated_margin or 0.0, leg, inverse)
            risks.append(leg.risk(root, own_equity - margin, inverse, own_equity))
            continue
        if leg in shared:
            root = shared[leg]
        else:
            root = nearest_own_root(surplus - pnl + margin, leg, inverse)
        risks.append(leg.risk(root, surplus, inverse, None))

    ratio, exchange_ratio = ratios(equity, maintenance)
    return AccountRisk(
        equity=equity,
        maintenance_margin=maintenance,
        margin_ratio=ratio,
        exchange_margin_ratio=exchange_ratio,
        account_liquidation_move=_account_move(state.wallet_balance, cross_legs, surplus, inverse),
        positions=tuple(risks),
    )


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
