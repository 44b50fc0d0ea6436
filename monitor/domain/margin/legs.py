"""One position reduced to straight lines: its PnL and maintenance margin as functions of one price axis.

Linear contracts are linear in the price P; inverse contracts are linear in 1/P (PnL
`s·Q·CM·(1/EP - 1/P)` and notional `Q·CM/P`). So every position is written on an axis `x`
(`x = P` for linear, `x = 1/P` for inverse) as

    unrealized PnL(x)      = alpha + beta·x
    notional(x)            = gamma·x
    maintenance margin(x)  = mmr_k·gamma·x - deduction_k + fee    (tier k holds notional(x))

which makes the margin condition piecewise linear and solvable exactly, segment by segment.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from itertools import pairwise

from monitor.domain.errors import InvalidInput
from monitor.domain.margin.ratios import ratios
from monitor.domain.model import MarginMode, Position, PositionRisk, Side, Tier

# (table, floors, lowest rate, highest rate, continuous, convex)
_Shape = tuple[tuple[Tier, ...], tuple[float, ...], float, float, bool, bool]
# Tables seen recently, by identity; bounded so a long-running daemon does not grow it.
_SHAPES: dict[int, _Shape] = {}
_SHAPES_KEPT = 4096

# Relative slack when checking that a table's deductions make maintenance margin continuous
# (published tables are rounded to cents).
_CONTINUITY_TOLERANCE = 1e-9


class Leg:
    """A position prepared for the solvers (built once per assessment, read many times).

    Besides the line coefficients it carries the position's PnL, notional and maintenance
    margin at the mark, the tier at the mark, and the table's shape: lowest and highest rate
    and whether its deductions keep margin continuous and convex (which lets the solvers skip
    directions where the surplus cannot reach zero).
    """

    __slots__ = (
        "alpha",
        "beta",
        "continuous",
        "convex",
        "fee",
        "fixed_margin",
        "gamma",
        "maintenance_margin",
        "mark_tier",
        "mmr_max",
        "mmr_min",
        "notional",
        "position",
        "tiers",
        "unrealized_pnl",
        "x0",
    )

    def __init__(self, position: Position, inverse: bool, bybit: bool) -> None:
        self.position = position
        sign = 1.0 if position.side is Side.LONG else -1.0
        entry = position.entry_price
        # Written so that NaN fails too: a bad number must not turn into a plausible price.
        if not (position.quantity >= 0.0 and entry > 0.0 and position.mark_price > 0.0):
            raise InvalidInput("", "quantity must be >= 0 and entry and mark prices > 0")
        if not position.contract_size > 0.0:
            raise InvalidInput("contract_size", "must be > 0")
        # Linear quantities are already base units, so contract_size only scales inverse contracts.
        if inverse:
            size = position.quantity * position.contract_size
            self.alpha = sign * size / entry
            self.beta = -sign * size
            x0 = self.x0 = 1.0 / position.mark_price
        else:
            size = position.quantity
            self.alpha = -sign * size * entry
            self.beta = sign * size
            x0 = self.x0 = position.mark_price
        self.gamma = size
        # Q*CM/mark as the exchange computes it: size*(1/mark) can differ in the last bit, which
        # picks the wrong tier when the notional sits exactly on a floor.
        notional = self.notional = size / position.mark_price if inverse else size * x0
        self.unrealized_pnl = self.alpha + self.beta * x0
        fee = self.fee = _fee_to_close(position, inverse, size) if bybit else 0.0
        tiers: tuple[Tier, ...] | None = position.tiers
        if bybit and position.margin_mode is MarginMode.ISOLATED and tiers:
            # Bybit values an isolated position's maintenance margin at its entry value.
            entry_notional = size / entry if inverse else size * entry
            tier = tiers[max(bisect_right(_table(tiers)[1], entry_notional) - 1, 0)]
            tiers = None
            self.fixed_margin = entry_notional * tier.mmr - tier.deduction + fee
        elif not tiers or size == 0.0:
            # No table, or nothing held: nothing is maintained beyond the fee.
            tiers = None
            self.fixed_margin = fee
        else:
            self.fixed_margin = 0.0
        self.tiers = tiers
        if tiers is None:
            self.mark_tier, self.mmr_min, self.mmr_max = 0, 0.0, 0.0
            self.continuous = self.convex = True
            self.maintenance_margin = self.fixed_margin
        else:
            _, floors, self.mmr_min, self.mmr_max, self.continuous, self.convex = _table(tiers)
            self.mark_tier = max(bisect_right(floors, notional) - 1, 0)
            tier = tiers[self.mark_tier]
            self.maintenance_margin = tier.mmr * notional - tier.deduction + fee

    def risk(
        self, root: float | None, pool_surplus: float, inverse: bool, own_equity: float | None
    ) -> PositionRisk:
        """What the engine says about this position, given the root of its pool's surplus on its
        axis (`x`, so 1/price for inverse legs), that pool's surplus at the marks, and for an
        isolated position its own equity."""
        price = distance = None
        if root is not None and (root > 0.0 or not inverse):
            # Inverse legs are solved in 1/price: a root at 0, or one so small that its price is
            # beyond a float (dust against a huge position), is no price at all.
            price = 1.0 / root if inverse else root
            if not math.isfinite(price):
                price = None
        if price is not None:
            mark = self.position.mark_price
            # A pool already at or below maintenance margin is liquidating: distance 0.
            distance = abs(mark - price) / mark if pool_surplus > 0.0 else 0.0
        ratio = exchange_ratio = None
        if own_equity is not None:
            ratio, exchange_ratio = ratios(own_equity, self.maintenance_margin)
        position = self.position
        # Positional for speed (a keyword call costs twice as much); the field order is pinned
        # by tests/domain/margin/test_engine.py.
        return PositionRisk(
            position.symbol,
            position.side,
            position.margin_mode,
            self.notional,
            self.unrealized_pnl,
            self.maintenance_margin,
            price,
            distance,
            own_equity,
            ratio,
            exchange_ratio,
        )


def tier_index(tiers: tuple[Tier, ...], notional: float) -> int:
    """Index of the tier whose bracket holds `notional` (floor <= notional < next floor).

    The first tier also covers anything below its floor and the last one anything above its cap,
    so every notional gets a rate.
    """
    index = 0
    last = len(tiers) - 1
    while index < last and tiers[index + 1].floor <= notional:
        index += 1
    return index


def _table(tiers: tuple[Tier, ...]) -> _Shape:
    """The shape of a bracket table, remembered per table object (a symbol's table is shared)."""
    key = id(tiers)
    known = _SHAPES.get(key)
    if known is not None and known[0] is tiers:
        return known
    shape = _scan(tiers)
    if len(_SHAPES) >= _SHAPES_KEPT:
        _SHAPES.clear()
    _SHAPES[key] = shape
    return shape


def _scan(tiers: tuple[Tier, ...]) -> _Shape:
    """One pass over a table: floors, lowest and highest rate, continuity, convexity.

    Continuous: the deductions follow the cum recursion, so margin has no jumps at floors.
    Convex: continuous with rates that never fall, so margin = max over tiers of the tier lines.
    Raises InvalidInput if floors are not increasing: a tier picked from an unsorted table
    would be wrong silently.
    """
    floors = tuple(tier.floor for tier in tiers)
    rates = [tier.mmr for tier in tiers]
    if any(upper <= lower for lower, upper in pairwise(floors)):
        raise InvalidInput("tiers", "floors must be in increasing order")
    rising = all(upper >= lower for lower, upper in pairwise(rates))
    continuous = True
    previous = tiers[0]
    for tier in tiers[1:]:
        floor = tier.floor
        rate = tier.mmr
        deduction = tier.deduction
        gap = deduction - previous.deduction - floor * (rate - previous.mmr)
        if abs(gap) > _CONTINUITY_TOLERANCE * (abs(deduction) + floor * rate + 1.0):
            continuous = False
            break
        previous = tier
    return tiers, floors, min(rates), max(rates), continuous, continuous and rising


def _fee_to_close(position: Position, inverse: bool, size: float) -> float:
    """Bybit's estimated taker fee to close at the bankruptcy price, which it adds to maintenance margin.

    Bankruptcy price is where the initial margin (1/leverage of entry value) is lost; without a
    leverage the entry price stands in for it. Binance has no such term.
    """
    rate = position.taker_fee
    if rate <= 0:
        return 0.0
    leverage_share = 1.0 / position.leverage if position.leverage else 0.0
    sign = 1.0 if position.side is Side.LONG else -1.0
    # Below 1x leverage there is no bankruptcy price on that side, so no fee to reserve.
    if inverse:
        return max(size * rate * (1.0 + sign * leverage_share) / position.entry_price, 0.0)
    return max(size * position.entry_price * (1.0 - sign * leverage_share) * rate, 0.0)
