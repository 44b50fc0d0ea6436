"""Bybit v5 (Unified Trading Account): market data, positions, wallet balance, account and key info.

Handlers return the `result` object; the server wraps it in Bybit's envelope
`{"retCode": 0, "retMsg": "OK", "result": ..., "retExtInfo": {}, "time": ...}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.domain.margin import assess
from monitor.domain.model import MarginMode, Side, Venue
from monitor.simulator import bybit_pool, klines, orders
from monitor.simulator.market import (
    POOLED,
    PositionView,
    SimAccount,
    notional,
    unrealized_pnl,
)
from monitor.simulator.protocol import (
    Call,
    Endpoint,
    VenueReply,
    bybit_error,
    decimals_of,
    fmt,
    plain,
    quantity,
)
from monitor.simulator.scenario import BYBIT, Instrument

_LAUNCH_MS = "1585526400000"
_STABLE = frozenset({"USDT", "USDC", "USD"})


def endpoints() -> dict[str, Endpoint]:
    """Every Bybit path the simulator serves."""
    return {
        "/v5/market/time": Endpoint(BYBIT, "bybit", False, _time),
        "/v5/market/instruments-info": Endpoint(BYBIT, "bybit", False, _instruments_info),
        "/v5/market/tickers": Endpoint(BYBIT, "bybit", False, _tickers),
        "/v5/market/risk-limit": Endpoint(BYBIT, "bybit", False, _risk_limit),
        "/v5/market/kline": Endpoint(BYBIT, "bybit", False, klines.bybit),
        "/v5/position/list": Endpoint(BYBIT, "bybit", True, _position_list),
        "/v5/order/realtime": Endpoint(BYBIT, "bybit", True, _open_orders),
        "/v5/account/wallet-balance": Endpoint(BYBIT, "bybit", True, _wallet_balance),
        "/v5/account/info": Endpoint(BYBIT, "bybit", True, _account_info),
        "/v5/account/fee-rate": Endpoint(BYBIT, "bybit", True, _fee_rate),
        "/v5/user/query-api": Endpoint(BYBIT, "bybit", True, _query_api),
        "/v5/asset/coin/query-info": Endpoint(BYBIT, "bybit", True, _coin_info),
        "/v5/spot-margin-trade/collateral": Endpoint(BYBIT, "bybit", False, _collateral_tiers),
        "/v5/account/collateral-info": Endpoint(BYBIT, "bybit", True, _collateral_info),
    }


def _venue(call: Call, *, required: bool = True) -> Venue | None:
    category = call.params.get("category")
    if category is None:
        if required:
            raise bybit_error(10001, "params error: Category is invalid", now_ms=call.server_ms)
        return None
    if category == "linear":
        return Venue.BYBIT_LINEAR
    if category == "inverse":
        return Venue.BYBIT_INVERSE
    if category in ("spot", "option"):
        return None
    raise bybit_error(10001, "params error: Category is invalid", now_ms=call.server_ms)


def _selected(call: Call, venue: Venue | None) -> tuple[Instrument, ...]:
    if venue is None:
        return ()
    instruments = call.market.instruments(venue)
    symbol = call.params.get("symbol")
    if symbol is not None:
        instruments = tuple(i for i in instruments if i.symbol == symbol)
        if not instruments:
            raise bybit_error(10001, "params error: symbol invalid", now_ms=call.server_ms)
    return instruments


def _time(call: Call) -> dict[str, Any]:
    return {"timeSecond": str(call.server_ms // 1000), "timeNano": str(call.server_ms * 1_000_000)}


def _instruments_info(call: Call) -> dict[str, Any]:
    venue = _venue(call)
    rows = []
    # Nothing is pre-launching in the simulator; Bybit answers such filters with an empty list.
    if call.params.get("status") in (None, "Trading"):
        for instrument in _selected(call, venue):
            tiers = call.market.tiers(None, instrument)
            price_decimals = decimals_of(instrument.tick_size)
            qty_decimals = decimals_of(instrument.qty_step)
            rows.append(
                {
                    "symbol": instrument.symbol,
                    "contractType": "InversePerpetual"
                    if instrument.venue.inverse
                    else "LinearPerpetual",
                    "status": "Trading",
                    "baseCoin": instrument.base,
                    "quoteCoin": instrument.quote,
                    "launchTime": _LAUNCH_MS,
                    "deliveryTime": "0",
                    "deliveryFeeRate": "",
                    "priceScale": str(price_decimals),
                    "leverageFilter": {
                        "minLeverage": "1",
                        "maxLeverage": fmt(max(t.max_leverage for t in tiers), 2),
                        "leverageStep": "0.01",
                    },
                    "priceFilter": {
                        "minPrice": fmt(instrument.tick_size, price_decimals),
                        "maxPrice": fmt(10_000_000 - instrument.tick_size, price_decimals),
                        "tickSize": fmt(instrument.tick_size, price_decimals),
                    },
                    "lotSizeFilter": {
                        "maxOrderQty": "1000000",
                        "minOrderQty": fmt(
                            instrument.qty_step
                            if not instrument.venue.inverse
                            else instrument.contract_size,
                            qty_decimals,
                        ),
                        "qtyStep": fmt(instrument.qty_step, qty_decimals),
                        "postOnlyMaxOrderQty": "1000000",
                        "maxMktOrderQty": "100000",
                        "minNotionalValue": "5",
                    },
                    "unifiedMarginTrade": True,
                    "fundingInterval": 480,
                    "settleCoin": instrument.settle,
                    "copyTrading": "both",
                    "upperFundingRate": "0.005",
                    "lowerFundingRate": "-0.005",
                    "isPreListing": False,
                    "preListingInfo": None,
                    "displayName": "",
                }
            )
    page, cursor = _page(call, rows, default=500, maximum=1000)
    return {"category": call.params.get("category", ""), "list": page, "nextPageCursor": cursor}


def _spot_tickers(call: Call) -> dict[str, Any]:
    """Spot tickers of the coins the simulator prices, against USDT, with Bybit's `usdIndexPrice`
    (the USD index a UTA values the base coin at; USDCUSDT trades at par here)."""
    rows = []
    coins = sorted(set(call.market.prices.feeds) | (bybit_pool.STABLE - {"USDT", "USD"}))
    for coin in coins:
        price = call.market.usd_price(coin, call.elapsed)
        if price is None:
            continue
        symbol = f"{coin}USDT"
        if call.params.get("symbol") not in (None, symbol):
            continue
        rows.append(
            {
                "symbol": symbol,
                "lastPrice": fmt(price, 8),
                "bid1Price": fmt(price, 8),
                "ask1Price": fmt(price, 8),
                "usdIndexPrice": fmt(price, 8) if coin in bybit_pool.COLLATERAL_TIERS else "",
                "volume24h": "0",
                "turnover24h": "0",
            }
        )
    if call.params.get("symbol") is not None and not rows:
        raise bybit_error(10001, "Not supported symbols", now_ms=call.server_ms)
    return {"category": "spot", "list": rows}


def _collateral_tiers(call: Call) -> dict[str, Any]:
    wanted = call.params.get("currency")
    rows = []
    for coin, table in sorted(bybit_pool.COLLATERAL_TIERS.items()):
        if wanted not in (None, coin):
            continue
        tiers = []
        for number, (floor, ratio) in enumerate(table):
            cap = table[number + 1][0] if number + 1 < len(table) else None
            tiers.append(
                {
                    "minQty": plain(floor),
                    "maxQty": "" if cap is None else plain(cap),
                    "collateralRatio": plain(ratio),
                }
            )
        rows.append({"currency": coin, "collateralRatioList": tiers})
    return {"list": rows}


def _collateral_info(call: Call) -> dict[str, Any]:
    _account(call)
    wanted = call.params.get("currency")
    coins = sorted(set(bybit_pool.COLLATERAL_TIERS) | set(call.market.prices.feeds))
    rows = []
    for coin in coins:
        if wanted not in (None, coin):
            continue
        collateral = coin in bybit_pool.COLLATERAL_TIERS
        rows.append(
            {
                "currency": coin,
                "hourlyBorrowRate": "0.0000015",
                "maxBorrowingAmount": "1000000",
                "freeBorrowingLimit": "0",
                "freeBorrowAmount": "0",
                "borrowAmount": "0",
                "otherBorrowAmount": "0",
                "availableToBorrow": "1000000",
                "borrowable": True,
                "borrowUsageRate": "0",
                "marginCollateral": collateral,
                "collateralSwitch": collateral,
                "collateralRatio": plain(bybit_pool.COLLATERAL_TIERS[coin][0][1])
                if collateral
                else "0",
                "freeBorrowingAmount": "",
            }
        )
    return {"list": rows}


def _tickers(call: Call) -> dict[str, Any]:
    if call.params.get("category") == "spot":
        return _spot_tickers(call)
    return {"category": call.params.get("category", ""), "list": ticker_rows(call)}


def ticker_rows(call: Call) -> list[dict[str, Any]]:
    """The linear or inverse ticker rows `/v5/market/tickers` lists (the websocket `tickers`
    topic carries the same fields)."""
    venue = _venue(call)
    rows = []
    for instrument in _selected(call, venue):
        mark = fmt(call.mark(instrument), decimals_of(instrument.tick_size))
        rows.append(
            {
                "symbol": instrument.symbol,
                "lastPrice": mark,
                "indexPrice": mark,
                "markPrice": mark,
                "prevPrice24h": mark,
                "price24hPcnt": "0",
                "highPrice24h": mark,
                "lowPrice24h": mark,
                "prevPrice1h": mark,
                "openInterest": "0",
                "openInterestValue": "0",
                "turnover24h": "0",
                "volume24h": "0",
                "fundingRate": "0.0001",
                "nextFundingTime": str((call.market.now_ms() // 28_800_000 + 1) * 28_800_000),
                "predictedDeliveryPrice": "",
                "basisRate": "",
                "deliveryFeeRate": "",
                "deliveryTime": "0",
                "ask1Size": "1",
                "bid1Price": mark,
                "ask1Price": mark,
                "bid1Size": "1",
                "basis": "",
            }
        )
    return rows


def _risk_limit(call: Call) -> dict[str, Any]:
    venue = _venue(call)
    rows = []
    for instrument in _selected(call, venue):
        for index, tier in enumerate(call.market.tiers(None, instrument), start=1):
            rows.append(
                {
                    "id": index,
                    "symbol": instrument.symbol,
                    "riskLimitValue": plain(tier.cap),
                    "maintenanceMargin": plain(tier.mmr),
                    "initialMargin": plain(1 / tier.max_leverage),
                    "isLowestRisk": 1 if index == 1 else 0,
                    "maxLeverage": fmt(tier.max_leverage, 2),
                    "mmDeduction": plain(tier.deduction),
                }
            )
    return {"category": call.params.get("category", ""), "list": rows, "nextPageCursor": ""}


def _account(call: Call) -> SimAccount:
    assert call.account is not None  # signed endpoints run only with an authenticated account
    if not call.account.spec.permissions.read:
        raise bybit_error(
            10005,
            "Permission denied, please check your API key permissions.",
            now_ms=call.server_ms,
        )
    return call.account


def _position_list(call: Call) -> dict[str, Any]:
    account = _account(call)
    venue = _venue(call)
    symbol = call.params.get("symbol")
    settle = call.params.get("settleCoin")
    base = call.params.get("baseCoin")
    if venue is Venue.BYBIT_LINEAR and symbol is None and settle is None and base is None:
        raise bybit_error(
            10001,
            "Missing some parameters that must be filled in, symbol or settleCoin",
            now_ms=call.server_ms,
        )
    views = [
        view
        for pool in call.pools(account)
        if pool.venue is venue
        for view in pool.positions
        if (symbol is None or view.position.instrument.symbol == symbol)
        and (settle is None or view.position.instrument.settle == settle)
        and (base is None or view.position.instrument.base == base)
    ]
    rows = [_position_row(call, view) for view in views]
    if symbol is not None and venue is not None:
        # Asked by symbol, Bybit answers with a row even when flat (one per leg in hedge mode).
        instrument = _selected(call, venue)[0]
        hedge = account.spec.hedge and venue is Venue.BYBIT_LINEAR and instrument.settle == "USDT"
        held = {row["positionIdx"] for row in rows}
        for index in (1, 2) if hedge else (0,):
            if index not in held:
                rows.append(_flat_row(call, instrument, index))
    page, cursor = _page(call, rows, default=20, maximum=200)
    return {"list": page, "nextPageCursor": cursor, "category": call.params.get("category", "")}


def _page(
    call: Call, rows: list[dict[str, Any]], *, default: int, maximum: int
) -> tuple[list[dict[str, Any]], str]:
    """One page of `rows` by Bybit's `limit` and opaque `cursor` (an empty cursor: the last page)."""
    try:
        limit = int(call.params.get("limit", default))
        offset = int(call.params.get("cursor") or 0)
    except ValueError:
        raise bybit_error(
            10001, "params error: limit or cursor invalid", now_ms=call.server_ms
        ) from None
    if not 1 <= limit <= maximum or offset < 0:
        raise bybit_error(10001, f"params error: limit must be 1..{maximum}", now_ms=call.server_ms)
    end = offset + limit
    return rows[offset:end], str(end) if end < len(rows) else ""


def _position_index(view: PositionView) -> int:
    if not view.position.hedge:
        return 0
    return 1 if view.position.side is Side.LONG else 2


def _position_row(call: Call, view: PositionView) -> dict[str, Any]:
    position = view.position
    instrument = position.instrument
    mark = view.mark_price
    price_decimals = decimals_of(instrument.tick_size)
    tiers = call.market.tiers(None, instrument)
    value = notional(position, mark)
    risk_id = next((i for i, t in enumerate(tiers, start=1) if value < t.cap), len(tiers))
    isolated = position.margin_mode is MarginMode.ISOLATED
    initial = (
        position.isolated_margin
        if isolated and position.isolated_margin is not None
        else view.initial_margin
    )
    if instrument.venue.inverse:
        position_value = position.quantity * instrument.contract_size / position.entry_price
    else:
        position_value = position.quantity * position.entry_price
    liq = view.risk.liquidation_price
    updated = str(position.opened_ms)
    return {
        "positionIdx": _position_index(view),
        "riskId": risk_id,
        "riskLimitValue": plain(tiers[risk_id - 1].cap),
        "symbol": instrument.symbol,
        "side": "Buy" if position.side is Side.LONG else "Sell",
        "size": quantity(position.quantity, instrument.qty_step),
        "avgPrice": fmt(position.entry_price, price_decimals + 2),
        "positionValue": fmt(position_value),
        "tradeMode": 0,
        "autoAddMargin": 0,
        "positionStatus": "Normal",
        "leverage": fmt(position.leverage, 0)
        if position.leverage.is_integer()
        else str(position.leverage),
        "markPrice": fmt(mark, price_decimals),
        "liqPrice": fmt(liq) if liq is not None else "",
        "bustPrice": "",
        "positionIM": fmt(initial),
        "positionIMByMp": fmt(initial),
        "positionMM": fmt(view.risk.maintenance_margin),
        "positionMMByMp": fmt(view.risk.maintenance_margin),
        "positionBalance": fmt(initial),
        "takeProfit": "",
        "stopLoss": "",
        "trailingStop": "0",
        "sessionAvgPrice": "",
        "delta": "",
        "gamma": "",
        "vega": "",
        "theta": "",
        "unrealisedPnl": fmt(unrealized_pnl(position, mark)),
        "curRealisedPnl": "0",
        "cumRealisedPnl": "0",
        "adlRankIndicator": 2,
        "createdTime": updated,
        "updatedTime": updated,
        "seq": position.opened_ms,
        "isReduceOnly": False,
        "mmrSysUpdatedTime": "",
        "leverageSysUpdatedTime": "",
        "tpslMode": "Full",
        **(orders.bybit_position_fields(call.account, view) if call.account else {}),
    }


def _open_orders(call: Call) -> dict[str, Any]:
    """Open orders; only conditional ones rest in the simulator, so `orderFilter=Order` is empty."""
    account = _account(call)
    venue = _venue(call)
    params = call.params
    if venue is Venue.BYBIT_LINEAR and not {"symbol", "settleCoin", "baseCoin"} & set(params):
        raise bybit_error(
            10001,
            "Missing some parameters that must be filled in, symbol or settleCoin",
            now_ms=call.server_ms,
        )
    rows = (
        []
        if venue is None or params.get("orderFilter", "StopOrder") != "StopOrder"
        else orders.bybit_conditional_orders(call, account, venue)
    )
    page, cursor = _page(call, rows, default=20, maximum=50)
    return {"list": page, "nextPageCursor": cursor, "category": params.get("category", "")}


def _flat_row(call: Call, instrument: Instrument, index: int) -> dict[str, Any]:
    mark = fmt(call.mark(instrument), decimals_of(instrument.tick_size))
    tier = call.market.tiers(None, instrument)[0]
    return {
        "positionIdx": index,
        "riskId": 1,
        "riskLimitValue": plain(tier.cap),
        "symbol": instrument.symbol,
        "side": "",
        "size": "0",
        "avgPrice": "0",
        "positionValue": "0",
        "tradeMode": 0,
        "autoAddMargin": 0,
        "positionStatus": "Normal",
        "leverage": "10",
        "markPrice": mark,
        "liqPrice": "",
        "bustPrice": "",
        "positionIM": "0",
        "positionMM": "0",
        "positionBalance": "0",
        "takeProfit": "",
        "stopLoss": "",
        "trailingStop": "0",
        "unrealisedPnl": "0",
        "curRealisedPnl": "0",
        "cumRealisedPnl": "0",
        "adlRankIndicator": 0,
        "createdTime": "0",
        "updatedTime": "0",
        "seq": -1,
        "isReduceOnly": False,
        "tpslMode": "Full",
    }


def _usd_price(call: Call, coin: str) -> float:
    if coin in _STABLE:
        return 1.0
    if coin in call.market.prices.feeds:
        return call.market.prices.price(coin, call.elapsed)
    return 0.0


def _wallet_balance(call: Call) -> dict[str, Any]:
    account = _account(call)
    account_type = call.params.get("accountType")
    mode = account.spec.account_mode
    if mode == "classic" and account_type == "UNIFIED":
        # A classic account asked for the unified wallet: Bybit answers a bare 404 (pybit
        # issues #140 and #173: "This happens when you specify an accountType you don't have").
        raise VenueReply(404, "", content_type="text/plain")
    if account_type == "CONTRACT" and mode in ("classic", "unified-1.0"):
        return _contract_wallet(call, account)
    if account_type != "UNIFIED":
        raise bybit_error(10001, "accountType only support UNIFIED.", now_ms=call.server_ms)
    if bybit_pool.pooled(account.spec):
        return _pooled_wallet(call, account)
    return _coin_wallet(call, account, set(account.wallet), "UNIFIED")


def _contract_wallet(call: Call, account: SimAccount) -> dict[str, Any]:
    """UTA 1.0's inverse derivatives account: the coins that settle its inverse contracts."""
    inverse = {p.instrument.settle for p in account.positions if p.instrument.venue.inverse}
    coins = {c for c in account.wallet if c not in call.market.unified_wallet(account)} | inverse
    return _coin_wallet(call, account, coins, "CONTRACT", venues={Venue.BYBIT_INVERSE})


def _pooled_wallet(call: Call, account: SimAccount) -> dict[str, Any]:
    """A UTA in cross margin: every coin valued in USD, the account figures from the pooled engine."""
    pools = call.pools(account)
    pool = next((p for p in pools if p.asset == POOLED), None)
    views = pool.positions if pool is not None else ()
    if pool is not None:
        state, risk = pool.state, pool.risk
    else:
        state = call.market.pooled_state(account, [], call.elapsed)
        risk = assess(state)
    wanted = call.params.get("coin")
    rows = []
    totals = {"equity": 0.0, "wallet": 0.0, "pnl": 0.0, "im": 0.0}
    for collateral in state.collateral:
        held = [v for v in views if v.position.instrument.settle == collateral.asset]
        balance = collateral.quantity
        pnl = sum(unrealized_pnl(v.position, v.mark_price) for v in held)
        initial = sum(v.initial_margin for v in held)
        price = collateral.price
        totals["equity"] += (balance + pnl) * price
        totals["wallet"] += _valued(collateral.ratios, balance) * price
        totals["pnl"] += pnl * price
        totals["im"] += initial * price
        if wanted and collateral.asset not in wanted.split(","):
            continue
        rows.append(
            _coin_row(
                collateral.asset,
                balance,
                pnl,
                (balance + pnl) * price,
                initial,
                sum(v.risk.maintenance_margin for v in held),
                collateral=collateral.asset in bybit_pool.COLLATERAL_TIERS,
            )
        )
    return _wallet("UNIFIED", risk.equity, {**totals, "mm": risk.maintenance_margin}, rows)


def _valued(ratios: tuple[Any, ...], quantity: float) -> float:
    """A balance after its tiered collateral value ratio (liabilities in full)."""
    if quantity <= 0:
        return quantity
    value = 0.0
    for number, tier in enumerate(ratios):
        top = ratios[number + 1].floor if number + 1 < len(ratios) else float("inf")
        value += max(0.0, min(quantity, top) - tier.floor) * tier.ratio
    return value


def _coin_row(
    coin: str,
    balance: float,
    pnl: float,
    usd_value: float,
    initial: float,
    maintenance: float,
    *,
    collateral: bool,
) -> dict[str, Any]:
    return {
        "coin": coin,
        "equity": fmt(balance + pnl),
        "usdValue": fmt(usd_value),
        "walletBalance": fmt(balance),
        "free": "",
        "locked": "0",
        "spotHedgingQty": "0",
        "borrowAmount": "0",
        "availableToWithdraw": "",
        "accruedInterest": "0",
        "totalOrderIM": "0",
        "totalPositionIM": fmt(initial),
        "totalPositionMM": fmt(maintenance),
        "unrealisedPnl": fmt(pnl),
        "cumRealisedPnl": "0",
        "bonus": "0",
        "marginCollateral": collateral,
        "collateralSwitch": collateral,
        "availableToBorrow": "",
        "spotBorrow": "0",
    }


def _coin_wallet(
    call: Call,
    account: SimAccount,
    held: set[str],
    account_type: str,
    venues: set[Venue] | None = None,
) -> dict[str, Any]:
    """One pool per settle coin (isolated-margin mode, UTA 1.0's contract wallet)."""
    pools = [p for p in call.pools(account) if venues is None or p.venue in venues]
    coins = sorted(held | {pool.asset for pool in pools})
    wanted = call.params.get("coin")
    if wanted:
        coins = [c for c in coins if c in wanted.split(",")]
    rows = []
    total = {"equity": 0.0, "wallet": 0.0, "pnl": 0.0, "im": 0.0, "mm": 0.0}
    for coin in coins:
        views = [v for pool in pools if pool.asset == coin for v in pool.positions]
        cross = [v for v in views if v.position.margin_mode is MarginMode.CROSS]
        wallet = account.wallet.get(coin, 0.0) + sum(
            v.position.isolated_margin or 0.0 for v in views
        )
        pnl = sum(unrealized_pnl(v.position, v.mark_price) for v in views)
        position_im = sum(
            (v.position.isolated_margin or 0.0)
            if v.position.margin_mode is MarginMode.ISOLATED
            else v.initial_margin
            for v in views
        )
        position_mm = sum(v.risk.maintenance_margin for v in views)
        price = _usd_price(call, coin)
        total["equity"] += (wallet + pnl) * price
        total["wallet"] += wallet * price
        total["pnl"] += pnl * price
        # Account-level rates cover the cross pool only; isolated positions carry their own margin.
        total["im"] += sum(v.initial_margin for v in cross) * price
        total["mm"] += sum(v.risk.maintenance_margin for v in cross) * price
        rows.append(
            {
                "coin": coin,
                "equity": fmt(wallet + pnl),
                "usdValue": fmt((wallet + pnl) * price),
                "walletBalance": fmt(wallet),
                "free": "",
                "locked": "0",
                "spotHedgingQty": "0",
                "borrowAmount": "0",
                "availableToWithdraw": "",
                "accruedInterest": "0",
                "totalOrderIM": "0",
                "totalPositionIM": fmt(position_im),
                "totalPositionMM": fmt(position_mm),
                "unrealisedPnl": fmt(pnl),
                "cumRealisedPnl": "0",
                "bonus": "0",
                "marginCollateral": True,
                "collateralSwitch": True,
                "availableToBorrow": "",
                "spotBorrow": "0",
            }
        )
    return _wallet(account_type, total["wallet"] + total["pnl"], total, rows)


def _wallet(
    account_type: str, margin_balance: float, total: Mapping[str, float], rows: list[Any]
) -> dict[str, Any]:
    """The wallet-balance result: the account-level figures (USD) over the coin rows; `total`
    holds equity, wallet, pnl, im and mm."""
    im_rate = total["im"] / margin_balance if margin_balance > 0 else 0.0
    mm_rate = total["mm"] / margin_balance if margin_balance > 0 else 0.0
    summary = {
        "accountType": account_type,
        "accountLTV": "0",
        "accountIMRate": fmt(im_rate, 4),
        "accountIMRateByMp": fmt(im_rate, 4),
        "accountMMRate": fmt(mm_rate, 4),
        "accountMMRateByMp": fmt(mm_rate, 4),
        "totalEquity": fmt(total["equity"]),
        "totalWalletBalance": fmt(total["wallet"]),
        "totalMarginBalance": fmt(margin_balance),
        "totalAvailableBalance": fmt(max(0.0, margin_balance - total["im"])),
        "totalPerpUPL": fmt(total["pnl"]),
        "totalInitialMargin": fmt(total["im"]),
        "totalInitialMarginByMp": fmt(total["im"]),
        "totalMaintenanceMargin": fmt(total["mm"]),
        "totalMaintenanceMarginByMp": fmt(total["mm"]),
        "coin": rows,
    }
    return {"list": [summary]}


def _fee_rate(call: Call) -> dict[str, Any]:
    _account(call)
    rows = [
        {
            "symbol": instrument.symbol,
            "baseCoin": instrument.base if instrument.venue.inverse else "",
            "takerFeeRate": plain(instrument.taker_fee),
            "makerFeeRate": plain(instrument.taker_fee / 5.5),
        }
        for instrument in _selected(call, _venue(call))
    ]
    return {"list": rows}


def _account_info(call: Call) -> dict[str, Any]:
    account = _account(call)
    isolated = account.spec.margin_mode is MarginMode.ISOLATED
    # Bybit's unifiedMarginStatus: 1 classic, 4 UTA 1.0 (pro), 6 UTA 2.0 (pro).
    status = {"classic": 1, "unified-1.0": 4}.get(account.spec.account_mode, 6)
    return {
        "marginMode": "ISOLATED_MARGIN" if isolated else "REGULAR_MARGIN",
        "updatedTime": str(call.market.now_ms()),
        "unifiedMarginStatus": status,
        "dcpStatus": "OFF",
        "timeWindow": 10,
        "smpGroup": 0,
        "isMasterTrader": False,
        "spotHedgingStatus": "OFF",
    }


def _query_api(call: Call) -> dict[str, Any]:
    assert call.account is not None
    account = call.account
    permissions = account.spec.permissions
    wallet = []
    if permissions.transfer:
        wallet += ["AccountTransfer", "SubMemberTransfer"]
    if permissions.withdraw:
        wallet.append("Withdraw")
    trade = permissions.trade
    return {
        "id": str(account.spec.user_id),
        "note": account.name,
        "apiKey": account.spec.api_key,
        "readOnly": 0 if (trade or permissions.withdraw or permissions.transfer) else 1,
        "secret": "",
        "permissions": {
            "ContractTrade": ["Order", "Position"] if trade else [],
            "Spot": ["SpotTrade"] if trade else [],
            "Wallet": wallet,
            "Options": ["OptionsTrade"] if trade else [],
            "Derivatives": ["DerivativesTrade"] if trade else [],
            "CopyTrading": [],
            "BlockTrade": [],
            "Exchange": [],
            "NFT": [],
            "Affiliate": [],
        },
        "ips": ["127.0.0.1"] if permissions.ip_restrict else ["*"],
        "type": 1,
        "deadlineDay": 90,
        "expiredAt": "2030-01-01T00:00:00Z",
        "createdAt": "2026-01-01T00:00:00Z",
        "unified": 0,
        "uta": 1,
        "userID": account.spec.user_id,
        "inviterID": 0,
        "vipLevel": "No VIP",
        "mktMakerLevel": "0",
        "affiliateID": 0,
        "rsaPublicKey": "",
        "isMaster": True,
    }


def _coin_info(call: Call) -> dict[str, Any]:
    _account(call)
    coins = sorted(
        {i.base for i in call.market.scenario.instruments}
        | {i.settle for i in call.market.scenario.instruments}
    )
    rows = []
    for coin in coins:
        rows.append(
            {
                "name": coin,
                "coin": coin,
                "remainAmount": "1000000",
                "chains": [
                    {
                        "chainType": coin,
                        "confirmation": "1",
                        "withdrawFee": "0",
                        "depositMin": "0",
                        "withdrawMin": "0",
                        "chain": coin,
                        "chainDeposit": "1",
                        "chainWithdraw": "1",
                        "minAccuracy": "8",
                        "withdrawPercentageFee": "0",
                        "contractAddress": "",
                        "safeConfirmNumber": "1",
                    }
                ],
            }
        )
    return {"rows": rows}


# The private websocket's `position` and `wallet` topics carry the same rows.
position_row = _position_row
wallet_balance = _wallet_balance
