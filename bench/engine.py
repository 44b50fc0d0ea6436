"""Margin engine speed: a full recompute of many cross accounts, against plain bisection in the same run.

    .venv/bin/python bench/engine.py [--accounts 1000] [--positions 20] [--tiers 10] [--seed 7]

A full recompute is what the daemon does on every poll: equity, maintenance margin, every
position's liquidation price and the account-wide move. The baseline finds the same liquidation
prices and move by bisection on the margin condition (tier looked up at every probe, the other
positions' totals computed once per account), to 1e-12 relative. Both run on the same accounts;
the script prints their times, the ratio, and the largest relative difference between them.
"""

from __future__ import annotations

import argparse
import bisect
import random
import time

from monitor.domain.margin import assess
from monitor.domain.model import AccountState, MarginMode, Position, Side, Tier, Venue

# Binance BTCUSDT-like brackets: floors and rates; deductions follow from the cum recursion.
_FLOORS = [0.0, 5e4, 6e5, 3e6, 1.2e7, 7e7, 1e8, 2.3e8, 4.8e8, 6e8, 8e8, 1.2e9]
_RATES = [0.004, 0.005, 0.0065, 0.01, 0.02, 0.025, 0.05, 0.1, 0.125, 0.15, 0.25, 0.5]
_RELATIVE_TOLERANCE = 1e-12


def table(tier_count: int, scale: float) -> tuple[Tier, ...]:
    """A consistent bracket table (deductions keep margin continuous), floors scaled by `scale`."""
    tiers = []
    deduction = 0.0
    for index in range(tier_count):
        floor = _FLOORS[index] * scale
        if index:
            deduction += floor * (_RATES[index] - _RATES[index - 1])
        cap = _FLOORS[index + 1] * scale if index + 1 < tier_count else None
        tiers.append(Tier(floor=floor, cap=cap, mmr=_RATES[index], deduction=deduction))
    return tuple(tiers)


def accounts(count: int, positions: int, tier_count: int, seed: int) -> list[AccountState]:
    """Healthy cross accounts, mixed longs and shorts, notionals spread over several tiers.

    Positions are drawn from a market of 5 x `positions` symbols; like on the exchange, each
    symbol has one bracket table (one object, shared by every account holding the symbol).
    """
    rng = random.Random(seed)
    market = [
        (
            f"S{number}USDT",
            rng.uniform(0.5, 60_000.0),
            table(tier_count, 10 ** rng.uniform(-1.5, 0.0)),
        )
        for number in range(5 * positions)
    ]
    states = []
    for _ in range(count):
        rows = []
        gross = 0.0
        for symbol, mark, tiers in rng.sample(market, positions):
            notional = 10 ** rng.uniform(3.5, 7.3)
            gross += notional
            rows.append(
                Position(
                    symbol=symbol,
                    side=Side.LONG if rng.random() < 0.6 else Side.SHORT,
                    margin_mode=MarginMode.CROSS,
                    quantity=notional / mark,
                    entry_price=mark * rng.uniform(0.95, 1.05),
                    mark_price=mark,
                    tiers=tiers,
                )
            )
        wallet = gross * rng.uniform(0.08, 0.4)
        states.append(AccountState(Venue.BINANCE_USDM, wallet, tuple(rows)))
    return states


def _maintenance(position: Position, price: float) -> float:
    floors = [tier.floor for tier in position.tiers]
    tier = position.tiers[max(0, bisect.bisect_right(floors, position.quantity * price) - 1)]
    return position.quantity * price * tier.mmr - tier.deduction


def _pnl(position: Position, price: float) -> float:
    return position.side.sign * position.quantity * (price - position.entry_price)


def _bisect(surplus: object, low: float, high: float) -> float:
    """A root of surplus between low and high, where it has opposite signs."""
    f = surplus  # a callable; typed loosely to keep the baseline plain
    f_low = f(low)  # type: ignore[operator]
    while (high - low) > _RELATIVE_TOLERANCE * max(abs(high), abs(low), 1e-300):
        middle = 0.5 * (low + high)
        f_middle = f(middle)  # type: ignore[operator]
        if (f_middle > 0) == (f_low > 0):
            low, f_low = middle, f_middle
        else:
            high = middle
    return 0.5 * (low + high)


def _nearest_root(surplus: object, start: float, lowest: float, highest: float) -> float | None:
    """Bisection on each side of `start` (bracket grown by doubling), keeping the root nearest it."""
    f = surplus
    found = []
    step = start * 0.5
    low = start
    while low > lowest:
        candidate = max(lowest, low - step)
        if f(candidate) <= 0:  # type: ignore[operator]
            found.append(_bisect(f, candidate, low))
            break
        low, step = candidate, step * 2
    high, step = start, start * 0.5
    while high < highest:
        candidate = min(highest, high + step)
        if f(candidate) <= 0:  # type: ignore[operator]
            found.append(_bisect(f, high, candidate))
            break
        high, step = candidate, step * 2
    return min(found, key=lambda root: abs(root - start)) if found else None


def bisection(state: AccountState) -> tuple[list[float | None], float | None]:
    """Liquidation prices and account move of a (healthy, linear, cross) state by bisection."""
    positions = state.positions
    pnl = [_pnl(p, p.mark_price) for p in positions]
    margin = [_maintenance(p, p.mark_price) for p in positions]
    surplus = state.wallet_balance + sum(pnl) - sum(margin)
    prices: list[float | None] = []
    for index, position in enumerate(positions):
        rest = surplus - pnl[index] + margin[index]

        def own(price: float, position: Position = position, rest: float = rest) -> float:
            return rest + _pnl(position, price) - _maintenance(position, price)

        root = _nearest_root(
            own, position.mark_price, 1e-9 * position.mark_price, 1e6 * position.mark_price
        )
        prices.append(root)

    def shifted(factor: float) -> float:
        return state.wallet_balance + sum(
            _pnl(p, p.mark_price * factor) - _maintenance(p, p.mark_price * factor)
            for p in positions
        )

    factor = _nearest_root(shifted, 1.0, 1e-9, 1e6)
    return prices, None if factor is None else factor - 1.0


def _relative(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return 0.0 if a is b else float("inf")
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def main() -> None:
    """Time both solvers on the same accounts and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--positions", type=int, default=20)
    parser.add_argument("--tiers", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    states = accounts(args.accounts, args.positions, args.tiers, args.seed)

    started = time.perf_counter()
    risks = [assess(state) for state in states]
    engine_seconds = time.perf_counter() - started

    started = time.perf_counter()
    baseline = [bisection(state) for state in states]
    bisection_seconds = time.perf_counter() - started

    worst_price = worst_move = 0.0
    for risk, (prices, move) in zip(risks, baseline, strict=True):
        for position, price in zip(risk.positions, prices, strict=True):
            worst_price = max(worst_price, _relative(position.liquidation_price, price))
        worst_move = max(worst_move, _relative(risk.account_liquidation_move, move))
    moves = [r.account_liquidation_move for r in risks if r.account_liquidation_move is not None]

    print(
        f"{args.accounts} accounts x {args.positions} cross positions x {args.tiers}-tier tables "
        f"({len(moves)} with an account move, median {sorted(moves)[len(moves) // 2]:+.3%})"
    )
    print(f"engine (exact, piecewise linear): {engine_seconds:.3f} s")
    print(f"bisection baseline (1e-12 rel):    {bisection_seconds:.3f} s")
    print(f"speed-up: {bisection_seconds / engine_seconds:.1f}x")
    print(
        f"max relative difference: liquidation price {worst_price:.2e}, account move {worst_move:.2e}"
    )


if __name__ == "__main__":
    main()
