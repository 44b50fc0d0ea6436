"""Open protective orders of an account, read from the venues' raw order rows.

Binance USDⓈ-M / COIN-M keep conditional orders in two services since the algo-order migration
(binance-connector-python 29.0.0, 2025-11-07: `GET /fapi/v1/openAlgoOrders`): the algo service
and the classic order book (`GET /fapi/v1/openOrders`, `/dapi/v1/...`), each weight 1 per symbol
(40 without one); we ask per held symbol. Those two requests per symbol are most of a Binance
reconciliation (40 of its ~48 weight at 20 symbols), so while the account's user-data stream is
connected (an `OrderWatch`) the answers are kept: the stream reports every order placed, changed,
cancelled, triggered or expired (`ORDER_TRADE_UPDATE`, `ALGO_UPDATE`), and any report makes the
next fetch ask again; so does a gap in the stream, a change of the held symbols, or
`ORDERS_REREAD_SECONDS` since the last answers. Bybit keeps the position's own stop-loss on the
position row (`stopLoss`, `tpslMode` Full/Partial) and conditional orders in
`GET /v5/order/realtime?orderFilter=StopOrder` (one request per settle coin, 50 rows a page; it
counts in the per-UID order-query limit).

What becomes a `ProtectiveOrder` here is every conditional order with its kind as the venue says
it; the domain (`monitor.domain.stops.protects`) decides which ones protect which position.
A trailing stop counts at its current trigger; where the venue does not serve it (Binance:
"stopPrice: ignore for TRAILING_STOP_MARKET"; Bybit: `triggerPrice` is the activation price),
it is estimated on the cautious side (see `trailing_trigger`), and one not yet activated is not
counted: both are stated among the account's assumptions.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from monitor.domain.errors import (
    ExchangeDataError,
    ExchangeError,
    MonitorError,
)
from monitor.domain.model import AccountState, PoolModel, Side
from monitor.domain.stops import OrderKind, OrderSide, ProtectiveOrder
from monitor.exchanges.base import VenueClient, all_of
from monitor.exchanges.fields import as_list, as_mapping, optional_number, positive_or_none, text

log = logging.getLogger(__name__)

# A runaway cursor must not turn one poll into an unbounded crawl.
_MAX_PAGES = 20
# Binance open orders kept while the user-data stream reports no change are asked again after
# this long anyway: a bound on what an event lost inside a connection the venue kept up could cost.
# Ten minutes, not five: each read is two requests per held symbol (40 at 20 symbols); at 1,000
# accounts, reading every 5 minutes cost about 4 % of a core (bench/soak.py) and almost half of
# the REST weight, for a guard against an event lost inside a connection that stayed up.
ORDERS_REREAD_SECONDS = 600.0

_BINANCE_KINDS = {
    "STOP": OrderKind.STOP,
    "STOP_MARKET": OrderKind.STOP,
    "TAKE_PROFIT": OrderKind.TAKE_PROFIT,
    "TAKE_PROFIT_MARKET": OrderKind.TAKE_PROFIT,
    "TRAILING_STOP_MARKET": OrderKind.TRAILING_STOP,
}
_BINANCE_POSITION_SIDES = {"LONG": Side.LONG, "SHORT": Side.SHORT}
_BYBIT_STOPS = {"StopLoss", "PartialStopLoss"}
_BYBIT_TAKE_PROFITS = {"TakeProfit", "PartialTakeProfit"}
_BYBIT_HEDGE_LEGS = {1: Side.LONG, 2: Side.SHORT}


class OrderNotes:
    """What reading the orders had to assume, one sentence per kind (for `assumptions`)."""

    def __init__(self) -> None:
        self.estimated: list[str] = []
        self.inactive: list[str] = []

    def sentences(self) -> tuple[str, ...]:
        """The assumptions to show with the account's figures."""
        notes = []
        if self.estimated:
            notes.append(
                f"trailing stop on {', '.join(sorted(set(self.estimated)))} counted at a cautious "
                "trigger (mark minus its callback for a sell, plus for a buy): the venue does not "
                "serve the current trigger"
            )
        if self.inactive:
            notes.append(
                f"trailing stop on {', '.join(sorted(set(self.inactive)))} not counted: its "
                "activation price is not reached"
            )
        return tuple(notes)


def trailing_trigger(
    side: OrderSide,
    mark: float | None,
    activation: float | None,
    *,
    rate: float | None = None,
    distance: float | None = None,
) -> float | None:
    """The lowest-protection trigger a trailing stop can have now, or None if not yet activated.

    A sell trailing stop (protecting a long) activates once the price reaches `activation` (at
    once without one) and then triggers `rate` (a fraction) or `distance` below the highest price
    since; that highest price is at least the mark, so mark minus the callback is the trigger
    farthest from the mark it can have. A buy one mirrors it.
    """
    if mark is None:
        return None
    if activation is not None and activation > 0.0:
        reached = mark >= activation if side is OrderSide.SELL else mark <= activation
        if not reached:
            return None
    sign = -1.0 if side is OrderSide.SELL else 1.0
    if rate is not None:
        trigger = mark * (1.0 + sign * rate)
    elif distance is not None:
        trigger = mark + sign * distance
    else:
        return None
    return trigger if trigger > 0.0 else None


def binance_orders(
    rows: list[Any],
    source: str,
    marks: Mapping[str, float],
    notes: OrderNotes,
    where: str,
) -> list[ProtectiveOrder]:
    """Conditional orders among Binance open-order rows (classic `openOrders` rows name their
    type `type` and trigger `stopPrice`; algo rows `orderType` and `triggerPrice`)."""
    orders = []
    for index, raw in enumerate(rows):
        row_where = f"{where}[{index}]"
        if not isinstance(raw, Mapping):
            raise ExchangeDataError(f"{row_where}: expected a JSON object")
        # Algo rows name the type `orderType`, Portfolio Margin's conditional ones
        # `strategyType`, classic rows `type`.
        kind = _BINANCE_KINDS.get(
            str(raw.get("orderType") or raw.get("strategyType") or raw.get("type") or "")
        )
        if kind is None:
            continue  # limit and market orders close nothing on a move against the position
        symbol = text(raw, "symbol", row_where)
        side = _side(text(raw, "side", row_where), row_where)
        if kind is OrderKind.TRAILING_STOP:
            rate = optional_number(raw, "callbackRate", row_where)
            if rate is None:
                rate = optional_number(raw, "priceRate", row_where)
            trigger = trailing_trigger(
                side,
                marks.get(symbol),
                positive_or_none(
                    optional_number(raw, "activatePrice", row_where)
                    or optional_number(raw, "activationPrice", row_where)
                ),
                rate=None if rate is None else rate / 100.0,
            )
            if trigger is None:
                notes.inactive.append(symbol)
                continue
            notes.estimated.append(symbol)
        else:
            trigger = positive_or_none(
                optional_number(raw, "triggerPrice", row_where)
                if "triggerPrice" in raw
                else optional_number(raw, "stopPrice", row_where)
            )
            if trigger is None:
                raise ExchangeDataError(f"{row_where}: a conditional order without a trigger price")
        close_position = raw.get("closePosition") is True
        quantity = None if close_position else _quantity(raw, row_where)
        orders.append(
            ProtectiveOrder(
                symbol=symbol,
                side=side,
                kind=kind,
                trigger_price=trigger,
                quantity=quantity,
                reduce_only=close_position or raw.get("reduceOnly") is True,
                position_side=_BINANCE_POSITION_SIDES.get(str(raw.get("positionSide", "BOTH"))),
                source=source,
            )
        )
    return orders


def _quantity(raw: Mapping[str, Any], where: str) -> float | None:
    """Quantity still to fill (origQty/quantity less executedQty); None when the row has none."""
    total = optional_number(raw, "quantity", where)
    if total is None:
        total = optional_number(raw, "origQty", where)
    if total is None or total <= 0.0:
        raise ExchangeDataError(f"{where}: a conditional order without a quantity or closePosition")
    done = optional_number(raw, "executedQty", where) or 0.0
    left = total - done
    if left <= 0.0:
        raise ExchangeDataError(f"{where}: an open order with nothing left to fill")
    return left


def _side(value: str, where: str) -> OrderSide:
    lowered = value.lower()
    if lowered not in ("buy", "sell"):
        raise ExchangeDataError(f"{where}.side: {value!r} is neither BUY nor SELL")
    return OrderSide(lowered)


def bybit_position_orders(rows: list[tuple[str, Mapping[str, Any]]]) -> list[ProtectiveOrder]:
    """The stop-loss each position row carries itself in Full TP/SL mode (whole position).

    In Partial mode the row's `stopLoss` is not the protection: the partial stops are conditional
    orders (`PartialStopLoss`) and are read there.
    """
    orders = []
    for where, row in rows:
        stop = positive_or_none(optional_number(row, "stopLoss", where))
        if stop is None or str(row.get("tpslMode") or "Full") != "Full":
            continue
        held = text(row, "side", where)
        position_side = _BYBIT_HEDGE_LEGS.get(_index(row, where))
        orders.append(
            ProtectiveOrder(
                symbol=text(row, "symbol", where),
                # The stop closes the position: it trades against the held side.
                side=OrderSide.SELL if held == "Buy" else OrderSide.BUY,
                kind=OrderKind.STOP,
                trigger_price=stop,
                quantity=None,
                reduce_only=True,
                position_side=position_side,
                source="position",
            )
        )
    return orders


def bybit_orders(
    rows: list[Any],
    marks: Mapping[str, float],
    trailing: Mapping[tuple[str, int], float],
    notes: OrderNotes,
    where: str,
) -> list[ProtectiveOrder]:
    """Conditional orders among `/v5/order/realtime?orderFilter=StopOrder` rows.

    StopLoss/PartialStopLoss are the position's TP/SL (reduce-only by construction);
    TakeProfit/PartialTakeProfit never protect; a plain `Stop` counts as a stop when it triggers
    on the way against the position (`triggerDirection` 2 = fall for a sell, 1 = rise for a buy)
    and as a take-profit otherwise; `TrailingStop` rows carry the activation price and the
    position row the distance (`trailing`, by symbol and positionIdx).
    """
    orders = []
    for index, raw in enumerate(rows):
        row_where = f"{where}[{index}]"
        if not isinstance(raw, Mapping):
            raise ExchangeDataError(f"{row_where}: expected a JSON object")
        stop_type = str(raw.get("stopOrderType") or "")
        symbol = text(raw, "symbol", row_where)
        side = _side(text(raw, "side", row_where), row_where)
        leg = _index(raw, row_where)
        reduce_only = raw.get("reduceOnly") is True or raw.get("closeOnTrigger") is True
        trigger = positive_or_none(optional_number(raw, "triggerPrice", row_where))
        if stop_type in _BYBIT_STOPS:
            kind, reduce_only = OrderKind.STOP, True
        elif stop_type in _BYBIT_TAKE_PROFITS:
            kind, reduce_only = OrderKind.TAKE_PROFIT, True
        elif stop_type == "Stop":
            direction = raw.get("triggerDirection")
            against = 2 if side is OrderSide.SELL else 1
            kind = OrderKind.STOP if direction == against else OrderKind.TAKE_PROFIT
        elif stop_type == "TrailingStop":
            kind, reduce_only = OrderKind.TRAILING_STOP, True
            trigger = trailing_trigger(
                side, marks.get(symbol), trigger, distance=trailing.get((symbol, leg))
            )
            if trigger is None:
                notes.inactive.append(symbol)
                continue
            notes.estimated.append(symbol)
        else:
            continue  # tpslOrder, OcoOrder and the like are spot orders
        if trigger is None:
            raise ExchangeDataError(f"{row_where}.triggerPrice: missing")
        quantity = positive_or_none(optional_number(raw, "qty", row_where))
        orders.append(
            ProtectiveOrder(
                symbol=symbol,
                side=side,
                kind=kind,
                trigger_price=trigger,
                # StopLoss in Full mode closes the whole position whatever its qty says.
                quantity=None if stop_type in ("StopLoss", "TrailingStop") else quantity,
                reduce_only=reduce_only,
                position_side=_BYBIT_HEDGE_LEGS.get(leg),
                source="conditional",
            )
        )
    return orders


def bybit_trailing_distances(
    rows: list[tuple[str, Mapping[str, Any]]],
) -> dict[tuple[str, int], float]:
    """Each position's trailing-stop distance (`trailingStop`, in price), by symbol and leg."""
    distances = {}
    for where, row in rows:
        distance = positive_or_none(optional_number(row, "trailingStop", where))
        if distance is not None:
            distances[(text(row, "symbol", where), _index(row, where))] = distance
    return distances


def _index(row: Mapping[str, Any], where: str) -> int:
    value = row.get("positionIdx", 0)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ExchangeDataError(f"{where}.positionIdx: {value!r} is not 0, 1 or 2") from None


# Failures that leave the stops unknown for this poll instead of failing the account: the
# orders are optional data (an exhausted retry budget, a key without order permissions, a
# venue that does not serve the endpoint, a body we cannot read).
_OPTIONAL_FAILURES = ExchangeError


class OrderWatch:
    """What an account's private stream says about its open orders: since when it has been
    connected without a gap (None: it is not), and when it last reported a change. Times are
    `clock()` seconds (monotonic)."""

    __slots__ = ("_changed_at", "_clock", "_up_since")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._up_since: float | None = None
        self._changed_at = -float("inf")

    def connected(self) -> None:
        """The stream is up from now on (what happened before it is unknown)."""
        self._up_since = self._clock()

    def disconnected(self) -> None:
        """The stream dropped: changes may go unreported until it is up again."""
        self._up_since = None

    def changed(self) -> None:
        """The stream reported a change of the account (an order, a fill, a balance)."""
        self._changed_at = self._clock()

    def unchanged_since(self, moment: float) -> bool:
        """Whether orders asked for at `moment` still stand: the stream was up then, still is,
        and has reported nothing since."""
        up = self._up_since
        return up is not None and up <= moment and self._changed_at < moment


@dataclasses.dataclass(frozen=True, slots=True)
class _Answers:
    """The raw open-order pages of one read (marks are applied when they are parsed)."""

    asks: tuple[tuple[str, str, str], ...]
    asked_at: float
    pages: tuple[Any, ...]


class StopReader:
    """Reads an account's protective orders each reconciliation; a refusal leaves every stop
    `unknown` with one stated assumption (and one warning in the log until it reads again).
    With a `watch` on the account's Binance user-data stream, the last answers are kept while
    it reports no change (see the module's docstring)."""

    def __init__(
        self,
        client: VenueClient,
        watch: OrderWatch | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._failing = False
        self._watch = watch
        self._clock = clock
        self._answers: _Answers | None = None

    def _degraded(self, state: AccountState, error: MonitorError) -> AccountState:
        if not self._failing:
            log.warning(
                "%s: open orders unreadable, stop status unknown: %s", self.client.label, error
            )
        self._failing = True
        return dataclasses.replace(
            state,
            protective_orders=None,
            assumptions=(
                *state.assumptions,
                f"stop status unknown: the open orders could not be read ({error})",
            ),
        )

    def _read(
        self, state: AccountState, orders: list[ProtectiveOrder], notes: OrderNotes
    ) -> AccountState:
        if self._failing:
            log.info("%s: open orders readable again", self.client.label)
        self._failing = False
        return dataclasses.replace(
            state,
            protective_orders=tuple(orders),
            assumptions=(*state.assumptions, *notes.sentences()),
        )

    async def binance(self, state: AccountState) -> AccountState:
        """Both Binance order services, one request each per held symbol (weight 1 each), or
        the last answers while the user-data stream says they stand.

        USDⓈ-M / COIN-M: `openAlgoOrders` and `openOrders` on fapi / dapi. Portfolio Margin:
        `um/algo/openAlgoOrders` and the older `um/conditional/openOrders` on papi.
        """
        client = self.client
        if state.model is PoolModel.PORTFOLIO:
            services = (
                ("algo", "papiGetUmAlgoOpenAlgoOrders"),
                ("conditional", "papiGetUmConditionalOpenOrders"),
            )
        else:
            prefix = "dapiPrivate" if state.venue.inverse else "fapiPrivate"
            services = (
                ("algo", f"{prefix}GetOpenAlgoOrders"),
                ("openOrders", f"{prefix}GetOpenOrders"),
            )
        symbols = sorted({position.symbol for position in state.positions})
        marks = {position.symbol: position.mark_price for position in state.positions}
        asks = tuple((source, method, symbol) for source, method in services for symbol in symbols)
        notes = OrderNotes()
        try:
            pages = self._kept(asks, state.model)
            if pages is None:
                asked_at = self._clock()
                self._answers = None
                pages = tuple(
                    await all_of(
                        *(
                            client.request(
                                f"{source} open orders {symbol}", method, {"symbol": symbol}
                            )
                            for source, method, symbol in asks
                        )
                    )
                )
                self._answers = _Answers(asks, asked_at, pages)
            orders: list[ProtectiveOrder] = []
            for (source, _, symbol), page in zip(asks, pages, strict=True):
                where = f"{client.label}: {source} open orders {symbol}"
                # The algo service answers a list (some versions wrap it in {"orders": [...]}).
                rows = page.get("orders") if isinstance(page, Mapping) else page
                orders += binance_orders(as_list(rows, where), source, marks, notes, where)
        except _OPTIONAL_FAILURES as error:
            self._answers = None
            return self._degraded(state, error)
        return self._read(state, orders, notes)

    def _kept(
        self, asks: tuple[tuple[str, str, str], ...], model: PoolModel
    ) -> tuple[Any, ...] | None:
        """The last answers, if they still stand for `asks`; None: ask again. A Portfolio
        Margin account's orders live on papi, whose own user-data stream we do not follow."""
        answers, watch = self._answers, self._watch
        if answers is None or watch is None or model is PoolModel.PORTFOLIO:
            return None
        if answers.asks != asks or self._clock() - answers.asked_at >= ORDERS_REREAD_SECONDS:
            return None
        return answers.pages if watch.unchanged_since(answers.asked_at) else None

    async def bybit(
        self,
        state: AccountState,
        rows: list[tuple[str, Mapping[str, Any]]],
        category: str,
        settle_coins: tuple[str, ...],
    ) -> AccountState:
        """The positions' own stop-loss and the conditional orders of every settle coin."""
        marks = {position.symbol: position.mark_price for position in state.positions}
        notes = OrderNotes()
        try:
            orders = bybit_position_orders(rows)
            if state.positions:
                trailing = bybit_trailing_distances(rows)
                held = {position.settle_asset or state.asset for position in state.positions}
                # Only the settle coins positions are held in: an order without one protects nothing.
                coins = (
                    tuple(coin for coin in settle_coins if coin in held)
                    if category == "linear"
                    else (None,)
                )
                for coin in coins:
                    for page in await self._bybit_pages(category, coin):
                        orders += bybit_orders(page[1], marks, trailing, notes, page[0])
        except _OPTIONAL_FAILURES as error:
            return self._degraded(state, error)
        return self._read(state, orders, notes)

    async def _bybit_pages(self, category: str, coin: str | None) -> list[tuple[str, list[Any]]]:
        params: dict[str, Any] = {"category": category, "orderFilter": "StopOrder", "limit": 50}
        if coin is not None:
            params["settleCoin"] = coin
        pages = []
        sent: set[str] = set()
        for page in range(_MAX_PAGES):
            where = f"{self.client.label}: conditional orders {coin or category} page {page}"
            envelope = as_mapping(
                await self.client.request(
                    "conditional orders", "privateGetV5OrderRealtime", params
                ),
                where,
            )
            result = as_mapping(envelope.get("result"), f"{where}.result")
            pages.append((f"{where}.list", as_list(result.get("list"), f"{where}.list")))
            cursor = result.get("nextPageCursor")
            if not cursor or cursor in sent or not pages[-1][1]:
                return pages
            sent.add(str(cursor))
            params = {**params, "cursor": cursor}
        raise ExchangeDataError(
            f"{self.client.label}: conditional orders: more than {_MAX_PAGES} pages"
        )
