"""Risk in volatility units: how many typical moves of the market separate a position, or the whole
cross pool, from liquidation.

A sigma here is the realised volatility of one horizon, NOT annualised: the sample standard
deviation of close-to-close log returns of the venue's klines, over the last `HOURLY_RETURNS`
closed hourly candles (1 h klines) and the last `DAILY_RETURNS` closed daily candles (1 d klines).
A "1 sigma hourly" move is therefore the size of a typical one-hour move of the last day, a
"1 sigma daily" move that of a typical day of the last month.

Distances are measured the way the sigma is: as the absolute log return from the mark to the
liquidation price (|ln(liq / mark)|), so a 10 % fall counts ln(0.9) = -10.54 %. "3 sigma
hourly" means the liquidation point lies three typical one-hour moves away; the articles' rule
"a move that is statistically probable within your timeframe should trigger a margin call, not
liquidation" reads: keep the distance above about 3 sigma of your trading horizon.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from enum import StrEnum

from monitor.domain.errors import InvalidInput
from monitor.domain.immutable import immutable
from monitor.domain.model import AccountRisk, AccountState, MarginMode

# 24 hourly returns = one day of hours (25 closes); 30 daily returns = one month of days.
HOURLY_RETURNS = 24
DAILY_RETURNS = 30
# The Greek small letter sigma, as alert texts and tables print it.
SIGMA = "\u03c3"


class Horizon(StrEnum):
    """The trading timeframe a sigma describes: a typical one-hour or one-day move."""

    HOURLY = "hourly"
    DAILY = "daily"

    @property
    def returns(self) -> int:
        """How many closed candles' returns the sigma of this horizon is computed from."""
        return HOURLY_RETURNS if self is Horizon.HOURLY else DAILY_RETURNS

    @property
    def symbol(self) -> str:
        """How the horizon reads after a sigma figure: "1.9 \u03c3 daily"."""
        return f"{SIGMA} {self.value}"


@immutable
class SymbolVolatility:
    """The realised volatility of one symbol's price: the size of a typical 1 h (`hourly`) and
    1 d (`daily`) move as a log return (0.01 = about 1 %). None = unknown (the venue did not serve
    its klines, or too few candles exist): no figure is then derived from it."""

    symbol: str
    hourly: float | None = None
    daily: float | None = None

    def sigma(self, horizon: Horizon) -> float | None:
        """The typical move of `horizon`, or None when unknown."""
        return self.hourly if horizon is Horizon.HOURLY else self.daily


@immutable
class PositionSigmas:
    """How many typical moves of its own symbol separate a position from its liquidation price.

    None where the symbol's sigma is unknown or the position has no liquidation price; 0.0 when
    its pool is already at or below maintenance margin.
    """

    symbol: str
    hourly: float | None
    daily: float | None

    def of(self, horizon: Horizon) -> float | None:
        """The distance in sigmas of `horizon`."""
        return self.hourly if horizon is Horizon.HOURLY else self.daily


@immutable
class VolatilityRisk:
    """The pool's risk in volatility units.

    `hourly_sigma` / `daily_sigma` is the typical move of the cross pool: its positions' sigmas
    weighted by notional (in the pool's currency), i.e. the move of the book if all its markets
    move together, which is what the account move assumes. `move_hourly` / `move_daily` is the
    account liquidation move in those sigmas (always >= 0; None where a sigma is unknown or no
    move liquidates). `positions` are in the order of `AccountRisk.positions`.
    """

    hourly_sigma: float | None
    daily_sigma: float | None
    move_hourly: float | None
    move_daily: float | None
    positions: tuple[PositionSigmas, ...]

    def pool_sigma(self, horizon: Horizon) -> float | None:
        """The pool's typical move of `horizon`."""
        return self.hourly_sigma if horizon is Horizon.HOURLY else self.daily_sigma

    def move(self, horizon: Horizon) -> float | None:
        """The account liquidation move in sigmas of `horizon`."""
        return self.move_hourly if horizon is Horizon.HOURLY else self.move_daily


def realised_sigma(closes: Sequence[float]) -> float:
    """The size of a typical move between consecutive closes: the sample standard deviation of
    the close-to-close log returns ln(close[i] / close[i-1]), oldest close first.

    Needs at least three closes (two returns) and positive prices; raises InvalidInput otherwise.
    """
    if len(closes) < 3:
        raise InvalidInput("closes", f"need at least 3 closes for a volatility, got {len(closes)}")
    for index, close in enumerate(closes):
        if not (math.isfinite(close) and close > 0.0):
            raise InvalidInput(f"closes[{index}]", f"must be a positive price, got {close!r}")
    returns = [math.log(later / earlier) for earlier, later in itertools.pairwise(closes)]
    return statistics.stdev(returns)


def in_sigmas(log_move: float, sigma: float | None) -> float | None:
    """A move (as a log return) in units of a typical move: |log_move| / sigma.

    None when the sigma is unknown or zero (a price that never moved gives no scale).
    """
    if sigma is None or not sigma > 0.0:
        return None
    return abs(log_move) / sigma


def assess_volatility(state: AccountState, risk: AccountRisk) -> VolatilityRisk:
    """Each position's distance to liquidation and the pool's account move in sigmas.

    A position's distance is |ln(liquidation price / mark)| over its symbol's sigma. The pool's
    sigma weighs every cross position's sigma by its notional in the pool's currency; it is
    unknown when any cross position's sigma is (a partial figure would understate the risk of
    the unknown part). Isolated positions do not move the cross pool and are left out of it.
    """
    known = {entry.symbol: entry for entry in state.volatility}
    prices = {coin.asset: coin.price for coin in state.collateral}
    positions = []
    weights: list[float] = []  # of the cross positions, with their sigmas below
    hourly: list[float | None] = []
    daily: list[float | None] = []
    cross = MarginMode.CROSS
    log = math.log
    for position, result in zip(state.positions, risk.positions, strict=True):
        entry = known.get(position.symbol)
        entry_hourly, entry_daily = (None, None) if entry is None else (entry.hourly, entry.daily)
        # A pool already at or below maintenance margin is 0 sigmas from liquidation. Written
        # out (`in_sigmas`, `_log_distance`): live marks run it for every position every second.
        liquidation, mark = result.liquidation_price, position.mark_price
        if result.distance_to_liquidation == 0.0:
            distance: float | None = 0.0
        elif liquidation is None or not liquidation > 0.0 or not mark > 0.0:
            distance = None
        else:
            distance = abs(log(liquidation / mark))
        if distance is None:
            positions.append(PositionSigmas(position.symbol, None, None))
        else:
            positions.append(
                PositionSigmas(
                    position.symbol,
                    distance / entry_hourly
                    if entry_hourly is not None and entry_hourly > 0.0
                    else None,
                    distance / entry_daily
                    if entry_daily is not None and entry_daily > 0.0
                    else None,
                )
            )
        if position.margin_mode is cross:
            # Pooled accounts add positions up in USD: a USDC position's notional counts at USDC's price.
            coin_price = prices.get(position.settle_asset or state.asset, 1.0) if prices else 1.0
            weights.append(abs(result.notional) * coin_price)
            hourly.append(entry_hourly)
            daily.append(entry_daily)
    pool_hourly, pool_daily = _weighted(weights, hourly), _weighted(weights, daily)
    move = risk.account_liquidation_move
    log_move = None if move is None or move <= -1.0 else math.log1p(move)
    return VolatilityRisk(
        hourly_sigma=pool_hourly,
        daily_sigma=pool_daily,
        move_hourly=None if log_move is None else in_sigmas(log_move, pool_hourly),
        move_daily=None if log_move is None else in_sigmas(log_move, pool_daily),
        positions=tuple(positions),
    )


def _weighted(weights: list[float], sigmas: list[float | None]) -> float | None:
    total = sum(weights)
    if not weights or total <= 0.0:
        return None
    weighted = 0.0
    for weight, sigma in zip(weights, sigmas, strict=True):
        if sigma is None:
            return None
        weighted += weight * sigma
    return weighted / total
