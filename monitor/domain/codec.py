"""JSON shapes of account states and engine results (the `calc` input and output formats).

Input numbers may be JSON numbers or decimal strings ("1535443.01"), so values copied from an
exchange payload paste in unchanged. Every error names the JSON path of the offending field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

from monitor.domain.errors import InvalidInput
from monitor.domain.model import (
    AccountRisk,
    AccountState,
    ExchangeAccountFigures,
    MarginMode,
    Position,
    Side,
    Tier,
    Venue,
)

_STATE_KEYS = {"venue", "wallet_balance", "positions", "asset", "reported"}
_REPORTED_KEYS = {"equity", "maintenance_margin", "initial_margin", "margin_ratio"}
_POSITION_REQUIRED = {
    "symbol",
    "side",
    "margin_mode",
    "quantity",
    "entry_price",
    "mark_price",
    "tiers",
}
_POSITION_KEYS = _POSITION_REQUIRED | {
    "contract_size",
    "leverage",
    "isolated_margin",
    "taker_fee",
    "hedge",
    "exchange_liquidation_price",
    "exchange_maintenance_margin",
}
_TIER_KEYS = {"floor", "cap", "mmr", "deduction"}

_Choice = TypeVar("_Choice", Side, MarginMode)

# Bounds on input figures, far outside real accounts (Binance's open-ended bracket caps are about
# 9.2e18, meme-coin prices about 1e-8) and far inside what products of floats can hold.
# Prices, quantities, contract sizes and leverage have the lower bound.
LARGEST_FIGURE = 1e30
SMALLEST_POSITIVE = 1e-12


def state_from_json(obj: Any) -> AccountState:
    """Read one account state from its JSON form; raises InvalidInput naming the bad field's path."""
    data = _object(obj, "")
    _check_keys(data, _STATE_KEYS, {"venue", "wallet_balance", "positions"}, "")
    venue_name = data["venue"]
    try:
        venue = Venue(venue_name)
    except ValueError:
        known = ", ".join(v.value for v in Venue)
        raise InvalidInput("venue", f"unknown venue {venue_name!r} (one of: {known})") from None
    positions_raw = data["positions"]
    if not isinstance(positions_raw, list):
        raise InvalidInput("positions", "must be a list")
    positions = tuple(
        _position(item, f"positions[{index}]") for index, item in enumerate(positions_raw)
    )
    asset = data.get("asset", "USDT")
    if not isinstance(asset, str) or not asset:
        raise InvalidInput("asset", "must be a non-empty string")
    return AccountState(
        venue=venue,
        wallet_balance=_number(data["wallet_balance"], "wallet_balance"),
        positions=positions,
        asset=asset,
        reported=_reported(data.get("reported"), "reported"),
    )


def state_to_json(state: AccountState) -> dict[str, Any]:
    """The JSON form of an account state; `state_from_json` reads it back to an equal state."""
    return {
        "venue": state.venue.value,
        "wallet_balance": state.wallet_balance,
        "asset": state.asset,
        "positions": [_position_to_json(position) for position in state.positions],
        "reported": {
            "equity": state.reported.equity,
            "maintenance_margin": state.reported.maintenance_margin,
            "initial_margin": state.reported.initial_margin,
            "margin_ratio": state.reported.margin_ratio,
        },
    }


def risk_to_json(risk: AccountRisk) -> dict[str, Any]:
    """The JSON form of what the engine computed (ratios as plain numbers, 2.0 = 200 %)."""
    return {
        "equity": risk.equity,
        "maintenance_margin": risk.maintenance_margin,
        "margin_ratio": risk.margin_ratio,
        "exchange_margin_ratio": risk.exchange_margin_ratio,
        "account_liquidation_move": risk.account_liquidation_move,
        "positions": [
            {
                "symbol": position.symbol,
                "side": position.side.value,
                "margin_mode": position.margin_mode.value,
                "notional": position.notional,
                "unrealized_pnl": position.unrealized_pnl,
                "maintenance_margin": position.maintenance_margin,
                "liquidation_price": position.liquidation_price,
                "distance_to_liquidation": position.distance_to_liquidation,
                "equity": position.equity,
                "margin_ratio": position.margin_ratio,
                "exchange_margin_ratio": position.exchange_margin_ratio,
            }
            for position in risk.positions
        ],
    }


def _position(obj: Any, path: str) -> Position:
    data = _object(obj, path)
    _check_keys(data, _POSITION_KEYS, _POSITION_REQUIRED, path)
    margin_mode = _choice(MarginMode, data["margin_mode"], f"{path}.margin_mode")
    isolated_margin = _optional(data, "isolated_margin", path)
    if margin_mode is MarginMode.ISOLATED:
        if isolated_margin is None:
            raise InvalidInput(f"{path}.isolated_margin", "required for an isolated position")
        if isolated_margin < 0:
            raise InvalidInput(f"{path}.isolated_margin", "must be >= 0")
    raw_leverage = data.get("leverage")
    leverage = None if raw_leverage is None else _positive(raw_leverage, f"{path}.leverage")
    taker_fee = _optional(data, "taker_fee", path)
    if taker_fee is not None and not 0 <= taker_fee < 1:
        raise InvalidInput(f"{path}.taker_fee", "must be a rate in [0, 1), e.g. 0.00055")
    hedge = data.get("hedge", False)
    if not isinstance(hedge, bool):
        raise InvalidInput(f"{path}.hedge", "must be true or false")
    tiers_raw = data["tiers"]
    if not isinstance(tiers_raw, list) or not tiers_raw:
        raise InvalidInput(f"{path}.tiers", "must be a non-empty list of tiers")
    tiers = tuple(_tier(item, f"{path}.tiers[{index}]") for index, item in enumerate(tiers_raw))
    for index in range(1, len(tiers)):
        if tiers[index].floor <= tiers[index - 1].floor:
            raise InvalidInput(
                f"{path}.tiers[{index}].floor", "tiers must be in increasing order of floor"
            )
    contract_size = _optional(data, "contract_size", path)
    return Position(
        symbol=_text(data["symbol"], f"{path}.symbol"),
        side=_choice(Side, data["side"], f"{path}.side"),
        margin_mode=margin_mode,
        quantity=_positive(data["quantity"], f"{path}.quantity"),
        entry_price=_positive(data["entry_price"], f"{path}.entry_price"),
        mark_price=_positive(data["mark_price"], f"{path}.mark_price"),
        tiers=tiers,
        contract_size=1.0
        if contract_size is None
        else _positive(contract_size, f"{path}.contract_size"),
        leverage=leverage,
        isolated_margin=isolated_margin,
        taker_fee=taker_fee or 0.0,
        hedge=hedge,
        exchange_liquidation_price=_optional(data, "exchange_liquidation_price", path),
        exchange_maintenance_margin=_optional(data, "exchange_maintenance_margin", path),
    )


def _tier(obj: Any, path: str) -> Tier:
    data = _object(obj, path)
    _check_keys(data, _TIER_KEYS, {"floor", "mmr"}, path)
    floor = _number(data["floor"], f"{path}.floor")
    if floor < 0:
        raise InvalidInput(f"{path}.floor", "must be >= 0")
    cap = _optional(data, "cap", path)
    if cap is not None and cap <= floor:
        raise InvalidInput(f"{path}.cap", "must be greater than floor (or null for no cap)")
    mmr = _number(data["mmr"], f"{path}.mmr")
    if not 0 <= mmr < 1:
        raise InvalidInput(f"{path}.mmr", "must be a rate in [0, 1), e.g. 0.004 for 0.4 %")
    deduction = _optional(data, "deduction", path)
    return Tier(floor=floor, cap=cap, mmr=mmr, deduction=deduction or 0.0)


def _reported(obj: Any, path: str) -> ExchangeAccountFigures:
    if obj is None:
        return ExchangeAccountFigures()
    data = _object(obj, path)
    _check_keys(data, _REPORTED_KEYS, set(), path)
    return ExchangeAccountFigures(
        equity=_optional(data, "equity", path),
        maintenance_margin=_optional(data, "maintenance_margin", path),
        initial_margin=_optional(data, "initial_margin", path),
        margin_ratio=_optional(data, "margin_ratio", path),
    )


def _position_to_json(position: Position) -> dict[str, Any]:
    return {
        "symbol": position.symbol,
        "side": position.side.value,
        "margin_mode": position.margin_mode.value,
        "hedge": position.hedge,
        "quantity": position.quantity,
        "contract_size": position.contract_size,
        "entry_price": position.entry_price,
        "mark_price": position.mark_price,
        "leverage": position.leverage,
        "isolated_margin": position.isolated_margin,
        "taker_fee": position.taker_fee,
        "tiers": [
            {"floor": tier.floor, "cap": tier.cap, "mmr": tier.mmr, "deduction": tier.deduction}
            for tier in position.tiers
        ],
        "exchange_liquidation_price": position.exchange_liquidation_price,
        "exchange_maintenance_margin": position.exchange_maintenance_margin,
    }


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _object(obj: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(obj, dict):
        raise InvalidInput(path, "must be a JSON object")
    return obj


def _check_keys(data: Mapping[str, Any], allowed: set[str], required: set[str], path: str) -> None:
    for key in data:
        if key not in allowed:
            raise InvalidInput(_join(path, str(key)), "unknown field")
    for key in sorted(required):
        if key not in data:
            raise InvalidInput(_join(path, key), "missing")


def _required(data: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in data:
        raise InvalidInput(_join(path, key), "missing")
    return data[key]


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput(path, "must be a number or a decimal string")
    try:
        number = float(value)
    except ValueError:
        raise InvalidInput(path, f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise InvalidInput(path, "must be a finite number")
    if abs(number) > LARGEST_FIGURE:
        # No account holds such figures, and products of them overflow the engine's floats.
        raise InvalidInput(path, f"must be at most {LARGEST_FIGURE:g} in size")
    return number


def _optional(data: Mapping[str, Any], key: str, path: str) -> float | None:
    value = data.get(key)
    return None if value is None else _number(value, _join(path, key))


def _positive(value: Any, path: str) -> float:
    number = _number(value, path)
    if number <= 0:
        raise InvalidInput(path, "must be > 0")
    if number < SMALLEST_POSITIVE:
        # Prices, quantities and sizes divide and multiply into each other: dust overflows
        # like a huge figure (inverse contracts divide by prices).
        raise InvalidInput(path, f"must be at least {SMALLEST_POSITIVE:g}")
    return number


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(path, "must be a non-empty string")
    return value


def _choice(kind: type[_Choice], value: Any, path: str) -> _Choice:
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(member.value for member in kind)
        raise InvalidInput(path, f"{value!r} is not one of: {known}") from None
