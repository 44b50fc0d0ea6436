"""Hypothesis strategies: random margin pools on every venue with consistent multi-tier tables."""

from __future__ import annotations

from hypothesis import strategies as st

from monitor.domain.model import AccountState, MarginMode, Position, Side, Tier, Venue


@st.composite
def tables(draw: st.DrawFn, notional: float) -> tuple[Tier, ...]:
    """A bracket table whose floors sit around `notional` and whose deductions follow the cum recursion."""
    count = draw(st.integers(1, 7))
    floor = notional * draw(st.floats(0.05, 0.9))
    rate = draw(st.floats(0.002, 0.03))
    tiers = [Tier(floor=0.0, cap=None, mmr=rate, deduction=0.0)]
    for _ in range(count - 1):
        previous = tiers[-1]
        rate = min(previous.mmr + draw(st.floats(0.0, 0.06)), 0.6)
        deduction = previous.deduction + floor * (rate - previous.mmr)
        tiers[-1] = Tier(previous.floor, floor, previous.mmr, previous.deduction)
        tiers.append(Tier(floor=floor, cap=None, mmr=rate, deduction=deduction))
        floor *= draw(st.floats(1.2, 5.0))
    return tuple(tiers)


@st.composite
def rough_tables(draw: st.DrawFn, notional: float) -> tuple[Tier, ...]:
    """A table as a careless source might send it: rates in any order, deductions not lining up."""
    count = draw(st.integers(2, 6))
    floor = notional * draw(st.floats(0.05, 0.9))
    tiers = [Tier(0.0, None, draw(st.floats(0.002, 0.2)), 0.0)]
    for _ in range(count - 1):
        rate = draw(st.floats(0.002, 0.2))
        deduction = floor * draw(st.floats(-0.1, 0.1))
        tiers.append(Tier(floor=floor, cap=None, mmr=rate, deduction=deduction))
        floor *= draw(st.floats(1.2, 5.0))
    return tuple(tiers)


def _magnitude(low: float, high: float) -> st.SearchStrategy[float]:
    """Log-uniform-ish numbers between low and high (prices and sizes span many decades)."""
    return st.floats(low, high).map(lambda exponent: 10.0**exponent)


@st.composite
def positions_for(
    draw: st.DrawFn,
    venue: Venue,
    symbol: str,
    side: Side,
    mode: MarginMode,
    mark: float,
    hedge: bool,
    rough: bool = False,
) -> Position:
    """One position of `venue` with a table around its notional (`rough`: an inconsistent one)."""
    entry = mark * draw(st.floats(0.8, 1.25))
    if venue.inverse:
        contract_size = draw(st.sampled_from([1.0, 10.0, 100.0]))
        quantity = draw(_magnitude(0.0, 5.0))
        notional = quantity * contract_size / mark
    else:
        contract_size = 1.0
        notional = draw(_magnitude(2.0, 7.0))
        quantity = notional / mark
    bybit = venue.exchange == "bybit"
    leverage = draw(st.sampled_from([None, 2.0, 10.0, 50.0])) if bybit else None
    taker_fee = draw(st.sampled_from([0.0, 0.00055])) if bybit else 0.0
    isolated_margin = None
    if mode is MarginMode.ISOLATED:
        isolated_margin = notional * draw(st.floats(0.01, 1.2))
    return Position(
        symbol=symbol,
        side=side,
        margin_mode=mode,
        quantity=quantity,
        entry_price=entry,
        mark_price=mark,
        tiers=draw(rough_tables(notional) if rough else tables(notional)),
        contract_size=contract_size,
        leverage=leverage,
        isolated_margin=isolated_margin,
        taker_fee=taker_fee,
        hedge=hedge,
    )


@st.composite
def pools(draw: st.DrawFn, *, rough: bool = False) -> AccountState:
    """A margin pool: a few cross and isolated positions, sometimes a hedged pair, any venue.

    `rough` gives every position an inconsistent table (margin jumps at floors, rates out of order).
    """
    venue = draw(st.sampled_from(list(Venue)))
    positions: list[Position] = []
    for number in range(draw(st.integers(1, 5))):
        mark = draw(_magnitude(-1.0, 5.0))
        symbol = f"S{number}"
        if draw(st.integers(0, 4)) == 0:
            for side in (Side.LONG, Side.SHORT):
                positions.append(
                    draw(positions_for(venue, symbol, side, MarginMode.CROSS, mark, True, rough))
                )
            continue
        side = draw(st.sampled_from([Side.LONG, Side.SHORT]))
        mode = draw(st.sampled_from([MarginMode.CROSS, MarginMode.CROSS, MarginMode.ISOLATED]))
        positions.append(draw(positions_for(venue, symbol, side, mode, mark, False, rough)))
    gross = sum(
        (
            p.quantity * p.contract_size / p.mark_price
            if venue.inverse
            else p.quantity * p.mark_price
        )
        for p in positions
    )
    wallet = gross * draw(st.floats(0.0, 1.0))
    return AccountState(venue=venue, wallet_balance=wallet, positions=tuple(positions))
