"""What-if scenarios: move marks, add or remove margin, and see what the engine says about the result."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

from monitor.domain.codec import split_symbol
from monitor.domain.errors import InvalidInput
from monitor.domain.immutable import immutable
from monitor.domain.model import AccountState, ExchangeAccountFigures, Position
from monitor.domain.units import format_amount, format_quantity, parse_percent

ALL_MARKS = "all"


@immutable
class Shock:
    """A relative move (-0.1 = falls 10 %) of one symbol's mark, of every price of one coin, or of
    every price when `symbol` is "all".

    A symbol (BTCUSDT) moves that symbol's marks only. A coin (BTC) moves the marks of every
    position on it and, in a pooled account, the price of that collateral coin. "all" moves every
    mark and every collateral coin that is not a stablecoin.
    """

    symbol: str
    move: float


@immutable
class MarginChange:
    """Margin moved into the account (negative: taken out). `asset` names the coin of a pooled
    account (in coin units: BTC=0.5 is half a bitcoin); None = the single-asset wallet."""

    amount: float
    asset: str | None = None


def parse_shock(text: str, *, path: str = "--shock") -> Shock:
    """Read "BTCUSDT=-10%" (one symbol), "BTC=-10%" (one coin) or "all=-5%" (every price): how far
    a trader wants to see prices move. The move is a percentage (with the % sign) above -100 %."""
    symbol, separator, amount = text.partition("=")
    symbol = symbol.strip()
    if not separator or not symbol or not amount.strip():
        raise InvalidInput(
            path,
            f"{text!r} is not SYMBOL=MOVE (examples: BTCUSDT=-10%, BTC=-10% for a coin, all=-5%)",
        )
    if not amount.strip().endswith("%"):
        # "all=5" is far more likely a forgotten % than a +500 % move: refuse to guess.
        raise InvalidInput(path, f"{text!r}: write the move as a percentage, e.g. {symbol}=-5%")
    move = parse_percent(amount, path=path)
    if move <= -1.0:
        raise InvalidInput(path, f"{text!r}: a price cannot fall 100 % or more")
    return Shock(symbol=symbol, move=move)


def underlying_of(position: Position) -> str | None:
    """The coin whose price the position's mark is: as the state says, else read from the symbol
    (BTCUSDT, BTCUSD_PERP, BTCPERP -> BTC)."""
    if position.underlying is not None:
        return position.underlying
    split = split_symbol(position.symbol)
    return None if split is None else split[0]


def apply_shocks(
    state: AccountState, shocks: Iterable[Shock], *, path: str = "--shock"
) -> AccountState:
    """The state with prices moved: price*(1+move) per shock, shocks on the same price compounding.

    A name is first a symbol the state holds (its marks move, collateral does not), then a coin:
    the underlying of some position or a collateral coin (marks on it and the coin's price move).
    A name that is none of these is an error: a typo would otherwise show an unchanged,
    reassuring result. The exchange's own figures no longer apply and are dropped; `venue_terms`
    (parts of a pool only the venue can value) stay as the venue reported them.
    """
    symbols = {position.symbol for position in state.positions}
    underlyings = [underlying_of(position) for position in state.positions]
    marks = [1.0] * len(state.positions)
    coins = [1.0] * len(state.collateral)
    for shock in shocks:
        name = shock.symbol
        factor = 1.0 + shock.move
        if name == ALL_MARKS:
            marks = [mark * factor for mark in marks]
            coins = [
                value if coin.stable else value * factor
                for coin, value in zip(state.collateral, coins, strict=True)
            ]
            continue
        if name in symbols:
            marks = [
                mark * factor if position.symbol == name else mark
                for position, mark in zip(state.positions, marks, strict=True)
            ]
            continue
        held = [coin.asset for coin in state.collateral]
        if name not in underlyings and name not in held:
            raise InvalidInput(path, _unknown(name, state, underlyings))
        marks = [
            mark * factor if underlying == name else mark
            for underlying, mark in zip(underlyings, marks, strict=True)
        ]
        coins = [
            value * factor if coin.asset == name else value
            for coin, value in zip(state.collateral, coins, strict=True)
        ]
    positions = tuple(
        _without_exchange_figures(replace(position, mark_price=position.mark_price * factor))
        for position, factor in zip(state.positions, marks, strict=True)
    )
    collateral = tuple(
        replace(coin, price=coin.price * factor)
        for coin, factor in zip(state.collateral, coins, strict=True)
    )
    return replace(
        state, positions=positions, collateral=collateral, reported=ExchangeAccountFigures()
    )


def add_margin(
    state: AccountState, amount: float, *, asset: str | None = None, path: str = "--add-margin"
) -> AccountState:
    """The state with `amount` moved into the account (negative: taken out).

    A single-asset pool takes it in its wallet (`asset`, if named, must be the pool's). A pooled
    account has several coins, so the coin must be named: adding to a coin it does not hold would
    need that coin's price and value ratio, which only the venue knows. Taking margin out cannot
    leave a negative balance (that would be a loan, not a withdrawal).
    """
    positions = tuple(_without_exchange_figures(position) for position in state.positions)
    if not state.pooled:
        if asset is not None and asset != state.asset:
            raise InvalidInput(path, f"this pool holds {state.asset}, not {asset}")
        wallet = state.wallet_balance + amount
        if wallet < 0:
            raise InvalidInput(
                path,
                f"removing {format_amount(-amount)} leaves a negative wallet "
                f"(balance {format_amount(state.wallet_balance)})",
            )
        return replace(
            state, wallet_balance=wallet, positions=positions, reported=ExchangeAccountFigures()
        )
    held = [coin.asset for coin in state.collateral]
    if asset is None:
        raise InvalidInput(
            path,
            f"a pooled account holds several coins: name one, e.g. {held[0]}={amount:g} "
            f"(has: {', '.join(held)})",
        )
    if asset not in held:
        raise InvalidInput(path, f"{asset} is not in collateral (has: {', '.join(held)})")
    index = held.index(asset)
    coin = state.collateral[index]
    quantity = coin.quantity + amount
    if amount < 0 and quantity < 0:
        raise InvalidInput(
            path,
            f"removing {format_quantity(-amount)} {asset} leaves a negative balance "
            f"(balance {format_quantity(coin.quantity)})",
        )
    collateral = list(state.collateral)
    collateral[index] = replace(coin, quantity=quantity)
    return replace(
        state,
        collateral=tuple(collateral),
        positions=positions,
        reported=ExchangeAccountFigures(),
    )


def parse_amount(text: str, *, path: str = "--add-margin") -> float:
    """A margin amount in the settlement asset, e.g. "500" or "-250.5"."""
    try:
        amount = float(text)
    except ValueError:
        amount = math.nan
    if not math.isfinite(amount):
        raise InvalidInput(path, f"{text!r} is not a number (examples: 500, -250.5, USDC=5000)")
    return amount


def parse_margin(text: str, *, path: str = "--add-margin") -> MarginChange:
    """ "500" (the single-asset wallet) or "USDC=5000" / "BTC=-0.1" (one coin of a pooled account)."""
    asset, separator, amount = text.partition("=")
    if not separator:
        return MarginChange(parse_amount(text, path=path))
    asset = asset.strip()
    if not asset:
        raise InvalidInput(path, f"{text!r} is not COIN=AMOUNT (example: USDC=5000)")
    return MarginChange(parse_amount(amount.strip(), path=path), asset)


def _unknown(name: str, state: AccountState, underlyings: list[str | None]) -> str:
    symbols = ", ".join(sorted({position.symbol for position in state.positions})) or "none"
    coins = sorted(
        {coin for coin in underlyings if coin is not None}
        | {coin.asset for coin in state.collateral}
    )
    listed = f"; coins: {', '.join(coins)}" if coins else ""
    return (
        f"no position in {name!r} and no such underlying or collateral coin "
        f"(positions: {symbols}{listed})"
    )


def _without_exchange_figures(position: Position) -> Position:
    return replace(position, exchange_liquidation_price=None, exchange_maintenance_margin=None)
