"""Exact roots of "equity - maintenance margin" along one axis, walking tier segment by segment.

The margin surplus F(z) = equity - maintenance margin of a pool, when some positions move along
an axis z (each leg sits at x = scale·z on its own price axis, see `legs`), is a sum of straight
lines that changes slope only where a leg's notional crosses a tier floor. Starting at z0 we walk
outward one segment at a time and solve the linear equation inside the first segment where F
changes sign. Between breakpoints that is exact; at a breakpoint where an inconsistent table makes
margin jump, the breakpoint itself is where the pool first fails.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

from monitor.domain.margin.legs import Leg, tier_index
from monitor.domain.model import Tier


def nearest_root(
    constant: float, legs: Sequence[Leg], scales: Sequence[float], z0: float, inverse: bool
) -> float | None:
    """The z nearest z0 (by relative price change) where the margin surplus is zero, or None.

    `constant` is everything in the pool that does not move (wallet, PnL and margin of the other
    positions). Distance is measured on prices: z/z0 for linear axes, z0/z for inverse ones.
    Only z > 0 counts; a surplus already zero at z0 answers z0.
    """
    if len(legs) == 1 and scales[0] == 1.0 and z0 == legs[0].x0:
        return nearest_own_root(constant, legs[0], inverse)
    tiers_at = []
    intercept = constant
    intercept_at_zero = constant  # every leg in its first tier, as z approaches 0
    slope = 0.0
    room_down = 0.0  # how much the slope can still fall if legs reach their highest rates
    room_up = 0.0  # how much it can still rise if legs reach their lowest rates
    continuous = convex = True
    for leg, scale in zip(legs, scales, strict=True):
        tiers = leg.tiers
        if tiers is None:
            tiers_at.append(0)
            intercept += leg.alpha - leg.fixed_margin
            intercept_at_zero += leg.alpha - leg.fixed_margin
            slope += leg.beta * scale
            continue
        width = leg.gamma * scale
        index = leg.mark_tier if scale * z0 == leg.x0 else tier_index(tiers, width * z0)
        tiers_at.append(index)
        tier = tiers[index]
        intercept += leg.alpha + tier.deduction - leg.fee
        intercept_at_zero += leg.alpha + tiers[0].deduction - leg.fee
        slope += (leg.beta - tier.mmr * leg.gamma) * scale
        room_down += (leg.mmr_max - tier.mmr) * width
        room_up += (tier.mmr - leg.mmr_min) * width
        continuous = continuous and leg.continuous
        convex = convex and leg.convex
    value = intercept + slope * z0
    if value == 0.0:
        return z0
    sign = 1.0 if value > 0 else -1.0
    shape = (intercept, slope, room_down, room_up, continuous, sign)
    # With convex margin the surplus is concave in z: from a healthy start there is a root below
    # only if the surplus near z = 0 is not positive (the slope bound handles the way up).
    below = None
    if not (convex and sign > 0 and intercept_at_zero >= 0.0):
        below = _walk(shape, legs, scales, list(tiers_at), z0, -1, 0.0)
    # Look above only as far as the root below is (in relative price).
    if below is None:
        limit = math.inf
    elif inverse:
        share = z0 / below - 1.0
        limit = z0 / (1.0 - share) if share < 1.0 else math.inf
    else:
        limit = 2.0 * z0 - below
    above = _walk(shape, legs, scales, tiers_at, z0, 1, limit)
    return below if above is None else above


def nearest_own_root(constant: float, leg: Leg, inverse: bool) -> float | None:
    """`nearest_root` for one position moving alone on its own price axis, from its mark."""
    z0 = leg.x0
    below, above = _single_roots(constant, leg, z0)
    if below is None or above is None:
        return above if below is None else below
    if inverse:
        return below if z0 / below - 1.0 <= 1.0 - z0 / above else above
    return below if 1.0 - below / z0 <= above / z0 - 1.0 else above


def _walk(
    shape: tuple[float, float, float, float, bool, float],
    legs: Sequence[Leg],
    scales: Sequence[float],
    tiers_at: list[int],
    z0: float,
    direction: int,
    limit: float,
) -> float | None:
    """First zero of the surplus going from z0 in `direction` (+1 up, -1 down) up to `limit`, or None."""
    intercept, slope, room_down, room_up, continuous, sign = shape
    heap: list[tuple[float, int]] = []
    for position, leg in enumerate(legs):
        tiers = leg.tiers
        if tiers is None:
            continue
        index = tiers_at[position]
        width = leg.gamma * scales[position]
        if direction > 0:
            if index + 1 < len(tiers):
                heap.append((tiers[index + 1].floor / width, position))
        elif index > 0:
            heap.append((-tiers[index].floor / width, position))
    heapq.heapify(heap)
    # The surplus moves by direction*slope per unit of z; it can reach zero only if that has the
    # opposite sign of the surplus somewhere ahead.
    wanted_falling = sign * direction > 0
    while True:
        if continuous and (slope - room_down >= 0.0 if wanted_falling else slope + room_up <= 0.0):
            return None
        breakpoint_z = heap[0][0] * direction if heap else math.inf * direction
        if not heap or (breakpoint_z >= limit if direction > 0 else breakpoint_z <= limit):
            return last_segment_root(intercept, slope, sign, direction, limit)
        position = heapq.heappop(heap)[1]
        if sign * (intercept + slope * breakpoint_z) <= 0.0:
            return segment_root(intercept, slope, breakpoint_z, direction)
        leg = legs[position]
        tiers = leg.tiers
        assert tiers is not None
        width = leg.gamma * scales[position]
        old = tiers[tiers_at[position]]
        index = tiers_at[position] + direction
        tiers_at[position] = index
        new = tiers[index]
        change = (new.mmr - old.mmr) * width
        intercept += new.deduction - old.deduction
        slope -= change
        room_down -= change
        room_up += change
        if sign * (intercept + slope * breakpoint_z) <= 0.0:
            # Margin jumped past equity at this floor (a table whose deductions do not line up).
            return breakpoint_z
        if direction > 0:
            if index + 1 < len(tiers):
                heapq.heappush(heap, (tiers[index + 1].floor / width, position))
        elif index > 0:
            heapq.heappush(heap, (-tiers[index].floor / width, position))


def last_segment_root(
    intercept: float, slope: float, sign: float, direction: int, limit: float
) -> float | None:
    """The root of the last segment a walk looks at (no breakpoint before `limit`): there is one
    only if the surplus heads towards zero, and only up to `limit` (and above 0)."""
    if sign * direction * slope >= 0.0:
        return None
    root = -intercept / slope
    if direction > 0:
        return root if root <= limit else None
    return root if root >= limit and root > 0.0 else None


def segment_root(intercept: float, slope: float, breakpoint_z: float, direction: int) -> float:
    """The root inside a segment whose far end, `breakpoint_z`, the surplus has crossed zero by.
    Rounding may put it a hair outside its segment; it cannot be beyond the breakpoint."""
    root = -intercept / slope
    return min(root, breakpoint_z) if direction > 0 else max(root, breakpoint_z)


def _single_roots(constant: float, leg: Leg, z0: float) -> tuple[float | None, float | None]:
    """Nearest zeros below and above z0 for one leg on its own axis: `_walk` without the heap."""
    tiers = leg.tiers
    beta = leg.beta
    if tiers is None:
        intercept = constant + leg.alpha - leg.fixed_margin
        value = intercept + beta * z0
        if value == 0.0:
            return z0, z0
        if beta == 0.0:
            return None, None
        root = -intercept / beta
        if root < z0:
            return (root if root > 0.0 else None), None
        return None, root
    gamma = leg.gamma
    index = leg.mark_tier if z0 == leg.x0 else tier_index(tiers, gamma * z0)
    tier = tiers[index]
    intercept = constant + leg.alpha + tier.deduction - leg.fee
    slope = beta - tier.mmr * gamma
    value = intercept + slope * z0
    if value == 0.0:
        return z0, z0
    sign = 1.0 if value > 0 else -1.0
    # With a continuous table the surplus only moves towards zero in one direction if the
    # slope keeps its sign across all tiers (true whenever every rate is below 100 %).
    skip_down = skip_up = False
    if leg.continuous:
        lowest_slope = beta - leg.mmr_max * gamma
        highest_slope = beta - leg.mmr_min * gamma
        skip_up = (lowest_slope >= 0.0) if sign > 0 else (highest_slope <= 0.0)
        skip_down = (highest_slope <= 0.0) if sign > 0 else (lowest_slope >= 0.0)
    below = None if skip_down else _single_down(intercept, slope, tiers, index, gamma, sign)
    above = None if skip_up else _single_up(intercept, slope, tiers, index, gamma, sign)
    return below, above


def _single_down(
    intercept: float, slope: float, tiers: tuple[Tier, ...], index: int, gamma: float, sign: float
) -> float | None:
    while index > 0:
        tier = tiers[index]
        floor_z = tier.floor / gamma
        if sign * (intercept + slope * floor_z) <= 0.0:
            return max(-intercept / slope, floor_z)
        index -= 1
        lower = tiers[index]
        intercept += lower.deduction - tier.deduction
        slope -= (lower.mmr - tier.mmr) * gamma
        if sign * (intercept + slope * floor_z) <= 0.0:
            return floor_z
    if sign * intercept <= 0.0 and slope != 0.0:
        root = -intercept / slope
        return root if root > 0.0 else None
    return None


def _single_up(
    intercept: float, slope: float, tiers: tuple[Tier, ...], index: int, gamma: float, sign: float
) -> float | None:
    last = len(tiers) - 1
    while index < last:
        upper = tiers[index + 1]
        floor_z = upper.floor / gamma
        if sign * (intercept + slope * floor_z) <= 0.0:
            return min(-intercept / slope, floor_z)
        tier = tiers[index]
        index += 1
        intercept += upper.deduction - tier.deduction
        slope -= (upper.mmr - tier.mmr) * gamma
        if sign * (intercept + slope * floor_z) <= 0.0:
            return floor_z
    if sign * slope < 0.0:
        return -intercept / slope
    return None
