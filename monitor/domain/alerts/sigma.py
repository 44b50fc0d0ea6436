"""The `move_in_sigma` rule and the sigma figures every alert about an account carries.

The rule reads the articles' advice "a move that is statistically probable within your trading
timeframe should trigger a margin call, not liquidation": it fires when the account-wide
liquidation move, or any position's distance to its liquidation price, is smaller than N typical
moves (sigmas) of the chosen horizon (default: 3 sigma of a 1 h move).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from monitor.domain.model import Snapshot
from monitor.domain.units import format_figure, format_percent, format_price
from monitor.domain.volatility import Horizon

Facts = dict[str, str | float | None]


def sigma_text(sigmas: float, horizon: Horizon, against: Sequence[float] = ()) -> str:
    """A distance in sigmas as the alerts print it: "1.9 sigma daily" with the Greek letter;
    never rounded onto or across a level in `against` ("2.96", not "3.0", below 3 sigma)."""
    return f"{format_figure(sigmas, against=against)} {horizon.symbol}"


def nearest_in_sigmas(
    snapshot: Snapshot, horizon: Horizon, against: Sequence[float] = ()
) -> tuple[float, Callable[[], str], Facts] | None:
    """What the `move_in_sigma` rule measures: the smallest of the account move and the
    positions' distances to liquidation, in sigmas of `horizon`, with a function that writes it
    in words (only a message needs them) and its facts (`against`: the rule's levels, which the
    figures in the words never round across).

    None while no needed sigma could be read (the alert keeps its state: unknown is not safe);
    inf when nothing in the account has a liquidation point.
    """
    volatility = snapshot.risk.volatility
    if volatility is None:
        return None
    risk = snapshot.risk
    nearest: float | None = None
    nearest_position = -1  # -1: the account move
    unknown = False
    move = risk.account_liquidation_move
    if move is not None:
        sigmas = volatility.move(horizon)
        if sigmas is None:
            unknown = True
        else:
            nearest = sigmas
    for number, (result, distance) in enumerate(
        zip(risk.positions, volatility.positions, strict=False)
    ):
        if result.liquidation_price is None or result.distance_to_liquidation is None:
            continue
        sigmas = distance.of(horizon)
        if sigmas is None:
            unknown = True
        elif nearest is None or sigmas < nearest:
            nearest, nearest_position = sigmas, number
    if nearest is None:
        if unknown:
            return None
        return math.inf, lambda: "nothing in the account has a liquidation point", {}
    found = nearest
    if nearest_position < 0:
        account_move = move or 0.0

        def account_words() -> str:
            shown = format_percent(account_move, signed=True)
            return f"account move {shown} = {sigma_text(found, horizon, against)}"

        facts: Facts = {"value": found, "symbol": None, "move": account_move}
        return found, account_words, {**facts, "horizon": horizon.value}
    held, result = snapshot.state.positions[nearest_position], risk.positions[nearest_position]
    distance_to_liquidation = result.distance_to_liquidation or 0.0

    def position_words() -> str:
        return (
            f"{held.symbol} {held.side.value} {format_percent(distance_to_liquidation)} "
            f"from its liquidation price {format_price(result.liquidation_price or 0.0)} = "
            f"{sigma_text(found, horizon, against)}"
        )

    facts = {"value": found, "symbol": held.symbol, "distance": distance_to_liquidation}
    return found, position_words, {**facts, "horizon": horizon.value}


def sigma_clause(snapshot: Snapshot) -> str:
    """ " (= 1.9 sigma daily, 6.2 sigma hourly)" (Greek letter) after the account move, or ""
    when no sigma is known."""
    volatility = snapshot.risk.volatility
    if volatility is None:
        return ""
    known = [
        sigma_text(sigmas, horizon)
        for horizon in (Horizon.DAILY, Horizon.HOURLY)
        if (sigmas := volatility.move(horizon)) is not None
    ]
    return f" (= {', '.join(known)})" if known else ""


def sigma_facts(snapshot: Snapshot) -> Facts:
    """The account move in sigmas for machine-readable sinks (absent without volatility)."""
    volatility = snapshot.risk.volatility
    if volatility is None:
        return {}
    return {
        "account_move_sigmas_hourly": volatility.move_hourly,
        "account_move_sigmas_daily": volatility.move_daily,
    }
