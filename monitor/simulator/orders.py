"""Resting conditional orders, as Binance's two order services and Bybit serve them.

The scenario's `accounts.NAME.orders` are served while the account holds a position in the
symbol (a venue cancels reduce-only orders with the position); they are never filled: the
simulator shows protection, it does not trade.

Binance since the algo-order migration (late 2025) keeps conditional orders in the algo service
(`GET /fapi/v1/openAlgoOrders`, rows with `algoId`, `orderType`, `triggerPrice`) while older ones
stay in the classic book (`GET /fapi/v1/openOrders`, `type`, `stopPrice`, trailing stops with
`activatePrice`/`priceRate` and a `stopPrice` to ignore). Bybit writes a Full-mode position
TP/SL on the position row (`stopLoss`, `takeProfit`, `tpslMode`) and lists it, like every
conditional order, in `GET /v5/order/realtime?orderFilter=StopOrder`.
"""

from __future__ import annotations

from typing import Any

from monitor.domain.model import Side, Venue
from monitor.simulator.market import PositionView, SimAccount
from monitor.simulator.protocol import Call, decimals_of, fmt, quantity
from monitor.simulator.scenario import Instrument, OrderSpec

_BINANCE_TYPES = {
    "stop": "STOP_MARKET",
    "stop_limit": "STOP",
    "take_profit": "TAKE_PROFIT_MARKET",
    "trailing_stop": "TRAILING_STOP_MARKET",
}
_CREATED_MS = 1_764_547_200_000


def _held(call: Call, account: SimAccount, venue: Venue) -> dict[str, Instrument]:
    return {
        view.position.instrument.symbol: view.position.instrument
        for pool in call.pools(account)
        if pool.venue is venue
        for view in pool.positions
    }


def _resting(
    call: Call, account: SimAccount, venue: Venue, service: str
) -> list[tuple[int, OrderSpec, Instrument]]:
    """(order number, order, instrument) of the resting orders of one service, by `symbol`."""
    held = _held(call, account, venue)
    wanted = call.params.get("symbol")
    return [
        (number, order, held[order.symbol])
        for number, order in enumerate(account.spec.orders)
        if order.service == service
        and order.symbol in held
        and (wanted is None or order.symbol == wanted)
    ]


def _price(value: float | None, instrument: Instrument) -> str:
    return "" if value is None else fmt(value, decimals_of(instrument.tick_size))


def _binance_position_side(order: OrderSpec) -> str:
    if order.position_side is None:
        return "BOTH"
    return "LONG" if order.position_side is Side.LONG else "SHORT"


def binance_algo_orders(call: Call, account: SimAccount, venue: Venue) -> list[dict[str, Any]]:
    """`GET /fapi/v1/openAlgoOrders` (and dapi): the algo service's open conditional orders."""
    return [
        _binance_algo_row(number, order, instrument)
        for number, order, instrument in _resting(call, account, venue, "algo")
    ]


def _binance_algo_row(number: int, order: OrderSpec, instrument: Instrument) -> dict[str, Any]:
    """Order number `number` of the account as `openAlgoOrders` lists it."""
    trailing = order.type == "trailing_stop"
    return {
        "algoId": 4_000_000 + number,
        "clientAlgoId": f"sim-algo-{number}",
        "algoType": "CONDITIONAL",
        "orderType": _BINANCE_TYPES[order.type],
        "symbol": order.symbol,
        "side": order.side.upper(),
        "positionSide": _binance_position_side(order),
        "timeInForce": "GTC",
        "quantity": "0"
        if order.quantity is None
        else quantity(order.quantity, instrument.qty_step),
        "algoStatus": "NEW",
        "triggerPrice": "" if trailing else _price(order.trigger_price, instrument),
        "price": _price(order.trigger_price, instrument) if order.type == "stop_limit" else "0",
        "icebergQuantity": None,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": "MARK_PRICE",
        "priceMatch": "NONE",
        "closePosition": order.quantity is None,
        "priceProtect": False,
        "reduceOnly": order.reduce_only and order.quantity is not None,
        "activatePrice": _price(order.activation_price, instrument) if trailing else "",
        "callbackRate": fmt(order.callback_rate or 0.0, 1) if trailing else "",
        "createTime": _CREATED_MS,
        "updateTime": _CREATED_MS,
        "triggerTime": 0,
        "goodTillDate": 0,
    }


# The user-data stream's short names for an algo order's fields (`ALGO_UPDATE`, Binance's
# documented example), by their names in `openAlgoOrders`.
_ALGO_UPDATE_KEYS = {
    "clientAlgoId": "caid",
    "algoId": "aid",
    "algoType": "at",
    "orderType": "o",
    "symbol": "s",
    "side": "S",
    "positionSide": "ps",
    "timeInForce": "f",
    "quantity": "q",
    "algoStatus": "X",
    "triggerPrice": "tp",
    "price": "p",
    "selfTradePreventionMode": "V",
    "workingType": "wt",
    "priceMatch": "pm",
    "closePosition": "cp",
    "priceProtect": "pP",
    "reduceOnly": "R",
    "triggerTime": "tt",
    "goodTillDate": "gtd",
}


def binance_algo_update(
    order: OrderSpec, number: int, instrument: Instrument, now: int
) -> dict[str, Any]:
    """The user-data stream's `ALGO_UPDATE` for an algo-service order just placed (number
    `number` among the account's orders): the same fields as its `openAlgoOrders` row, under
    the stream's names, with nothing executed yet."""
    row = _binance_algo_row(number, order, instrument)
    fields = {short: row[name] for name, short in _ALGO_UPDATE_KEYS.items()}
    return {
        "e": "ALGO_UPDATE",
        "T": now,
        "E": now,
        "o": {**fields, "ai": "", "ap": "0.00000", "aq": "0.00000", "act": "0"},
    }


def binance_open_orders(call: Call, account: SimAccount, venue: Venue) -> list[dict[str, Any]]:
    """`GET /fapi/v1/openOrders` (and dapi): the classic book's open conditional orders."""
    rows = []
    for number, order, instrument in _resting(call, account, venue, "classic"):
        trailing = order.type == "trailing_stop"
        kind = _BINANCE_TYPES[order.type]
        rows.append(
            {
                "avgPrice": "0.00000",
                "clientOrderId": f"sim-order-{number}",
                "cumQuote": "0",
                "executedQty": "0",
                "orderId": 2_000_000 + number,
                "origQty": "0"
                if order.quantity is None
                else quantity(order.quantity, instrument.qty_step),
                "origType": kind,
                "price": "0",
                "reduceOnly": order.reduce_only,
                "side": order.side.upper(),
                "positionSide": _binance_position_side(order),
                "status": "NEW",
                # Binance: "please ignore when order type is TRAILING_STOP_MARKET".
                "stopPrice": _price(order.activation_price or 0.0, instrument)
                if trailing
                else _price(order.trigger_price, instrument),
                "closePosition": order.quantity is None,
                "symbol": order.symbol,
                "time": _CREATED_MS,
                "timeInForce": "GTC",
                "type": kind,
                **(
                    {
                        "activatePrice": _price(order.activation_price, instrument),
                        "priceRate": fmt(order.callback_rate or 0.0, 1),
                    }
                    if trailing
                    else {}
                ),
                "updateTime": _CREATED_MS,
                "workingType": "MARK_PRICE",
                "priceProtect": False,
                "priceMatch": "NONE",
                "selfTradePreventionMode": "NONE",
                "goodTillDate": 0,
            }
        )
    return rows


def portfolio_conditional_orders(
    call: Call, account: SimAccount, venue: Venue
) -> list[dict[str, Any]]:
    """`GET /papi/v1/um/conditional/openOrders`: a Portfolio Margin account's older conditional
    orders (service "classic" in the scenario), in the strategy fields papi names them with."""
    rows: list[dict[str, Any]] = []
    for row in binance_open_orders(call, account, venue):
        number = row["orderId"] - 2_000_000
        rows.append(
            {
                "newClientStrategyId": f"sim-strategy-{number}",
                "strategyId": 3_000_000 + number,
                "strategyStatus": "NEW",
                "strategyType": row["type"],
                "origQty": row["origQty"],
                "price": row["price"],
                "reduceOnly": row["reduceOnly"],
                "side": row["side"],
                "positionSide": row["positionSide"],
                "stopPrice": row["stopPrice"],
                "symbol": row["symbol"],
                "bookTime": row["time"],
                "updateTime": row["updateTime"],
                "timeInForce": row["timeInForce"],
                **{str(key): row[key] for key in ("activatePrice", "priceRate") if key in row},
                "workingType": row["workingType"],
                "priceProtect": row["priceProtect"],
                "selfTradePreventionMode": "NONE",
                "goodTillDate": 0,
                "priceMatch": "NONE",
            }
        )
    return rows


def _bybit_leg(order: OrderSpec) -> int:
    if order.position_side is None:
        return 0
    return 1 if order.position_side is Side.LONG else 2


def _closes(order: OrderSpec, view: PositionView) -> bool:
    """The order is the position's own TP/SL (service "position" on this leg)."""
    position = view.position
    if order.service != "position" or order.symbol != position.instrument.symbol:
        return False
    if order.position_side is not None:
        return order.position_side is position.side
    return (order.side == "sell") == (position.side is Side.LONG)


def bybit_position_fields(account: SimAccount, view: PositionView) -> dict[str, Any]:
    """What a position row says of its own TP/SL: Full mode writes the prices on the row,
    Partial mode (an order with a quantity) leaves them to the PartialStopLoss orders."""
    instrument = view.position.instrument
    fields: dict[str, Any] = {}
    for order in account.spec.orders:
        if (
            order.type == "trailing_stop"
            and order.symbol == instrument.symbol
            and order.position_side in (None, view.position.side)
        ):
            fields["trailingStop"] = _price(order.distance, instrument)
        if not _closes(order, view):
            continue
        if order.quantity is not None:
            fields["tpslMode"] = "Partial"
            continue
        key = "takeProfit" if order.type == "take_profit" else "stopLoss"
        fields[key] = _price(order.trigger_price, instrument)
    return fields


def bybit_conditional_orders(call: Call, account: SimAccount, venue: Venue) -> list[dict[str, Any]]:
    """`GET /v5/order/realtime?orderFilter=StopOrder`: every untriggered conditional order,
    the positions' own TP/SL included (StopLoss, PartialStopLoss, TakeProfit, ...)."""
    settle = call.params.get("settleCoin")
    rows = []
    for service in ("position", "conditional"):
        for number, order, instrument in _resting(call, account, venue, service):
            if settle is not None and instrument.settle != settle:
                continue
            take_profit = order.type == "take_profit"
            if order.type == "trailing_stop":
                stop_type = "TrailingStop"
            elif service == "position":
                partial = "Partial" if order.quantity is not None else ""
                stop_type = partial + ("TakeProfit" if take_profit else "StopLoss")
            else:
                stop_type = "Stop"
            # A sell that triggers on a fall is a stop; on a rise, a take-profit.
            falls = (order.side == "sell") != take_profit
            trigger = (
                order.activation_price if order.type == "trailing_stop" else order.trigger_price
            )
            rows.append(
                {
                    "orderId": f"sim-{number:08d}-0000-0000-0000-000000000000",
                    "orderLinkId": "",
                    "blockTradeId": "",
                    "symbol": order.symbol,
                    "price": "0",
                    "qty": "0"
                    if order.quantity is None
                    else quantity(order.quantity, instrument.qty_step),
                    "side": "Sell" if order.side == "sell" else "Buy",
                    "isLeverage": "",
                    "positionIdx": _bybit_leg(order),
                    "orderStatus": "Untriggered",
                    "cancelType": "UNKNOWN",
                    "rejectReason": "EC_NoError",
                    "avgPrice": "",
                    "leavesQty": "0",
                    "leavesValue": "0",
                    "cumExecQty": "0",
                    "cumExecValue": "0",
                    "cumExecFee": "0",
                    "timeInForce": "IOC",
                    "orderType": "Limit" if order.type == "stop_limit" else "Market",
                    "stopOrderType": stop_type,
                    "orderIv": "",
                    "triggerPrice": _price(trigger, instrument) or "0",
                    "takeProfit": "",
                    "stopLoss": "",
                    "tpslMode": ("Partial" if order.quantity is not None else "Full")
                    if service == "position"
                    else "",
                    "tpLimitPrice": "",
                    "slLimitPrice": "",
                    "tpTriggerBy": "",
                    "slTriggerBy": "",
                    "triggerDirection": 2 if falls else 1,
                    "triggerBy": "MarkPrice",
                    "lastPriceOnCreated": "",
                    "reduceOnly": order.reduce_only or service == "position",
                    "closeOnTrigger": service == "position" and order.quantity is None,
                    "placeType": "",
                    "smpType": "None",
                    "smpGroup": 0,
                    "smpOrderId": "",
                    "createdTime": str(_CREATED_MS),
                    "updatedTime": str(_CREATED_MS),
                }
            )
    return rows
