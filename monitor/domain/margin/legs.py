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

from monitor.domain.model import MarginMode, Position, Tier, Venue

# Relative slack when checking that a table's deductions make maintenance margin continuous
# (published tables are rounded to cents).
_CONTINUITY_TOLERANCE = 1e-9


class Leg:
    """A position prepared for the solvers (built once per assessment, read many times)."""

    __slots__ = (
        "alpha",
        "beta",
        "continuous",
        "fee",
        "fixed_margin",
        "gamma",
        "mark_tier",
        "mmr_max",
        "mmr_min",
        "position",
        "tiers",
        "x0",
    )

    def __init__(self, position: Position, venue: Venue) -> None:
        self.position = position
        sign = position.side.sign
        quantity = position.quantity
        entry = position.entry_price
        inverse = venue.inverse
        # Linear quantities are already base units, so contract_size only scales inverse contracts.
        size = quantity * position.contract_size if inverse else quantity
        if inverse:
            self.alpha = sign * size / entry
            self.beta = -sign * size
            self.x0 = 1.0 / position.mark_price
        else:
            self.alpha = -sign * size * entry
            self.beta = sign * size
            self.x0 = position.mark_price
        self.gamma = size
        self.fee = _fee_to_close(position, venue, size)
        tiers = position.tiers
        if any(tiers[i].floor > tiers[i + 1].floor for i in range(len(tiers) - 1)):
            tiers = tuple(sorted(tiers, key=lambda tier: tier.floor))
        self.tiers: tuple[Tier, ...] | None = tiers
        self.fixed_margin = 0.0
        if not tiers:
            # No table: nothing is maintained, treat it as a fixed zero margin.
            self.tiers = None
            self.fixed_margin = self.fee
        elif venue.exchange == "bybit" and position.margin_mode is MarginMode.ISOLATED:
            # Bybit values an isolated position's maintenance margin at its entry value.
            entry_notional = size / entry if inverse else size * entry
            tier = tiers[tier_index(tiers, entry_notional)]
            self.tiers = None
            self.fixed_margin = entry_notional * tier.mmr - tier.deduction + self.fee
        self.mark_tier = 0 if self.tiers is None else tier_index(self.tiers, self.gamma * self.x0)
        self.mmr_min, self.mmr_max, self.continuous = _table_shape(self.tiers)

    def unrealized_pnl(self) -> float:
        """PnL at the mark price."""
        return self.alpha + self.beta * self.x0

    def notional(self) -> float:
        """Notional at the mark price, in the settlement asset."""
        return self.gamma * self.x0

    def maintenance_margin(self) -> float:
        """Maintenance margin at the mark price."""
        if self.tiers is None:
            return self.fixed_margin
        tier = self.tiers[self.mark_tier]
        return tier.mmr * self.gamma * self.x0 - tier.deduction + self.fee


def tier_index(tiers: tuple[Tier, ...], notional: float) -> int:
    """Index of the tier whose bracket holds `notional` (floor ≤ notional < next floor).

    The first tier also covers anything below its floor and the last one anything above its cap,
    so every notional gets a rate.
    """
    index = 0
    last = len(tiers) - 1
    while index < last and tiers[index + 1].floor <= notional:
        index += 1
    return index


def _fee_to_close(position: Position, venue: Venue, size: float) -> float:
    """Bybit's estimated taker fee to close at the bankruptcy price, which it adds to maintenance margin.

    Bankruptcy price is where the initial margin (1/leverage of entry value) is lost; without a
    leverage the entry price stands in for it. Binance has no such term.
    """
    if venue.exchange != "bybit" or position.taker_fee <= 0:
        return 0.0
    leverage_share = 1.0 / position.leverage if position.leverage else 0.0
    sign = position.side.sign
    if venue.inverse:
        return size * position.taker_fee * (1.0 + sign * leverage_share) / position.entry_price
    return size * position.entry_price * (1.0 - sign * leverage_share) * position.taker_fee


def _table_shape(tiers: tuple[Tier, ...] | None) -> tuple[float, float, bool]:
    """Lowest and highest rate of a table and whether its deductions keep margin continuous."""
    if tiers is None:
        return 0.0, 0.0, True
    low = high = tiers[0].mmr
    continuous = True
    previous = tiers[0]
    for tier in tiers[1:]:
        rate = tier.mmr
        if rate < low:
            low = rate
        elif rate > high:
            high = rate
        expected = previous.deduction + tier.floor * (rate - previous.mmr)
        scale = max(1.0, abs(tier.deduction), tier.floor * rate)
        if abs(tier.deduction - expected) > _CONTINUITY_TOLERANCE * scale:
            continuous = False
        previous = tier
    return low, high, continuous
