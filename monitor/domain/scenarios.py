"""What-if scenarios: move marks, add or remove margin, and see what the engine says about the result."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from monitor.domain.errors import InvalidInput
from monitor.domain.model import AccountState, ExchangeAccountFigures, Position
from monitor.domain.units import parse_percent

ALL_MARKS = "all"


@dataclass(frozen=True, slots=True)
class Shock:
    """A relative move of one symbol's mark (or of every mark when `symbol` is "all"): -0.1 = falls 10 %."""

    symbol: str
    move: float


def parse_shock(text: str, *, path: str = "--shock") -> Shock:
    """Read "BTCUSDT=-10%" (one symbol) or "all=-5%" (every mark): how far a trader wants to see
    the marks move. The move is a percentage (with the % sign) above -100 %."""
    symbol, separator, amount = text.partition("=")
    symbol = symbol.strip()
    if not separator or not symbol or not amount.strip():
        raise InvalidInput(path, f"{text!r} is not SYMBOL=MOVE (examples: BTCUSDT=-10%, all=-5%)")
    if not amount.strip().endswith("%"):
        # "all=5" is far more likely a forgotten % than a +500 % move: refuse to guess.
        raise InvalidInput(path, f"{text!r}: write the move as a percentage, e.g. {symbol}=-5%")
    move = parse_percent(amount, path=path)
    if move <= -1.0:
        raise InvalidInput(path, f"{text!r}: a mark cannot fall 100 % or more")
    return Shock(symbol=symbol, move=move)


def apply_shocks(
    state: AccountState, shocks: Iterable[Shock], *, path: str = "--shock"
) -> AccountState:
    """The state with marks moved: mark*(1+move) per shock, shocks on the same mark compounding.

    A shock naming a symbol the state does not hold is an error (a typo would otherwise show an
    unchanged, reassuring result). The exchange's own figures no longer apply and are dropped.
    """
    factors = [1.0] * len(state.positions)
    for shock in shocks:
        hit = False
        for index, position in enumerate(state.positions):
            if shock.symbol == ALL_MARKS or position.symbol == shock.symbol:
                factors[index] *= 1.0 + shock.move
                hit = True
        if not hit:
            held = ", ".join(sorted({position.symbol for position in state.positions})) or "none"
            raise InvalidInput(path, f"no position in {shock.symbol!r} (positions: {held})")
    positions = tuple(
        _without_exchange_figures(replace(position, mark_price=position.mark_price * factor))
        for position, factor in zip(state.positions, factors, strict=True)
    )
    return replace(state, positions=positions, reported=ExchangeAccountFigures())


def add_margin(state: AccountState, amount: float, *, path: str = "--add-margin") -> AccountState:
    """The state with `amount` moved into the cross wallet (negative: taken out); wallet stays >= 0."""
    wallet = state.wallet_balance + amount
    if wallet < 0:
        raise InvalidInput(
            path,
            f"removing {-amount:,.2f} leaves a negative wallet (balance {state.wallet_balance:,.2f})",
        )
    positions = tuple(_without_exchange_figures(position) for position in state.positions)
    return replace(
        state, wallet_balance=wallet, positions=positions, reported=ExchangeAccountFigures()
    )


def parse_amount(text: str, *, path: str = "--add-margin") -> float:
    """A margin amount in the settlement asset, e.g. "500" or "-250.5"."""
    try:
        amount = float(text)
    except ValueError:
        amount = math.nan
    if not math.isfinite(amount):
        raise InvalidInput(path, f"{text!r} is not a number (examples: 500, -250.5)")
    return amount


def _without_exchange_figures(position: Position) -> Position:
    return replace(position, exchange_liquidation_price=None, exchange_maintenance_margin=None)
