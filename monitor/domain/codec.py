"""JSON shapes of account states and engine results (the `calc` input and output formats).

Input numbers may be JSON numbers or decimal strings ("1535443.01"), so values copied from an
exchange payload paste in unchanged. Every error names the JSON path of the offending field.

A pooled account (Binance Multi-Assets or Portfolio Margin, Bybit UTA cross) lists its coins under
`collateral`; its figures are in USD. Its positions name the coin they settle in and the coin their
mark prices (`settle_asset`, `underlying`), derived from the symbol when left out (BTCUSDT: USDT
and BTC), because collateral in the underlying moves with the mark.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

from monitor.domain.errors import InvalidInput
from monitor.domain.model import (
    AccountRisk,
    AccountState,
    Collateral,
    CollateralTier,
    ExchangeAccountFigures,
    MarginMode,
    PoolModel,
    Position,
    Side,
    Tier,
    Venue,
    VenueTerm,
)
from monitor.domain.stops import OrderKind, OrderSide, ProtectiveOrder, position_stops
from monitor.domain.volatility import SymbolVolatility, VolatilityRisk

_STATE_KEYS = {
    "venue",
    "wallet_balance",
    "positions",
    "asset",
    "reported",
    "model",
    "collateral",
    "liquidation_ratio",
    "venue_terms",
    "assumptions",
    "volatility",
    "protective_orders",
}
_ORDER_KEYS = {
    "symbol",
    "side",
    "kind",
    "trigger_price",
    "quantity",
    "reduce_only",
    "position_side",
    "source",
}
_COLLATERAL_KEYS = {"asset", "quantity", "price", "ratio", "ratios", "liability_rate", "stable"}
_COLLATERAL_TIER_KEYS = {"floor", "ratio"}
_VENUE_TERM_KEYS = {"name", "equity", "maintenance_margin"}
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
    "settle_asset",
    "underlying",
}
_TIER_KEYS = {"floor", "cap", "mmr", "deduction"}

_Choice = TypeVar("_Choice", Side, MarginMode, PoolModel, OrderSide, OrderKind)

# Bounds on input figures, far outside real accounts (Binance's open-ended bracket caps are about
# 9.2e18, meme-coin prices about 1e-8) and far inside what products of floats can hold.
# Prices, quantities, contract sizes and leverage have the lower bound.
LARGEST_FIGURE = 1e30
SMALLEST_POSITIVE = 1e-12

# Coins a pooled state treats as `stable` unless told otherwise: their USD price stays put when
# marks move (`all=` shocks, the account-wide move). Anything else moves with the marks.
STABLECOINS = frozenset(
    {"USD", "USDT", "USDC", "FDUSD", "BUSD", "DAI", "USDE", "TUSD", "USDP", "PYUSD", "USD1"}
)

# Quote suffixes of linear symbols, longest first so FDUSD is not read as ...USD. Bybit's older
# USDC perpetuals are named BTCPERP, ETHPERP: their quote and settlement coin is USDC.
_QUOTES = (
    ("FDUSD", "FDUSD"),
    ("USDT", "USDT"),
    ("USDC", "USDC"),
    ("BUSD", "BUSD"),
    ("PERP", "USDC"),
    ("USD", "USD"),
)

# Binance Portfolio Margin liquidates at uniMMR 105 % (Binance FAQ 4868b2f1aa6c4d08af973328462bb0bd);
# every other model at an equity / maintenance margin of 100 %.
_BINANCE_PORTFOLIO_LIQUIDATION = 1.05

# What a pooled state's model defaults to on each venue (inverse venues cannot be pooled).
_POOLED_DEFAULT = {
    Venue.BINANCE_USDM: PoolModel.MULTI_ASSETS,
    Venue.BYBIT_LINEAR: PoolModel.UNIFIED,
}


def split_symbol(symbol: str) -> tuple[str, str] | None:
    """(underlying, quote coin) of an exchange symbol, or None when it has no known quote suffix.

    BTCUSDT -> (BTC, USDT), ETHUSDC -> (ETH, USDC), BTCPERP -> (BTC, USDC) (Bybit's USDC
    perpetual), BTCUSDT_250328 -> (BTC, USDT) (a Binance quarterly), BTCUSD_PERP -> (BTC, USD).
    """
    name = symbol.upper().split("_", 1)[0]
    for suffix, quote in _QUOTES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], quote
    return None


def state_from_json(obj: Any) -> AccountState:
    """Read one account state from its JSON form; raises InvalidInput naming the bad field's path."""
    data = _object(obj, "")
    required = (
        {"venue", "positions"} if "collateral" in data else {"venue", "wallet_balance", "positions"}
    )
    _check_keys(data, _STATE_KEYS, required, "")
    venue_name = data["venue"]
    try:
        venue = Venue(venue_name)
    except ValueError:
        known = ", ".join(v.value for v in Venue)
        raise InvalidInput("venue", f"unknown venue {venue_name!r} (one of: {known})") from None
    collateral = _collaterals(data.get("collateral"), venue)
    pooled = bool(collateral)
    model = _model(data.get("model"), venue, pooled)
    positions_raw = data["positions"]
    if not isinstance(positions_raw, list):
        raise InvalidInput("positions", "must be a list")
    positions = tuple(
        _position(item, f"positions[{index}]", pooled) for index, item in enumerate(positions_raw)
    )
    asset = data.get("asset", "USD" if pooled else "USDT")
    if not isinstance(asset, str) or not asset:
        raise InvalidInput("asset", "must be a non-empty string")
    if pooled:
        _check_settlement(positions, collateral, asset)
    wallet = data.get("wallet_balance")
    return AccountState(
        venue=venue,
        # A pooled account's coins are in `collateral`; its USD wallet total is shown, not used.
        wallet_balance=0.0 if wallet is None and pooled else _number(wallet, "wallet_balance"),
        positions=positions,
        asset=asset,
        reported=_reported(data.get("reported"), "reported"),
        model=model,
        collateral=collateral,
        liquidation_ratio=_liquidation_ratio(data.get("liquidation_ratio"), venue, model, pooled),
        venue_terms=_venue_terms(data.get("venue_terms"), pooled),
        assumptions=_assumptions(data.get("assumptions")),
        volatility=volatility_from_json(data.get("volatility"), "volatility"),
        protective_orders=_protective_orders(data.get("protective_orders")),
    )


def _protective_orders(obj: Any) -> tuple[ProtectiveOrder, ...] | None:
    """The account's open conditional orders; absent or null = not read (stop status unknown)."""
    if obj is None:
        return None
    if not isinstance(obj, list):
        raise InvalidInput("protective_orders", "must be a list of orders")
    orders = []
    for index, item in enumerate(obj):
        path = f"protective_orders[{index}]"
        data = _object(item, path)
        _check_keys(data, _ORDER_KEYS, {"symbol", "side", "kind", "trigger_price"}, path)
        reduce_only = data.get("reduce_only", False)
        if not isinstance(reduce_only, bool):
            raise InvalidInput(f"{path}.reduce_only", "must be true or false")
        quantity = data.get("quantity")
        position_side = data.get("position_side")
        source = data.get("source", "")
        if not isinstance(source, str):
            raise InvalidInput(f"{path}.source", "must be a string")
        orders.append(
            ProtectiveOrder(
                symbol=_text(data["symbol"], f"{path}.symbol"),
                side=_choice(OrderSide, data["side"], f"{path}.side"),
                kind=_choice(OrderKind, data["kind"], f"{path}.kind"),
                trigger_price=_positive(data["trigger_price"], f"{path}.trigger_price"),
                quantity=None if quantity is None else _positive(quantity, f"{path}.quantity"),
                reduce_only=reduce_only,
                position_side=None
                if position_side is None
                else _choice(Side, position_side, f"{path}.position_side"),
                source=source,
            )
        )
    return tuple(orders)


def _orders_to_json(orders: tuple[ProtectiveOrder, ...]) -> list[dict[str, Any]]:
    return [
        {
            "symbol": order.symbol,
            "side": order.side.value,
            "kind": order.kind.value,
            "trigger_price": order.trigger_price,
            "quantity": order.quantity,
            "reduce_only": order.reduce_only,
            "position_side": None if order.position_side is None else order.position_side.value,
            "source": order.source,
        }
        for order in orders
    ]


def _assumptions(obj: Any) -> tuple[str, ...]:
    if obj is None:
        return ()
    if not isinstance(obj, list) or not all(isinstance(item, str) for item in obj):
        raise InvalidInput("assumptions", "must be a list of strings")
    return tuple(obj)


def state_to_json(state: AccountState) -> dict[str, Any]:
    """The JSON form of an account state; `state_from_json` reads it back to an equal state.

    The pooled keys (`model`, `collateral`, `liquidation_ratio`, `venue_terms`) are written only
    for a state that uses them, so a single-asset state keeps the shape it always had.
    """
    document: dict[str, Any] = {
        "venue": state.venue.value,
        "wallet_balance": state.wallet_balance,
        "asset": state.asset,
        "positions": [_position_to_json(position, state.pooled) for position in state.positions],
        "reported": {
            "equity": state.reported.equity,
            "maintenance_margin": state.reported.maintenance_margin,
            "initial_margin": state.reported.initial_margin,
            "margin_ratio": state.reported.margin_ratio,
        },
    }
    if state.model is not PoolModel.SINGLE_ASSET:
        document["model"] = state.model.value
    if state.collateral:
        document["collateral"] = [
            {
                "asset": coin.asset,
                "quantity": coin.quantity,
                "price": coin.price,
                "ratios": [{"floor": tier.floor, "ratio": tier.ratio} for tier in coin.ratios],
                "liability_rate": coin.liability_rate,
                "stable": coin.stable,
            }
            for coin in state.collateral
        ]
    if state.collateral or state.liquidation_ratio != 1.0:
        document["liquidation_ratio"] = state.liquidation_ratio
    if state.venue_terms:
        document["venue_terms"] = [
            {
                "name": term.name,
                "equity": term.equity,
                "maintenance_margin": term.maintenance_margin,
            }
            for term in state.venue_terms
        ]
    if state.assumptions:
        document["assumptions"] = list(state.assumptions)
    if state.volatility:
        document["volatility"] = volatility_to_json(state.volatility)
    if state.protective_orders is not None:
        document["protective_orders"] = _orders_to_json(state.protective_orders)
    return document


def risk_to_json(
    risk: AccountRisk, state: AccountState | None = None, *, stops: bool | None = None
) -> dict[str, Any]:
    """The JSON form of what the engine computed (ratios as plain numbers, 2.0 = 200 %).

    Given the pooled `state` it was computed from, it also carries the pool's `model`, its
    `liquidation_ratio` and `collateral_values` (the USD value each coin adds to equity, PnL
    included, after value ratios). A single-asset result has exactly the fields it always had.
    Each position carries its stop fields (`stop_price`, `stop_quantity_covered`, `loss_at_stop`,
    `loss_at_stop_of_equity`, `stop_status`) when `stops` is true, or by default when the state
    lists its `protective_orders`.
    """
    document: dict[str, Any] = {
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
    if risk.volatility is not None:
        _add_sigmas(document, risk.volatility)
    if stops is None:
        stops = state is not None and state.protective_orders is not None
    if stops:
        for entry, stop in zip(document["positions"], position_stops(risk), strict=True):
            entry.update(
                stop_price=stop.stop_price,
                stop_quantity_covered=stop.quantity_covered,
                loss_at_stop=stop.loss_at_stop,
                loss_at_stop_of_equity=stop.loss_at_stop_of_equity,
                stop_status=stop.status.value,
            )
    if state is not None and state.pooled:
        document["model"] = state.model.value
        document["liquidation_ratio"] = state.liquidation_ratio
        document["collateral_values"] = [
            {"asset": coin.asset, "value": value}
            for coin, value in zip(state.collateral, risk.collateral_values, strict=True)
        ]
    return document


def _model(value: Any, venue: Venue, pooled: bool) -> PoolModel:
    if value is None:
        return _POOLED_DEFAULT[venue] if pooled else PoolModel.SINGLE_ASSET
    model = _choice(PoolModel, value, "model")
    if pooled and model is PoolModel.SINGLE_ASSET:
        raise InvalidInput(
            "model", "a single-asset account has no collateral list (use multi-assets, unified ...)"
        )
    if not pooled and model in (PoolModel.MULTI_ASSETS, PoolModel.UNIFIED, PoolModel.PORTFOLIO):
        raise InvalidInput("collateral", f"a {model.value} account needs its collateral coins")
    return model


def _collaterals(obj: Any, venue: Venue) -> tuple[Collateral, ...]:
    if obj is None:
        return ()
    if not isinstance(obj, list) or not obj:
        raise InvalidInput("collateral", "must be a non-empty list of coins")
    if venue.inverse:
        raise InvalidInput(
            "collateral",
            f"{venue.value} contracts are margined in their own coin: a pooled account is linear "
            "(binance-usdm or bybit-linear)",
        )
    coins: list[Collateral] = []
    for index, item in enumerate(obj):
        coin = _collateral(item, f"collateral[{index}]")
        if any(held.asset == coin.asset for held in coins):
            raise InvalidInput(f"collateral[{index}].asset", f"{coin.asset!r} is listed twice")
        coins.append(coin)
    return tuple(coins)


def _collateral(obj: Any, path: str) -> Collateral:
    data = _object(obj, path)
    _check_keys(data, _COLLATERAL_KEYS, {"asset", "quantity", "price"}, path)
    asset = _text(data["asset"], f"{path}.asset")
    if "ratio" in data and "ratios" in data:
        raise InvalidInput(f"{path}.ratios", "give either ratio or ratios, not both")
    if "ratios" in data:
        ratios = _collateral_tiers(data["ratios"], f"{path}.ratios")
    else:
        raw = data.get("ratio", 1.0)
        ratios = (CollateralTier(0.0, _rate(raw, f"{path}.ratio")),)
    liability = data.get("liability_rate")
    stable = data.get("stable", asset.upper() in STABLECOINS)
    if not isinstance(stable, bool):
        raise InvalidInput(f"{path}.stable", "must be true or false")
    return Collateral(
        asset=asset,
        # Negative = borrowed; a coin's balance has no lower bound of its own.
        quantity=_number(data["quantity"], f"{path}.quantity"),
        price=_positive(data["price"], f"{path}.price"),
        ratios=ratios,
        liability_rate=1.0 if liability is None else _positive(liability, f"{path}.liability_rate"),
        stable=stable,
    )


def _collateral_tiers(obj: Any, path: str) -> tuple[CollateralTier, ...]:
    if not isinstance(obj, list) or not obj:
        raise InvalidInput(path, "must be a non-empty list of {floor, ratio}")
    tiers: list[CollateralTier] = []
    for index, item in enumerate(obj):
        tier_path = f"{path}[{index}]"
        data = _object(item, tier_path)
        _check_keys(data, _COLLATERAL_TIER_KEYS, {"floor", "ratio"}, tier_path)
        floor = _number(data["floor"], f"{tier_path}.floor")
        if index == 0 and floor != 0:
            raise InvalidInput(f"{tier_path}.floor", "the first tier starts at quantity 0")
        if tiers and floor <= tiers[-1].floor:
            raise InvalidInput(f"{tier_path}.floor", "tiers must be in increasing order of floor")
        tiers.append(CollateralTier(floor, _rate(data["ratio"], f"{tier_path}.ratio")))
    return tuple(tiers)


def _rate(value: Any, path: str) -> float:
    rate = _number(value, path)
    if not 0 <= rate <= 1:
        raise InvalidInput(path, "must be a collateral value ratio in [0, 1], e.g. 0.95")
    return rate


def _liquidation_ratio(value: Any, venue: Venue, model: PoolModel, pooled: bool) -> float:
    if value is None:
        if model is PoolModel.PORTFOLIO and venue is Venue.BINANCE_USDM:
            return _BINANCE_PORTFOLIO_LIQUIDATION
        return 1.0
    ratio = _positive(value, "liquidation_ratio")
    if not pooled and ratio != 1.0:
        raise InvalidInput(
            "liquidation_ratio",
            "only a pooled account (with collateral) liquidates elsewhere than 1",
        )
    return ratio


def _venue_terms(obj: Any, pooled: bool) -> tuple[VenueTerm, ...]:
    if obj is None:
        return ()
    if not isinstance(obj, list):
        raise InvalidInput("venue_terms", "must be a list of {name, equity, maintenance_margin}")
    if obj and not pooled:
        raise InvalidInput(
            "venue_terms", "venue figures belong to a pooled account (with collateral)"
        )
    terms: list[VenueTerm] = []
    for index, item in enumerate(obj):
        path = f"venue_terms[{index}]"
        data = _object(item, path)
        _check_keys(data, _VENUE_TERM_KEYS, {"name"}, path)
        margin = _optional(data, "maintenance_margin", path) or 0.0
        if margin < 0:
            raise InvalidInput(f"{path}.maintenance_margin", "must be >= 0")
        terms.append(
            VenueTerm(
                name=_text(data["name"], f"{path}.name"),
                equity=_optional(data, "equity", path) or 0.0,
                maintenance_margin=margin,
            )
        )
    return tuple(terms)


def _check_settlement(
    positions: tuple[Position, ...], collateral: tuple[Collateral, ...], asset: str
) -> None:
    """Every cross position of a pool pays PnL and margin in one of its coins."""
    held = [coin.asset for coin in collateral]
    for index, position in enumerate(positions):
        if position.margin_mode is not MarginMode.CROSS:
            continue
        settle = position.settle_asset or asset
        if settle not in held:
            raise InvalidInput(
                f"positions[{index}].settle_asset",
                f'"{settle}" is not in collateral (has: {", ".join(held)})',
            )


def _position(obj: Any, path: str, pooled: bool) -> Position:
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
    symbol = _text(data["symbol"], f"{path}.symbol")
    settle_asset, underlying = _coins(data, symbol, margin_mode, path, pooled)
    return Position(
        symbol=symbol,
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
        settle_asset=settle_asset,
        underlying=underlying,
    )


def _coins(
    data: Mapping[str, Any], symbol: str, margin_mode: MarginMode, path: str, pooled: bool
) -> tuple[str | None, str | None]:
    """(settle_asset, underlying): as given (null = none), else derived from the symbol in a pooled
    state, where a cross position must say which coin pays its PnL."""
    given = {key: data[key] for key in ("settle_asset", "underlying") if key in data}
    for key, value in given.items():
        if value is not None:
            _text(value, f"{path}.{key}")
    derived = split_symbol(symbol) if pooled else None
    if (
        pooled
        and derived is None
        and "settle_asset" not in given
        and margin_mode is MarginMode.CROSS
    ):
        raise InvalidInput(
            f"{path}.settle_asset",
            f"cannot tell the settlement coin of {symbol!r} from its symbol: give settle_asset "
            "(and underlying)",
        )
    underlying_default, settle_default = derived or (None, None)
    settle = given.get("settle_asset", settle_default)
    underlying = given.get("underlying", underlying_default)
    return settle or None, underlying or None


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


def _position_to_json(position: Position, pooled: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
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
    # Written whenever the reader would otherwise derive something else: always in a pooled
    # state (null included), in a single-asset one only when set.
    if pooled or position.settle_asset is not None:
        document["settle_asset"] = position.settle_asset
    if pooled or position.underlying is not None:
        document["underlying"] = position.underlying
    return document


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


_SIGMA_KEYS = {"hourly", "daily"}


def volatility_from_json(obj: Any, path: str) -> tuple[SymbolVolatility, ...]:
    """`{"BTCUSDT": {"hourly": 0.008, "daily": 0.035}}`: each symbol's typical 1 h and 1 d move
    (standard deviation of log returns, not annualised); null or a missing key = unknown."""
    if obj is None:
        return ()
    data = _object(obj, path)
    entries = []
    for symbol, value in data.items():
        where = _join(path, symbol)
        sigmas = _object(value, where)
        _check_keys(sigmas, _SIGMA_KEYS, set(), where)
        hourly, daily = (_optional(sigmas, key, where) for key in ("hourly", "daily"))
        for key, sigma in (("hourly", hourly), ("daily", daily)):
            if sigma is not None and sigma < 0.0:
                raise InvalidInput(_join(where, key), f"must be >= 0, got {sigma!r}")
        entries.append(SymbolVolatility(symbol, hourly, daily))
    return tuple(entries)


def volatility_to_json(entries: tuple[SymbolVolatility, ...]) -> dict[str, Any]:
    """The JSON form `volatility_from_json` reads back."""
    return {entry.symbol: {"hourly": entry.hourly, "daily": entry.daily} for entry in entries}


def _add_sigmas(document: dict[str, Any], volatility: VolatilityRisk) -> None:
    """The pool's sigmas, the account move and each position's distance in sigmas."""
    document["volatility"] = {
        "hourly_sigma": volatility.hourly_sigma,
        "daily_sigma": volatility.daily_sigma,
        "account_move_sigmas": {"hourly": volatility.move_hourly, "daily": volatility.move_daily},
    }
    for position, sigmas in zip(document["positions"], volatility.positions, strict=True):
        position["distance_sigmas"] = {"hourly": sigmas.hourly, "daily": sigmas.daily}
