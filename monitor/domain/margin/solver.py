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
from collections.abc import Sequence

from monitor.domain.margin.legs import Leg, tier_index


def surplus_roots(
    constant: float, legs: Sequence[Leg], scales: Sequence[float], z0: float
) -> tuple[float | None, float | None]:
    """The nearest z below z0 and above z0 where the margin surplus is zero (None where there is none).

    `constant` is everything in the pool that does not move (wallet, PnL and margin of the other
    positions). When the surplus at z0 is already zero both answers are z0. Only z > 0 counts.
    """
    tiers_at = []
    intercept = constant
    slope = 0.0
    room_down = 0.0  # how much the slope can still fall if legs reach their highest rates
    room_up = 0.0  # how much it can still rise if legs reach their lowest rates
    continuous = True
    for leg, scale in zip(legs, scales, strict=True):
        tiers = leg.tiers
        width = leg.gamma * scale
        if tiers is None:
            tiers_at.append(0)
            intercept += leg.alpha - leg.fixed_margin
            slope += leg.beta * scale
            continue
        index = leg.mark_tier if scale * z0 == leg.x0 else tier_index(tiers, width * z0)
        tiers_at.append(index)
        tier = tiers[index]
        intercept += leg.alpha + tier.deduction - leg.fee
        slope += (leg.beta - tier.mmr * leg.gamma) * scale
        room_down += (leg.mmr_max - tier.mmr) * width
        room_up += (tier.mmr - leg.mmr_min) * width
        continuous = continuous and leg.continuous
    value = intercept + slope * z0
    if value == 0.0:
        return z0, z0
    sign = 1.0 if value > 0 else -1.0
    shape = (intercept, slope, room_down, room_up, continuous, sign)
    below = _walk(shape, legs, scales, list(tiers_at), z0, -1)
    above = _walk(shape, legs, scales, tiers_at, z0, 1)
    return below, above


def _walk(
    shape: tuple[float, float, float, float, bool, float],
    legs: Sequence[Leg],
    scales: Sequence[float],
    tiers_at: list[int],
    z0: float,
    direction: int,
) -> float | None:
    """First zero of the surplus going from z0 in `direction` (+1 up, -1 down), or None."""
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
    # The surplus moves by direction·slope per unit of z; it can reach zero only if that has the
    # opposite sign of the surplus somewhere ahead.
    wanted_falling = sign * direction > 0
    while True:
        if continuous and (slope - room_down >= 0.0 if wanted_falling else slope + room_up <= 0.0):
            return None
        if not heap:
            if direction > 0:
                if sign * slope < 0.0:
                    return -intercept / slope
                return None
            # Down to z = 0, where the surplus is the intercept.
            if sign * intercept <= 0.0 and slope != 0.0:
                root = -intercept / slope
                return root if root > 0.0 else None
            return None
        keyed, position = heapq.heappop(heap)
        breakpoint_z = keyed * direction
        if sign * (intercept + slope * breakpoint_z) <= 0.0:
            root = -intercept / slope
            # Rounding may put the root a hair outside its segment; it cannot be beyond the breakpoint.
            if direction > 0:
                return min(root, breakpoint_z)
            return max(root, breakpoint_z)
        leg = legs[position]
        tiers = leg.tiers
        assert tiers is not None
        scale = scales[position]
        width = leg.gamma * scale
        old = tiers[tiers_at[position]]
        index = tiers_at[position] + direction
        tiers_at[position] = index
        new = tiers[index]
        intercept += new.deduction - old.deduction
        slope -= (new.mmr - old.mmr) * leg.gamma * scale
        room_down -= (new.mmr - old.mmr) * width
        room_up += (new.mmr - old.mmr) * width
        if sign * (intercept + slope * breakpoint_z) <= 0.0:
            # Margin jumped past equity at this floor (a table whose deductions do not line up).
            return breakpoint_z
        if direction > 0:
            if index + 1 < len(tiers):
                heapq.heappush(heap, (tiers[index + 1].floor / width, position))
        elif index > 0:
            heapq.heappush(heap, (-tiers[index].floor / width, position))
