"""The margin engine for pooled accounts: several coins back the cross positions, valued in USD.

Binance Multi-Assets and Portfolio Margin and Bybit's Unified Trading Account pool every collateral
coin. A coin's equity (wallet plus the PnL of the positions settled in it) counts at its price times
a value ratio while positive (tiered by quantity on Bybit), at its price times a liability rate while
negative; the maintenance margin of a position converts at its settlement coin's liability price.

Along any price axis z every term stays piecewise linear: a position's margin changes slope at its
tier floors, a settlement coin's value at zero and at its ratio tiers, and collateral in the
position's own underlying is linear in its price. So, as in `solver`, the pool's surplus
(equity - liquidation ratio x maintenance margin) is walked segment by segment from the current
prices and solved exactly inside the first segment where it changes sign.
"""

from __future__ import annotations

import heapq
import math

from monitor.domain.errors import InvalidInput
from monitor.domain.margin.legs import Leg, tier_index
from monitor.domain.margin.ratios import ratios
from monitor.domain.margin.solver import last_segment_root, nearest_own_root, segment_root
from monitor.domain.model import (
    AccountRisk,
    AccountState,
    Collateral,
    MarginMode,
    Tier,
)


class _Coin:
    """A collateral coin prepared once per assessment: its value curve g(E) in coin units.

    g(E) = E x liability_rate for E < 0; for E >= 0 the sum of its tranches, tranche k running
    from floors[k] at ratios[k]. `bases[k]` is g(floors[k]).
    """

    __slots__ = (
        "bases",
        "floors",
        "highest",
        "liability_rate",
        "lowest",
        "price",
        "ratios",
        "stable",
    )

    def __init__(self, coin: Collateral, path: str) -> None:
        if not (coin.price > 0.0 and math.isfinite(coin.price)):
            raise InvalidInput(f"{path}.price", "must be > 0")
        if not coin.liability_rate > 0.0:
            raise InvalidInput(f"{path}.liability_rate", "must be > 0")
        if not coin.ratios or coin.ratios[0].floor != 0.0:
            raise InvalidInput(f"{path}.ratios", "the first tier must start at quantity 0")
        floors: list[float] = []
        ratios: list[float] = []
        bases: list[float] = []
        base = 0.0
        for number, tier in enumerate(coin.ratios):
            if not 0.0 <= tier.ratio <= 1.0:
                raise InvalidInput(f"{path}.ratios[{number}].ratio", "must be between 0 and 1")
            if floors:
                if not tier.floor > floors[-1]:
                    raise InvalidInput(
                        f"{path}.ratios[{number}].floor", "floors must be in increasing order"
                    )
                base += (tier.floor - floors[-1]) * ratios[-1]
            floors.append(tier.floor)
            ratios.append(tier.ratio)
            bases.append(base)
        self.price = coin.price
        self.liability_rate = coin.liability_rate
        self.stable = coin.stable
        self.floors = floors
        self.ratios = ratios
        self.bases = bases
        # The steepest and flattest the value curve gets (bounds for the solvers).
        self.lowest = min(coin.liability_rate, *ratios)
        self.highest = max(coin.liability_rate, *ratios)

    def regime(self, equity: float) -> int:
        """-1 below zero, else the tranche holding `equity`."""
        if equity < 0.0:
            return -1
        floors = self.floors
        index = 0
        last = len(floors) - 1
        while index < last and floors[index + 1] <= equity:
            index += 1
        return index

    def value(self, equity: float) -> float:
        """The coin's contribution in coin units after ratios (multiply by price for USD)."""
        index = self.regime(equity)
        if index < 0:
            return equity * self.liability_rate
        return self.bases[index] + self.ratios[index] * (equity - self.floors[index])

    def rate(self, index: int) -> float:
        """Slope of g in regime `index`."""
        return self.liability_rate if index < 0 else self.ratios[index]


class _Moving:
    """What moves along one axis: legs (at x = scale*z, MM weighted in USD), settlement coins
    whose equity is A + B*z, and collateral whose USD value is proportional to z."""

    __slots__ = ("coins", "constant", "legs", "proportional", "scales", "weights")

    def __init__(self) -> None:
        self.constant = 0.0
        self.proportional = 0.0
        self.legs: list[Leg] = []
        self.scales: list[float] = []
        self.weights: list[float] = []
        # (coin, A, B) with the coin's equity A + B*z in coin units
        self.coins: list[tuple[_Coin, float, float]] = []


def assess_pool(state: AccountState) -> AccountRisk:
    """Everything a trader needs to know about a pooled (multi-coin) account, in USD.

    Equity is the value of every collateral coin after its value ratio, PnL included in the coin
    it settles in; maintenance margin is every cross position's margin at its settlement coin's
    price, plus what the venue reports for parts we cannot model (`venue_terms`). Liquidation is
    where equity meets `liquidation_ratio` x maintenance margin (1.0; 1.05 under Binance Portfolio
    Margin). A position's liquidation price moves its own mark and every collateral coin of the
    same underlying (BTC collateral behind a BTC long is exposed twice); the account move moves
    every non-stable price, marks and collateral, together. Isolated positions keep their own margin.
    """
    if state.venue.inverse:
        raise InvalidInput(
            "collateral",
            "inverse contracts are margined in their own coin, not in a pooled account",
        )
    factor = state.liquidation_ratio
    if not (factor > 0.0 and math.isfinite(factor)):
        raise InvalidInput("liquidation_ratio", "must be > 0")
    bybit = state.venue.exchange == "bybit"
    coins: dict[str, int] = {}
    prepared: list[_Coin] = []
    for number, coin in enumerate(state.collateral):
        path = f"collateral[{number}]"
        if coin.asset in coins:
            raise InvalidInput(f"{path}.asset", f"{coin.asset} is listed twice")
        coins[coin.asset] = number
        prepared.append(_Coin(coin, path))
    quantities = [coin.quantity for coin in state.collateral]

    legs: list[Leg] = []
    settle: list[int] = []
    for number, position in enumerate(state.positions):
        try:
            leg = Leg(position, False, bybit)
        except InvalidInput as error:
            path = f"positions[{number}]" + (f".{error.path}" if error.path else "")
            raise InvalidInput(path, error.problem) from None
        legs.append(leg)
        asset = position.settle_asset or state.asset
        index = coins.get(asset, -1)
        if position.margin_mode is MarginMode.CROSS:
            if index < 0:
                held = ", ".join(coins)
                raise InvalidInput(
                    f"positions[{number}].settle_asset",
                    f"{asset!r} is not in collateral (has: {held})",
                )
            if not prepared[index].stable:
                raise InvalidInput(
                    f"positions[{number}].settle_asset",
                    f"{asset} moves in price: only stablecoin-settled positions are pooled",
                )
        settle.append(index)

    cross = [i for i, leg in enumerate(legs) if leg.position.margin_mode is MarginMode.CROSS]
    coin_equity = list(quantities)
    for i in cross:
        coin_equity[settle[i]] += legs[i].unrealized_pnl
    # USD per unit of a position's maintenance margin (coin units), liquidation ratio included.
    weights = [
        prepared[settle[i]].price * prepared[settle[i]].liability_rate if settle[i] >= 0 else 0.0
        for i in range(len(legs))
    ]
    values = [coin.price * coin.value(coin_equity[n]) for n, coin in enumerate(prepared)]
    venue_equity = sum((term.equity for term in state.venue_terms), 0.0)
    venue_margin = sum((term.maintenance_margin for term in state.venue_terms), 0.0)
    equity = sum(values, 0.0) + venue_equity
    maintenance = sum((legs[i].maintenance_margin * weights[i] for i in cross), 0.0) + venue_margin
    surplus = equity - factor * maintenance

    # Hedge legs of one symbol share a price; everything else is solved alone.
    groups: dict[str, list[int]] = {}
    for i in cross:
        if legs[i].position.hedge:
            groups.setdefault(legs[i].position.symbol, []).append(i)
    at_marks = _Pool(legs, settle, weights, prepared, coins, coin_equity, values, surplus, factor)
    shared: dict[int, float | None] = {}
    for members in groups.values():
        root = at_marks.cross_root(members)
        for i in members:
            shared[i] = root

    risks = []
    for i, leg in enumerate(legs):
        position = leg.position
        if position.margin_mode is MarginMode.ISOLATED:
            own_equity = (position.isolated_margin or 0.0) + leg.unrealized_pnl
            root = nearest_own_root(position.isolated_margin or 0.0, leg, False)
            risks.append(leg.risk(root, own_equity - leg.maintenance_margin, False, own_equity))
        else:
            root = shared[i] if i in shared else at_marks.cross_root([i])
            risks.append(leg.risk(root, surplus, False, None))

    ratio, exchange_ratio = ratios(equity, maintenance)
    return AccountRisk(
        equity=equity,
        maintenance_margin=maintenance,
        margin_ratio=ratio,
        exchange_margin_ratio=exchange_ratio,
        account_liquidation_move=_account_move(
            cross,
            legs,
            settle,
            weights,
            prepared,
            quantities,
            surplus,
            venue_equity,
            venue_margin,
            factor,
        ),
        positions=tuple(risks),
        collateral_values=tuple(values),
    )


class _Pool:
    """The pool at current prices, as the per-position solver needs it."""

    __slots__ = (
        "coin_equity",
        "coin_index",
        "coins",
        "factor",
        "legs",
        "settle",
        "surplus",
        "values",
        "weights",
    )

    def __init__(
        self,
        legs: list[Leg],
        settle: list[int],
        weights: list[float],
        coins: list[_Coin],
        coin_index: dict[str, int],
        coin_equity: list[float],
        values: list[float],
        surplus: float,
        factor: float,
    ) -> None:
        self.legs = legs
        self.settle = settle
        self.weights = weights
        self.coins = coins
        self.coin_index = coin_index
        self.coin_equity = coin_equity
        self.values = values
        self.surplus = surplus
        self.factor = factor

    def cross_root(self, members: list[int]) -> float | None:
        """The mark of `members` (one position, or the hedge legs of one symbol) at which the
        pool's surplus is zero, nearest to the current mark, with collateral in the same
        underlying moving along; every other price held."""
        legs, factor = self.legs, self.factor
        first = legs[members[0]].position
        z0 = first.mark_price
        moving = _Moving()
        settled = self.settle[members[0]]
        # Everything that does not move: the surplus less the moving parts' share of it.
        constant = self.surplus - self.values[settled]
        slope_in_coin = 0.0
        intercept_in_coin = self.coin_equity[settled]
        for i in members:
            leg = legs[i]
            weight = self.weights[i] * factor
            moving.legs.append(leg)
            moving.scales.append(1.0)
            moving.weights.append(weight)
            constant += weight * leg.maintenance_margin
            slope_in_coin += leg.beta
            intercept_in_coin -= leg.beta * leg.x0
        # The settlement coin's equity is a straight line in the moving mark.
        moving.coins.append((self.coins[settled], intercept_in_coin, slope_in_coin))
        underlying = first.underlying
        if underlying is not None:
            index = self.coin_index.get(underlying, -1)
            if index >= 0 and index != settled and not self.coins[index].stable:
                now = self.values[index]
                constant -= now
                moving.proportional = now / z0
        moving.constant = constant
        return _nearest(moving, z0)


def _account_move(
    cross: list[int],
    legs: list[Leg],
    settle: list[int],
    weights: list[float],
    coins: list[_Coin],
    quantities: list[float],
    surplus: float,
    venue_equity: float,
    venue_margin: float,
    factor: float,
) -> float | None:
    """Uniform relative move m of every non-stable price (marks and collateral, price*(1+m)) that
    brings the pool to its liquidation point, nearest to zero; None if none exists."""
    if not cross:
        return None
    if surplus <= 0.0:
        return 0.0
    moving = _Moving()
    moving.constant = venue_equity - factor * venue_margin
    intercepts = list(quantities)
    slopes = [0.0] * len(coins)
    for i in cross:
        leg = legs[i]
        moving.legs.append(leg)
        moving.scales.append(leg.x0)
        moving.weights.append(weights[i] * factor)
        intercepts[settle[i]] += leg.alpha
        slopes[settle[i]] += leg.beta * leg.x0
    for n, coin in enumerate(coins):
        if coin.stable:
            moving.coins.append((coin, intercepts[n], slopes[n]))
        else:
            # No position settles in a moving coin, so its equity is its quantity.
            moving.proportional += coin.price * coin.value(quantities[n])
    root = _nearest(moving, 1.0)
    if root is None:
        return None
    move = root - 1.0
    return move if math.isfinite(move) else None


def _nearest(moving: _Moving, z0: float) -> float | None:
    """The z > 0 nearest z0 (relative) where the moving pool's surplus is zero, or None."""
    start = _Start(moving, z0)
    if start.value == 0.0:
        return z0
    below = start.walk(-1, 0.0)
    limit = math.inf if below is None else 2.0 * z0 - below
    above = start.walk(1, limit)
    return below if above is None else above


class _Start:
    """The surplus line at z0 (intercept + slope*z), each part's segment there, and how far the
    slope can still fall or rise in any later segment; `walk` goes out from here."""

    __slots__ = (
        "coin_regimes",
        "continuous",
        "intercept",
        "leg_tiers",
        "moving",
        "room_down",
        "room_up",
        "slope",
        "value",
        "widths",
        "z0",
    )

    def __init__(self, moving: _Moving, z0: float) -> None:
        self.moving = moving
        self.z0 = z0
        intercept = moving.constant
        slope = moving.proportional
        room_down = room_up = 0.0
        continuous = True
        leg_tiers: list[int] = []
        widths: list[float] = []
        for number, leg in enumerate(moving.legs):
            weight = moving.weights[number]
            tiers = leg.tiers
            scale = moving.scales[number]
            width = leg.gamma * scale
            widths.append(width)
            if tiers is None:
                leg_tiers.append(0)
                intercept -= weight * leg.fixed_margin
                continue
            index = leg.mark_tier if scale * z0 == leg.x0 else tier_index(tiers, width * z0)
            leg_tiers.append(index)
            tier = tiers[index]
            intercept += weight * (tier.deduction - leg.fee)
            slope -= weight * tier.mmr * width
            room_down += weight * (leg.mmr_max - tier.mmr) * width
            room_up += weight * (tier.mmr - leg.mmr_min) * width
            continuous = continuous and leg.continuous
        coin_regimes: list[int] = []
        for coin, a, b in moving.coins:
            index = coin.regime(a + b * z0)
            coin_regimes.append(index)
            rate = coin.rate(index)
            intercept += coin.price * _coin_intercept(coin, index, a)
            slope += coin.price * rate * b
            low, high = (coin.lowest, coin.highest) if b > 0.0 else (coin.highest, coin.lowest)
            room_down += coin.price * (rate - low) * b
            room_up += coin.price * (high - rate) * b
        self.intercept = intercept
        self.slope = slope
        self.room_down = room_down
        self.room_up = room_up
        self.continuous = continuous
        self.leg_tiers = leg_tiers
        self.coin_regimes = coin_regimes
        self.widths = widths
        self.value = intercept + slope * z0

    def walk(self, direction: int, limit: float) -> float | None:
        """First zero of the surplus going from z0 in `direction` (+1 up, -1 down), not past
        `limit`. Every moving part knows where its next breakpoint is; a heap yields the nearest,
        and crossing it changes only that part's line."""
        intercept, slope = self.intercept, self.slope
        room_down, room_up = self.room_down, self.room_up
        continuous = self.continuous
        sign = 1.0 if self.value > 0.0 else -1.0
        # The surplus moves by direction*slope per unit of z; it can reach zero only if that
        # has the opposite sign of the surplus somewhere ahead.
        wanted_falling = sign * direction > 0
        if continuous and (slope - room_down >= 0.0 if wanted_falling else slope + room_up <= 0.0):
            return None
        moving = self.moving
        legs = moving.legs
        widths = self.widths
        leg_tiers = list(self.leg_tiers)
        coin_regimes = list(self.coin_regimes)
        heap: list[tuple[float, int]] = []
        for number, leg in enumerate(legs):
            if leg.tiers is not None:
                edge = _leg_break(leg.tiers, leg_tiers[number], widths[number], direction)
                if edge is not None:
                    heap.append((edge * direction, number))
        offset = len(legs)
        for number, (coin, a, b) in enumerate(moving.coins):
            edge = _coin_break(coin, coin_regimes[number], a, b, direction)
            if edge is not None:
                heap.append((edge * direction, offset + number))
        heapq.heapify(heap)
        while True:
            if continuous and (
                slope - room_down >= 0.0 if wanted_falling else slope + room_up <= 0.0
            ):
                return None
            breakpoint_z = heap[0][0] * direction if heap else math.inf * direction
            if not heap or (breakpoint_z >= limit if direction > 0 else breakpoint_z <= limit):
                return last_segment_root(intercept, slope, sign, direction, limit)
            number = heapq.heappop(heap)[1]
            if sign * (intercept + slope * breakpoint_z) <= 0.0:
                return segment_root(intercept, slope, breakpoint_z, direction)
            if number < offset:
                leg = legs[number]
                tiers = leg.tiers
                assert tiers is not None
                weight = moving.weights[number]
                width = widths[number]
                old = tiers[leg_tiers[number]]
                index = leg_tiers[number] + direction
                leg_tiers[number] = index
                new = tiers[index]
                change = weight * (new.mmr - old.mmr) * width
                intercept += weight * (new.deduction - old.deduction)
                slope -= change
                room_down -= change
                room_up += change
                edge = _leg_break(tiers, index, width, direction)
            else:
                coin, a, b = moving.coins[number - offset]
                old_index = coin_regimes[number - offset]
                index = old_index + (1 if b * direction > 0 else -1)
                coin_regimes[number - offset] = index
                intercept += coin.price * (
                    _coin_intercept(coin, index, a) - _coin_intercept(coin, old_index, a)
                )
                change = coin.price * (coin.rate(index) - coin.rate(old_index)) * b
                slope += change
                room_down += change
                room_up -= change
                edge = _coin_break(coin, index, a, b, direction)
            if sign * (intercept + slope * breakpoint_z) <= 0.0:
                return breakpoint_z  # margin jumped past equity at this floor
            if edge is not None:
                heapq.heappush(heap, (edge * direction, number))


def _leg_break(tiers: tuple[Tier, ...], index: int, width: float, direction: int) -> float | None:
    """Where, walking in `direction`, the leg leaves tier `index` (None: it never does)."""
    if direction > 0:
        return tiers[index + 1].floor / width if index + 1 < len(tiers) else None
    return tiers[index].floor / width if index > 0 else None


def _coin_intercept(coin: _Coin, index: int, a: float) -> float:
    """Intercept (coin units) of g(a + b*z) in regime `index`: g = base + rate*(E - floor)."""
    if index < 0:
        return coin.liability_rate * a
    return coin.bases[index] + coin.ratios[index] * (a - coin.floors[index])


def _coin_break(coin: _Coin, index: int, a: float, b: float, direction: int) -> float | None:
    """Where, walking in `direction`, the coin's equity a + b*z leaves regime `index`."""
    if b == 0.0:
        return None
    if b * direction > 0:  # equity rises
        if index < 0:
            edge = 0.0
        elif index + 1 < len(coin.floors):
            edge = coin.floors[index + 1]
        else:
            return None
    else:  # equity falls
        if index < 0:
            return None
        edge = coin.floors[index]
    z = (edge - a) / b
    return z if z > 0.0 else None
