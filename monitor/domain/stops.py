"""Protective stops: which open orders protect a position, and whether they can still fire.

A stop-loss protects the trade thesis; the margin mode only protects the account. A stop that
sits beyond the position's liquidation price never fires: the venue liquidates first. For a cross
position that liquidation price is the dynamic one (every other mark held where it is), so a
stop set safely yesterday can end up beyond it because another position lost money.

What counts as protection (the venues' own rules, read by the exchange adapters into
`ProtectiveOrder`s): a stop or trailing stop that closes the position (opposite side; reduce-only,
close-position, or a hedge-mode close of that leg). Take-profits and stop entries that open or
add to a position are not protection. A trailing stop counts at its current trigger.
"""

from __future__ import annotations

from enum import StrEnum

from monitor.domain.immutable import immutable
from monitor.domain.model import AccountRisk, AccountState, Position, Side

# Coverage within this share of the size counts as whole (venues round quantities to lot steps).
_COVERAGE_TOLERANCE = 1e-9


class OrderKind(StrEnum):
    """What a conditional order does when it triggers, as far as protection is concerned."""

    STOP = "stop"  # stop-market or stop-limit: triggers as the price moves against the position
    TRAILING_STOP = "trailing_stop"  # follows the price; counts at its current trigger
    TAKE_PROFIT = "take_profit"  # triggers in profit: never protection


class OrderSide(StrEnum):
    """Buy or sell, as the order will be sent when it triggers."""

    BUY = "buy"
    SELL = "sell"


class StopStatus(StrEnum):
    """How well a position is protected by stops.

    - unknown: the venue did not serve the open orders this time (stated as an assumption);
    - none: no protective stop;
    - beyond_liquidation: the first stop lies at or beyond the liquidation price (long: stop <=
      liquidation price; short: stop >= it; for a cross position the dynamic one): the venue
      liquidates before it can fire;
    - partial: the stops that fire before liquidation close less than the whole size;
    - ok: stops that fire before liquidation close the whole position.
    """

    UNKNOWN = "unknown"
    NONE = "none"
    PARTIAL = "partial"
    BEYOND_LIQUIDATION = "beyond_liquidation"
    OK = "ok"

    @property
    def effective(self) -> bool:
        """True when the position has a stop that fires before liquidation (ok or partial)."""
        return self in (StopStatus.OK, StopStatus.PARTIAL)


@immutable
class ProtectiveOrder:
    """One open conditional order of the account, as the venue holds it.

    `quantity` is in the position's units (base units, contracts for inverse); None means the
    whole position (Binance `closePosition=true`, Bybit's position stop-loss in Full mode).
    `position_side` is the hedge-mode leg the order acts on (None in one-way mode).
    `reduce_only` is true for reduce-only and close-position orders.
    """

    symbol: str
    side: OrderSide
    kind: OrderKind
    trigger_price: float
    quantity: float | None = None
    reduce_only: bool = False
    position_side: Side | None = None
    source: str = ""  # where the venue keeps it (e.g. "algo", "openOrders", "position"), shown


@immutable
class PositionStop:
    """What the protective stops mean for one position.

    `stop_price` is the stop that triggers first (long: the highest; short: the lowest), None if
    there is none. `quantity_covered` is the share of the size the stops close (0..1).
    `loss_at_stop` is the PnL if the stops fill at their trigger prices (negative = a loss), in the
    pool's asset, for the covered quantity; `loss_at_stop_of_equity` is that PnL over the pool's
    equity (-0.02 = 2 % of the equity lost), None when equity is not positive. All None but the
    status when the open orders are unknown.
    """

    status: StopStatus
    stop_price: float | None = None
    quantity_covered: float | None = None
    loss_at_stop: float | None = None
    loss_at_stop_of_equity: float | None = None


UNKNOWN = PositionStop(StopStatus.UNKNOWN)
_NO_STOP = PositionStop(StopStatus.NONE, quantity_covered=0.0)


def position_stops(risk: AccountRisk) -> tuple[PositionStop, ...]:
    """Each position's stop (in order); `unknown` for a result computed without judging stops."""
    if len(risk.stops) == len(risk.positions):
        return risk.stops
    return tuple(UNKNOWN for _ in risk.positions)


def protects(order: ProtectiveOrder, position: Position) -> bool:
    """True when the order is a stop that closes (part of) this position when the price moves
    against it: same symbol, same leg, opposite side, and unable to open or add to a position."""
    if order.symbol != position.symbol or order.kind is OrderKind.TAKE_PROFIT:
        return False
    closing_side = OrderSide.SELL if position.side is Side.LONG else OrderSide.BUY
    if order.side is not closing_side:
        return False
    if order.position_side is not None:
        # Hedge mode: the leg is named; an opposite-side order on a leg can only close it.
        return order.position_side is position.side
    return order.reduce_only


def judge_stops(state: AccountState, risk: AccountRisk) -> tuple[PositionStop, ...]:
    """For every position (in order), its protective stop and whether it fires before the
    position is liquidated; every position is `unknown` when the open orders were not read."""
    orders = state.protective_orders
    if orders is None:
        return tuple(UNKNOWN for _ in state.positions)
    prices = {coin.asset: coin.price for coin in state.collateral}
    # Grouped by symbol once: an account may hold many orders on many symbols.
    by_symbol: dict[str, list[ProtectiveOrder]] = {}
    for order in orders:
        by_symbol.setdefault(order.symbol, []).append(order)
    inverse, equity = state.venue.inverse, risk.equity
    judged = []
    for position, computed in zip(state.positions, risk.positions, strict=True):
        stops = [o for o in by_symbol.get(position.symbol, ()) if protects(o, position)]
        if not stops:
            judged.append(_NO_STOP)
            continue
        # A pooled account counts in USD: PnL in a settlement coin converts at its price.
        price_in_pool = prices.get(position.settle_asset or state.asset, 1.0) if prices else 1.0
        judged.append(
            _judge(position, computed.liquidation_price, stops, inverse, price_in_pool, equity)
        )
    return tuple(judged)


def _judge(
    position: Position,
    liquidation: float | None,
    stops: list[ProtectiveOrder],
    inverse: bool,
    price_in_pool: float,
    equity: float,
) -> PositionStop:
    long = position.side is Side.LONG
    # In the order they trigger as the price moves against the position.
    stops = sorted(stops, key=lambda order: order.trigger_price, reverse=long)
    size = position.quantity
    remaining = size
    effective = 0.0
    pnl = 0.0
    for order in stops:
        closes = min(remaining, size if order.quantity is None else order.quantity)
        if closes <= 0.0:
            break
        remaining -= closes
        pnl += _pnl(position, closes, order.trigger_price, inverse)
        if not _beyond(order.trigger_price, liquidation, position.mark_price, long):
            effective += closes
    first = stops[0].trigger_price
    covered = min(1.0, (size - remaining) / size)
    if _beyond(first, liquidation, position.mark_price, long):
        status = StopStatus.BEYOND_LIQUIDATION
    elif effective < size * (1.0 - _COVERAGE_TOLERANCE):
        status = StopStatus.PARTIAL
    else:
        status = StopStatus.OK
    loss = pnl * price_in_pool
    return PositionStop(
        status=status,
        stop_price=first,
        quantity_covered=covered,
        loss_at_stop=loss,
        loss_at_stop_of_equity=loss / equity if equity > 0.0 else None,
    )


def _beyond(stop: float, liquidation: float | None, mark: float, long: bool) -> bool:
    """The venue liquidates before the price, moving from the mark, reaches the stop.

    Long: stop <= liquidation price; short: stop >= it. A liquidation price on the position's
    profit side (a hedge leg whose shared price is set by the bigger opposite leg) is never met
    on the way to the stop, so it does not count.
    """
    if liquidation is None:
        return False
    if long:
        return stop <= liquidation <= mark
    return stop >= liquidation >= mark


def _pnl(position: Position, quantity: float, price: float, inverse: bool) -> float:
    """PnL of `quantity` of the position closed at `price`, in its settlement asset."""
    sign = position.side.sign
    if inverse:
        size = quantity * position.contract_size
        return sign * size * (1.0 / position.entry_price - 1.0 / price)
    return sign * quantity * (price - position.entry_price)
