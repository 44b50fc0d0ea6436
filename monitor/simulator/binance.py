"""Binance USDⓈ-M (fapi), COIN-M (dapi) and the sapi key-permission endpoint, as ccxt 4.5 calls them.

Field names, string-encoded numbers and error codes follow Binance's API documentation; payloads carry
the fields ccxt's parsers read plus the ones a careful client reads from `info`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.domain.model import MarginMode, Side, Venue
from monitor.simulator import binance_pool, klines, orders
from monitor.simulator.market import (
    PoolView,
    PositionView,
    SimAccount,
    notional,
    unrealized_pnl,
)
from monitor.simulator.protocol import (
    Call,
    Endpoint,
    binance_error,
    decimals_of,
    fmt,
    plain,
    quantity,
)
from monitor.simulator.scenario import BINANCE, BINANCE_USDM_ASSETS, Instrument

_FAR_FUTURE_MS = 4133404800000
_ONBOARD_MS = 1569398400000


def endpoints() -> dict[str, Endpoint]:
    """Every Binance path the simulator serves."""

    def public(family: str, handler: Any, weight: Any = None) -> Endpoint:
        if weight is None:
            return Endpoint(BINANCE, family, False, handler)
        return Endpoint(BINANCE, family, False, handler, weight)

    def signed(family: str, handler: Any, weight: int) -> Endpoint:
        return Endpoint(BINANCE, family, True, _gated(family, handler), lambda _p: weight)

    return {
        "/fapi/v1/ping": public("fapi", lambda _c: {}),
        "/fapi/v1/time": public("fapi", _time),
        "/fapi/v1/exchangeInfo": public("fapi", lambda c: _exchange_info(c, Venue.BINANCE_USDM)),
        "/fapi/v1/premiumIndex": public("fapi", lambda c: _premium_index(c, Venue.BINANCE_USDM)),
        "/fapi/v1/ticker/24hr": public(
            "fapi",
            lambda c: _ticker_24hr(c, Venue.BINANCE_USDM),
            lambda p: 1 if "symbol" in p else 40,
        ),
        "/fapi/v1/klines": public(
            "fapi", lambda c: klines.binance(c, Venue.BINANCE_USDM), klines.binance_weight
        ),
        "/fapi/v1/leverageBracket": signed("fapi", lambda c: _brackets(c, Venue.BINANCE_USDM), 1),
        "/fapi/v3/positionRisk": signed(
            "fapi", lambda c: _position_risk(c, Venue.BINANCE_USDM, 3), 5
        ),
        "/fapi/v2/positionRisk": signed(
            "fapi", lambda c: _position_risk(c, Venue.BINANCE_USDM, 2), 5
        ),
        "/fapi/v3/account": signed("fapi", lambda c: _account(c, Venue.BINANCE_USDM, 3), 5),
        "/fapi/v2/account": signed("fapi", lambda c: _account(c, Venue.BINANCE_USDM, 2), 5),
        "/fapi/v3/balance": signed("fapi", lambda c: _balance(c, Venue.BINANCE_USDM), 5),
        "/fapi/v2/balance": signed("fapi", lambda c: _balance(c, Venue.BINANCE_USDM), 5),
        "/fapi/v1/positionSide/dual": signed("fapi", _dual_side, 30),
        "/fapi/v1/multiAssetsMargin": signed("fapi", _multi_assets_margin, 30),
        "/fapi/v1/assetIndex": public("fapi", _asset_index, lambda p: 1 if "symbol" in p else 10),
        "/fapi/v1/symbolConfig": signed("fapi", _symbol_config, 5),
        "/fapi/v1/openAlgoOrders": _orders("fapi", orders.binance_algo_orders, Venue.BINANCE_USDM),
        "/fapi/v1/openOrders": _orders("fapi", orders.binance_open_orders, Venue.BINANCE_USDM),
        "/dapi/v1/openAlgoOrders": _orders("dapi", orders.binance_algo_orders, Venue.BINANCE_COINM),
        "/dapi/v1/openOrders": _orders("dapi", orders.binance_open_orders, Venue.BINANCE_COINM),
        "/dapi/v1/ping": public("dapi", lambda _c: {}),
        "/dapi/v1/time": public("dapi", _time),
        "/dapi/v1/exchangeInfo": public("dapi", lambda c: _exchange_info(c, Venue.BINANCE_COINM)),
        "/dapi/v1/premiumIndex": public(
            "dapi", lambda c: _premium_index(c, Venue.BINANCE_COINM), lambda _p: 10
        ),
        "/dapi/v1/klines": public(
            "dapi", lambda c: klines.binance(c, Venue.BINANCE_COINM), klines.binance_weight
        ),
        "/dapi/v2/leverageBracket": signed("dapi", lambda c: _brackets(c, Venue.BINANCE_COINM), 1),
        "/dapi/v1/positionRisk": signed(
            "dapi", lambda c: _position_risk(c, Venue.BINANCE_COINM, 1), 1
        ),
        "/dapi/v1/account": signed("dapi", lambda c: _account(c, Venue.BINANCE_COINM, 1), 5),
        "/dapi/v1/balance": signed("dapi", lambda c: _balance(c, Venue.BINANCE_COINM), 1),
        "/dapi/v1/positionSide/dual": signed("dapi", _dual_side, 30),
        "/papi/v1/account": signed("papi", _papi_account, 20),
        "/papi/v1/balance": signed("papi", _papi_balance, 20),
        "/papi/v1/um/positionRisk": signed("papi", _papi_position_risk, 5),
        "/papi/v1/um/leverageBracket": signed(
            "papi", lambda c: _brackets(c, Venue.BINANCE_USDM), 1
        ),
        "/papi/v1/um/positionSide/dual": signed("papi", _dual_side, 30),
        "/papi/v1/um/algo/openAlgoOrders": _orders(
            "papi", orders.binance_algo_orders, Venue.BINANCE_USDM
        ),
        "/papi/v1/um/conditional/openOrders": _orders(
            "papi", orders.portfolio_conditional_orders, Venue.BINANCE_USDM
        ),
        "/sapi/v1/portfolio/collateralRate": signed("sapi", _collateral_rates, 50),
        "/sapi/v1/account/apiRestrictions": signed("sapi", _api_restrictions, 1),
        "/sapi/v1/capital/config/getall": signed("sapi", lambda _c: [], 10),
        "/sapi/v1/margin/allPairs": public("sapi", lambda _c: []),
    }


def _orders(family: str, rows: Any, venue: Venue) -> Endpoint:
    """An open-orders endpoint: weight 1 for one symbol, 40 without (Binance's published weights)."""

    def handler(call: Call) -> Any:
        return rows(call, _require_account(call), venue)

    return Endpoint(
        BINANCE, family, True, _gated(family, handler), lambda p: 1 if "symbol" in p else 40
    )


def _gated(family: str, handler: Any) -> Any:
    """Binance answers a Portfolio Margin key on fapi/dapi, and any other key on papi, with the
    same -2015 as a bad key (reported for Binance.Net, issue 1485: "UsdFuturesApi does not work
    after activation the Portfolio Margin Mode")."""

    def gate(call: Call) -> Any:
        account = _require_account(call)
        portfolio = account.spec.account_mode == binance_pool.PORTFOLIO
        if (family == "papi") != portfolio and family in ("fapi", "dapi", "papi"):
            raise binance_error(
                401, -2015, "Invalid API-key, IP, or permissions for action, request ip: 127.0.0.1"
            )
        return handler(call)

    return gate


def _multi_assets_margin(call: Call) -> dict[str, Any]:
    account = _require_account(call)
    return {"multiAssetsMargin": account.spec.account_mode == binance_pool.MULTI_ASSETS}


def _index_row(call: Call, asset: str, index: float) -> dict[str, Any]:
    rate = binance_pool.buffer(asset)
    return {
        "symbol": f"{asset}USD",
        "time": call.market.now_ms(),
        "index": fmt(index),
        "bidBuffer": fmt(rate),
        "askBuffer": fmt(rate),
        "bidRate": fmt(index * (1 - rate)),
        "askRate": fmt(index * (1 + rate)),
        "autoExchangeBidBuffer": fmt(rate / 2),
        "autoExchangeAskBuffer": fmt(rate / 2),
        "autoExchangeBidRate": fmt(index * (1 - rate / 2)),
        "autoExchangeAskRate": fmt(index * (1 + rate / 2)),
    }


def _asset_index(call: Call) -> Any:
    """Multi-Assets asset index: one USD line per priced coin (feeds and two stablecoins)."""
    assets = sorted(set(call.market.scenario.feeds) | set(binance_pool.INDEXED_STABLECOINS))
    rows = []
    for asset in assets:
        index = call.market.index_price(asset)
        if index is not None:
            rows.append(_index_row(call, asset, index))
    symbol = call.params.get("symbol")
    if symbol is None:
        return rows
    for row in rows:
        if row["symbol"] == symbol:
            return row
    raise binance_error(400, -1121, "Invalid symbol.")


def _time(call: Call) -> dict[str, Any]:
    return {"serverTime": call.server_ms}


def _instrument(call: Call, venue: Venue, symbol: str) -> Instrument:
    for instrument in call.market.instruments(venue):
        if instrument.symbol == symbol:
            return instrument
    raise binance_error(400, -1121, "Invalid symbol.")


def _selected(call: Call, venue: Venue) -> tuple[Instrument, ...]:
    symbol = call.params.get("symbol")
    if symbol is None:
        return call.market.instruments(venue)
    return (_instrument(call, venue, symbol),)


def _exchange_info(call: Call, venue: Venue) -> dict[str, Any]:
    market = call.market
    limits = market.scenario.limits
    symbols = []
    for instrument in market.instruments(venue):
        price_decimals = decimals_of(instrument.tick_size)
        qty_decimals = decimals_of(instrument.qty_step)
        row: dict[str, Any] = {
            "symbol": instrument.symbol,
            "pair": instrument.symbol.split("_", 1)[0],
            "contractType": "PERPETUAL",
            "deliveryDate": _FAR_FUTURE_MS,
            "onboardDate": _ONBOARD_MS,
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": instrument.base,
            "quoteAsset": instrument.quote,
            "marginAsset": instrument.settle,
            "pricePrecision": price_decimals,
            "quantityPrecision": qty_decimals,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt(instrument.tick_size, price_decimals),
                    "maxPrice": fmt(10_000_000, price_decimals),
                    "tickSize": fmt(instrument.tick_size, price_decimals),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt(instrument.qty_step, qty_decimals),
                    "maxQty": "1000000",
                    "stepSize": fmt(instrument.qty_step, qty_decimals),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": fmt(instrument.qty_step, qty_decimals),
                    "maxQty": "100000",
                    "stepSize": fmt(instrument.qty_step, qty_decimals),
                },
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": "1.0500",
                    "multiplierDown": "0.9500",
                    "multiplierDecimal": "4",
                },
            ],
            "orderTypes": [
                "LIMIT",
                "MARKET",
                "STOP",
                "STOP_MARKET",
                "TAKE_PROFIT",
                "TAKE_PROFIT_MARKET",
            ],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        }
        if venue is Venue.BINANCE_COINM:
            row["contractStatus"] = "TRADING"
            row["contractSize"] = int(instrument.contract_size)
            row["equalQtyPrecision"] = 4
        else:
            row["status"] = "TRADING"
            row["filters"].append({"filterType": "MIN_NOTIONAL", "notional": "5"})
        symbols.append(row)
    assets = sorted({i.settle for i in market.instruments(venue)})
    return {
        "timezone": "UTC",
        "serverTime": call.server_ms,
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": limits.binance_weight_per_minute,
            },
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        ],
        "exchangeFilters": [],
        "assets": [
            {"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000"} for a in assets
        ],
        "symbols": symbols,
    }


def premium_row(call: Call, instrument: Instrument) -> dict[str, Any]:
    mark = call.mark(instrument)
    decimals = 8
    row = {
        "symbol": instrument.symbol,
        "markPrice": fmt(mark, decimals),
        "indexPrice": fmt(mark, decimals),
        "estimatedSettlePrice": fmt(mark, decimals),
        "lastFundingRate": "0.00010000",
        "interestRate": "0.00010000",
        "nextFundingTime": (call.market.now_ms() // 28_800_000 + 1) * 28_800_000,
        "time": call.market.now_ms(),
    }
    if instrument.venue is Venue.BINANCE_COINM:
        row["pair"] = instrument.symbol.split("_", 1)[0]
    return row


def _premium_index(call: Call, venue: Venue) -> Any:
    rows = [premium_row(call, i) for i in _selected(call, venue)]
    if venue is Venue.BINANCE_USDM and "symbol" in call.params:
        return rows[0]
    return rows


def _ticker_24hr(call: Call, venue: Venue) -> Any:
    rows = []
    for instrument in _selected(call, venue):
        mark = fmt(call.mark(instrument), decimals_of(instrument.tick_size))
        rows.append(
            {
                "symbol": instrument.symbol,
                "priceChange": "0",
                "priceChangePercent": "0",
                "weightedAvgPrice": mark,
                "lastPrice": mark,
                "lastQty": "0",
                "openPrice": mark,
                "highPrice": mark,
                "lowPrice": mark,
                "volume": "0",
                "quoteVolume": "0",
                "openTime": call.market.now_ms() - 86_400_000,
                "closeTime": call.market.now_ms(),
                "count": 0,
            }
        )
    return rows[0] if "symbol" in call.params else rows


def _require_account(call: Call) -> SimAccount:
    assert call.account is not None  # signed endpoints run only with an authenticated account
    return call.account


def _brackets(call: Call, venue: Venue) -> Any:
    account = _require_account(call)
    result = []
    for instrument in _selected(call, venue):
        brackets = []
        for index, tier in enumerate(call.market.tiers(account, instrument), start=1):
            row: dict[str, Any] = {"bracket": index, "initialLeverage": int(tier.max_leverage)}
            if venue is Venue.BINANCE_COINM:
                row |= {"qtyCap": tier.cap, "qtyFloor": tier.floor}
            else:
                row |= {"notionalCap": tier.cap, "notionalFloor": tier.floor}
            row |= {"maintMarginRatio": tier.mmr, "cum": tier.deduction}
            brackets.append(row)
        entry: dict[str, Any] = {"symbol": instrument.symbol, "brackets": brackets}
        if venue is Venue.BINANCE_USDM:
            entry["notionalCoef"] = 1.0
        result.append(entry)
    if venue is Venue.BINANCE_USDM and "symbol" in call.params:
        return result[0]
    return result


def _pools(call: Call, venue: Venue) -> list[PoolView]:
    return [pool for pool in call.pools(_require_account(call)) if pool.venue is venue]


def _position_side(view: PositionView) -> str:
    if not view.position.hedge:
        return "BOTH"
    return "LONG" if view.position.side is Side.LONG else "SHORT"


def _position_risk(call: Call, venue: Venue, version: int) -> list[dict[str, Any]]:
    account = _require_account(call)
    symbol = call.params.get("symbol")
    if symbol is not None:
        _instrument(call, venue, symbol)
    rows: list[dict[str, Any]] = []
    held: dict[str, set[str]] = {}
    for pool in _pools(call, venue):
        for view in pool.positions:
            if symbol is None or view.position.instrument.symbol == symbol:
                rows.append(_position_row(call, view, version))
                held.setdefault(view.position.instrument.symbol, set()).add(_position_side(view))
    if account.spec.hedge:
        # Hedge mode lists both legs of a symbol; the flat one has zero size and entry price.
        for held_symbol, sides in held.items():
            instrument = _instrument(call, venue, held_symbol)
            for side in {"LONG", "SHORT"} - sides:
                rows.append(_flat_row(call, instrument, side, version))
    return rows


def _position_row(call: Call, view: PositionView, version: int) -> dict[str, Any]:
    position = view.position
    instrument = position.instrument
    mark = view.mark_price
    sign = position.side.sign
    price_decimals = 8
    pnl = unrealized_pnl(position, mark)
    value = notional(position, mark)
    isolated = position.margin_mode is MarginMode.ISOLATED
    isolated_wallet = position.isolated_margin or 0.0
    liq = view.risk.liquidation_price
    row: dict[str, Any] = {
        "symbol": instrument.symbol,
        "positionSide": _position_side(view),
        "positionAmt": quantity(sign * position.quantity, instrument.qty_step),
        "entryPrice": fmt(position.entry_price, price_decimals),
        "breakEvenPrice": fmt(position.entry_price, price_decimals),
        "markPrice": fmt(mark, price_decimals),
        "unRealizedProfit": fmt(pnl),
        "liquidationPrice": fmt(liq, price_decimals) if liq is not None else "0",
        "isolatedMargin": fmt(isolated_wallet + pnl if isolated else 0.0),
        "isolatedWallet": fmt(isolated_wallet),
        "updateTime": position.opened_ms,
    }
    if instrument.venue is Venue.BINANCE_COINM:
        row |= {
            "leverage": str(int(position.leverage)),
            "maxQty": plain(_tier_cap(call, instrument, position.leverage)),
            "marginType": "isolated" if isolated else "cross",
            "isAutoAddMargin": "false",
            "notionalValue": fmt(sign * value),
        }
        return row
    row |= {"notional": fmt(sign * value), "marginAsset": instrument.settle}
    if version == 3:
        row |= {
            "initialMargin": fmt(view.initial_margin),
            "maintMargin": fmt(view.risk.maintenance_margin),
            "positionInitialMargin": fmt(view.initial_margin),
            "openOrderInitialMargin": "0",
            "adl": 2,
            "bidNotional": "0",
            "askNotional": "0",
        }
    else:
        row |= {
            "leverage": str(int(position.leverage)),
            "maxNotionalValue": plain(_tier_cap(call, instrument, position.leverage)),
            "marginType": "isolated" if isolated else "cross",
            "isAutoAddMargin": "false",
            "isolated": isolated,
            "adlQuantile": 2,
        }
    return row


def _flat_row(call: Call, instrument: Instrument, side: str, version: int) -> dict[str, Any]:
    mark = fmt(call.mark(instrument))
    row: dict[str, Any] = {
        "symbol": instrument.symbol,
        "positionSide": side,
        "positionAmt": fmt(0.0, decimals_of(instrument.qty_step)),
        "entryPrice": "0.0",
        "breakEvenPrice": "0.0",
        "markPrice": mark,
        "unRealizedProfit": "0.00000000",
        "liquidationPrice": "0",
        "isolatedMargin": "0.00000000",
        "isolatedWallet": "0",
        "updateTime": 0,
    }
    if instrument.venue is Venue.BINANCE_COINM:
        row |= {
            "leverage": "20",
            "maxQty": "0",
            "marginType": "cross",
            "isAutoAddMargin": "false",
            "notionalValue": "0",
        }
    elif version == 3:
        row |= {
            "notional": "0",
            "marginAsset": instrument.settle,
            "initialMargin": "0",
            "maintMargin": "0",
            "positionInitialMargin": "0",
            "openOrderInitialMargin": "0",
            "adl": 0,
            "bidNotional": "0",
            "askNotional": "0",
        }
    else:
        row |= {
            "notional": "0",
            "marginAsset": instrument.settle,
            "leverage": "20",
            "marginType": "cross",
            "isolated": False,
        }
    return row


def _tier_cap(call: Call, instrument: Instrument, leverage: float) -> float:
    """The largest notional the chosen leverage allows (Binance `maxNotionalValue` / `maxQty`)."""
    cap = 0.0
    for tier in call.market.tiers(call.account, instrument):
        if tier.max_leverage >= leverage:
            cap = tier.cap
    return cap


def _wallet_assets(account: SimAccount, venue: Venue, pools: list[PoolView]) -> list[str]:
    usdm = venue is Venue.BINANCE_USDM
    assets = {a for a in account.wallet if (a in BINANCE_USDM_ASSETS) == usdm}
    assets |= {pool.asset for pool in pools}
    return sorted(assets)


def _asset_rows(call: Call, venue: Venue) -> list[dict[str, Any]]:
    account = _require_account(call)
    pools = _pools(call, venue)
    if venue is Venue.BINANCE_USDM and binance_pool.pooled(account.spec):
        return _pooled_asset_rows(call, account, pools)
    by_asset = {pool.asset: pool for pool in pools}
    rows = []
    for asset in _wallet_assets(account, venue, pools):
        pool = by_asset.get(asset)
        cross_wallet = account.wallet.get(asset, 0.0)
        views = pool.positions if pool else ()
        isolated_wallet = sum(v.position.isolated_margin or 0.0 for v in views)
        pnl = sum(unrealized_pnl(v.position, v.mark_price) for v in views)
        cross = [v for v in views if v.position.margin_mode is MarginMode.CROSS]
        cross_pnl = sum(unrealized_pnl(v.position, v.mark_price) for v in cross)
        cross_im = sum(v.initial_margin for v in cross)
        initial = sum(v.initial_margin for v in views)
        maintenance = sum(v.risk.maintenance_margin for v in views)
        available = max(0.0, cross_wallet + cross_pnl - cross_im)
        wallet = cross_wallet + isolated_wallet
        rows.append(
            {
                "asset": asset,
                "walletBalance": fmt(wallet),
                "unrealizedProfit": fmt(pnl),
                "marginBalance": fmt(wallet + pnl),
                "maintMargin": fmt(maintenance),
                "initialMargin": fmt(initial),
                "positionInitialMargin": fmt(initial),
                "openOrderInitialMargin": "0.00000000",
                "crossWalletBalance": fmt(cross_wallet),
                "crossUnPnl": fmt(cross_pnl),
                "availableBalance": fmt(available),
                "maxWithdrawAmount": fmt(min(available, cross_wallet)),
                "updateTime": call.market.now_ms(),
            }
        )
    return rows


def _pooled_asset_rows(
    call: Call, account: SimAccount, pools: list[PoolView]
) -> list[dict[str, Any]]:
    """Per-coin rows of a Multi-Assets wallet: each coin with the positions settled in it."""
    views = [view for pool in pools for view in pool.positions]
    assets = sorted(set(account.wallet) | {v.position.instrument.settle for v in views})
    rows = []
    for asset in assets:
        own = [v for v in views if v.position.instrument.settle == asset]
        cross = [v for v in own if v.position.margin_mode is MarginMode.CROSS]
        cross_wallet = account.wallet.get(asset, 0.0)
        wallet = cross_wallet + sum(v.position.isolated_margin or 0.0 for v in own)
        pnl = sum(unrealized_pnl(v.position, v.mark_price) for v in own)
        initial = sum(v.initial_margin for v in own)
        rows.append(
            {
                "asset": asset,
                "walletBalance": fmt(wallet),
                "unrealizedProfit": fmt(pnl),
                "marginBalance": fmt(wallet + pnl),
                "maintMargin": fmt(sum(v.risk.maintenance_margin for v in own)),
                "initialMargin": fmt(initial),
                "positionInitialMargin": fmt(initial),
                "openOrderInitialMargin": "0.00000000",
                "crossWalletBalance": fmt(cross_wallet),
                "crossUnPnl": fmt(sum(unrealized_pnl(v.position, v.mark_price) for v in cross)),
                "availableBalance": fmt(max(0.0, cross_wallet)),
                "maxWithdrawAmount": fmt(max(0.0, cross_wallet)),
                "updateTime": call.market.now_ms(),
            }
        )
    return rows


def _pooled_totals(pools: list[PoolView]) -> dict[str, str]:
    """The v3 account's totals in USD for a Multi-Assets pool (cross positions only)."""
    pool = next((p for p in pools if p.state.pooled), None)
    if pool is None:
        return {}
    wallet = sum(
        coin.price
        * (coin.ratios[0].ratio if coin.quantity >= 0 else coin.liability_rate)
        * coin.quantity
        for coin in pool.state.collateral
    )
    equity = pool.risk.equity
    initial = 0.0
    for view in pool.positions:
        coin = next(c for c in pool.state.collateral if c.asset == view.position.instrument.settle)
        initial += view.initial_margin * coin.price * coin.liability_rate
    available = max(0.0, equity - initial)
    return {
        "totalInitialMargin": fmt(initial),
        "totalMaintMargin": fmt(pool.risk.maintenance_margin),
        "totalWalletBalance": fmt(wallet),
        "totalUnrealizedProfit": fmt(equity - wallet),
        "totalMarginBalance": fmt(equity),
        "totalPositionInitialMargin": fmt(initial),
        "totalOpenOrderInitialMargin": "0.00000000",
        "totalCrossWalletBalance": fmt(wallet),
        "totalCrossUnPnl": fmt(equity - wallet),
        "availableBalance": fmt(available),
        "maxWithdrawAmount": fmt(min(available, wallet)),
    }


def _account(call: Call, venue: Venue, version: int) -> dict[str, Any]:
    account = _require_account(call)
    assets = _asset_rows(call, venue)
    positions = []
    for pool in _pools(call, venue):
        for view in pool.positions:
            position = view.position
            mark = view.mark_price
            pnl = unrealized_pnl(position, mark)
            isolated = position.margin_mode is MarginMode.ISOLATED
            row: dict[str, Any] = {
                "symbol": position.instrument.symbol,
                "positionSide": _position_side(view),
                "positionAmt": quantity(
                    position.side.sign * position.quantity, position.instrument.qty_step
                ),
                "unrealizedProfit": fmt(pnl),
                "isolatedMargin": fmt((position.isolated_margin or 0.0) + pnl if isolated else 0.0),
                "isolatedWallet": fmt(position.isolated_margin or 0.0),
                "initialMargin": fmt(view.initial_margin),
                "maintMargin": fmt(view.risk.maintenance_margin),
                "updateTime": position.opened_ms,
            }
            if venue is Venue.BINANCE_COINM:
                row["notionalValue"] = fmt(position.side.sign * notional(position, mark))
            else:
                row["notional"] = fmt(position.side.sign * notional(position, mark))
            if version != 3:
                row |= {
                    "leverage": str(int(position.leverage)),
                    "isolated": isolated,
                    "entryPrice": fmt(position.entry_price),
                    "positionInitialMargin": fmt(view.initial_margin),
                    "openOrderInitialMargin": "0",
                }
            positions.append(row)
    body: dict[str, Any] = {"assets": assets, "positions": positions}
    if venue is Venue.BINANCE_COINM:
        permissions = account.spec.permissions
        body |= {
            "canDeposit": True,
            "canTrade": permissions.trade,
            "canWithdraw": permissions.withdraw,
            "feeTier": 0,
            "updateTime": call.market.now_ms(),
        }
        return body
    # Single-asset mode: the account totals are the USDT asset's figures; in Multi-Assets mode
    # they are the whole pool's, in USD.
    multi_assets = binance_pool.pooled(account.spec)
    usdt: Mapping[str, Any] = next((a for a in assets if a["asset"] == "USDT"), {})
    zero = "0.00000000"
    totals = {
        "totalInitialMargin": usdt.get("initialMargin", zero),
        "totalMaintMargin": usdt.get("maintMargin", zero),
        "totalWalletBalance": usdt.get("walletBalance", zero),
        "totalUnrealizedProfit": usdt.get("unrealizedProfit", zero),
        "totalMarginBalance": usdt.get("marginBalance", zero),
        "totalPositionInitialMargin": usdt.get("positionInitialMargin", zero),
        "totalOpenOrderInitialMargin": zero,
        "totalCrossWalletBalance": usdt.get("crossWalletBalance", zero),
        "totalCrossUnPnl": usdt.get("crossUnPnl", zero),
        "availableBalance": usdt.get("availableBalance", zero),
        "maxWithdrawAmount": usdt.get("maxWithdrawAmount", zero),
    }
    if multi_assets:
        totals |= _pooled_totals(_pools(call, venue))
    if version != 3:
        totals |= {
            "feeTier": 0,
            "canTrade": account.spec.permissions.trade,
            "canDeposit": True,
            "canWithdraw": account.spec.permissions.withdraw,
            "feeBurn": False,
            "tradeGroupId": -1,
            "updateTime": 0,
            "multiAssetsMargin": multi_assets,
        }
    return totals | body


def _balance(call: Call, venue: Venue) -> list[dict[str, Any]]:
    account = _require_account(call)
    rows = []
    for asset in _asset_rows(call, venue):
        rows.append(
            {
                "accountAlias": f"sim{account.spec.user_id}",
                "asset": asset["asset"],
                "balance": asset["walletBalance"],
                "crossWalletBalance": asset["crossWalletBalance"],
                "crossUnPnl": asset["crossUnPnl"],
                "availableBalance": asset["availableBalance"],
                "maxWithdrawAmount": asset["maxWithdrawAmount"],
                "marginAvailable": True,
                "updateTime": asset["updateTime"],
            }
        )
    return rows


def _dual_side(call: Call) -> dict[str, Any]:
    return {"dualSidePosition": _require_account(call).spec.hedge}


def _symbol_config(call: Call) -> list[dict[str, Any]]:
    account = _require_account(call)
    held = {
        p.instrument.symbol: p
        for p in account.positions
        if p.instrument.venue is Venue.BINANCE_USDM
    }
    rows = []
    for instrument in _selected(call, Venue.BINANCE_USDM):
        position = held.get(instrument.symbol)
        leverage = position.leverage if position else 20.0
        isolated = position is not None and position.margin_mode is MarginMode.ISOLATED
        rows.append(
            {
                "symbol": instrument.symbol,
                "marginType": "ISOLATED" if isolated else "CROSSED",
                "isAutoAddMargin": "false",
                "leverage": int(leverage),
                "maxNotionalValue": plain(_tier_cap(call, instrument, leverage)),
            }
        )
    return rows


def _api_restrictions(call: Call) -> dict[str, Any]:
    account = _require_account(call)
    permissions = account.spec.permissions
    return {
        "ipRestrict": permissions.ip_restrict,
        "createTime": call.market.now_ms() - 86_400_000,
        "enableReading": permissions.read,
        "enableWithdrawals": permissions.withdraw,
        "enableInternalTransfer": permissions.transfer,
        "permitsUniversalTransfer": permissions.transfer,
        "enableMargin": False,
        "enableFutures": permissions.futures,
        "enableVanillaOptions": False,
        "enableFixApiTrade": False,
        "enableFixReadOnly": False,
        "enableSpotAndMarginTrading": permissions.trade,
        "enablePortfolioMarginTrading": False,
    }


def _portfolio_pool(call: Call) -> PoolView | None:
    return next((p for p in _pools(call, Venue.BINANCE_USDM) if p.state.pooled), None)


def _papi_account(call: Call) -> dict[str, Any]:
    """`GET /papi/v1/account`: the Portfolio Margin account's USD figures."""
    pool = _portfolio_pool(call)
    account = _require_account(call)
    if pool is None:
        equity = actual = sum(
            amount * (call.market.index_price(coin) or 0.0) * binance_pool.collateral_rate(coin)
            for coin, amount in account.wallet.items()
        )
        maintenance = initial = 0.0
    else:
        equity = pool.risk.equity
        actual = sum(c.quantity * c.price for c in pool.state.collateral) + sum(
            unrealized_pnl(v.position, v.mark_price) for v in pool.positions
        )
        maintenance = pool.risk.maintenance_margin
        initial = sum(v.initial_margin for v in pool.positions)
    return {
        "uniMMR": fmt(equity / maintenance) if maintenance > 0 else "0",
        "accountEquity": fmt(equity),
        "actualEquity": fmt(actual),
        "accountInitialMargin": fmt(initial),
        "accountMaintMargin": fmt(maintenance),
        "accountStatus": "NORMAL",
        "virtualMaxWithdrawAmount": fmt(max(0.0, equity - initial)),
        "totalAvailableBalance": fmt(max(0.0, equity - initial)),
        "totalMarginOpenLoss": "0",
        "updateTime": call.market.now_ms(),
    }


def _papi_balance(call: Call) -> list[dict[str, Any]]:
    """`GET /papi/v1/balance`: stablecoins sit in the USDⓈ-M wallet, other coins in margin."""
    account = _require_account(call)
    pool = _portfolio_pool(call)
    views = pool.positions if pool else ()
    rows = []
    for asset in sorted(account.wallet):
        amount = account.wallet[asset]
        futures = asset in binance_pool.STABLECOINS
        pnl = sum(
            unrealized_pnl(v.position, v.mark_price)
            for v in views
            if v.position.instrument.settle == asset
        )
        rows.append(
            {
                "asset": asset,
                "totalWalletBalance": fmt(amount),
                "crossMarginAsset": fmt(0.0 if futures else amount),
                "crossMarginBorrowed": "0.0",
                "crossMarginFree": fmt(0.0 if futures else amount),
                "crossMarginInterest": "0.0",
                "crossMarginLocked": "0.0",
                "umWalletBalance": fmt(amount if futures else 0.0),
                "umUnrealizedPNL": fmt(pnl),
                "cmWalletBalance": "0.0",
                "cmUnrealizedPNL": "0.0",
                "updateTime": call.market.now_ms(),
                "negativeBalance": "0.0",
            }
        )
    return rows


def _papi_position_risk(call: Call) -> list[dict[str, Any]]:
    """`GET /papi/v1/um/positionRisk`: Binance's documented PM row (no margins, no asset)."""
    rows = []
    for pool in _pools(call, Venue.BINANCE_USDM):
        for view in pool.positions:
            position = view.position
            instrument = position.instrument
            liq = view.risk.liquidation_price
            rows.append(
                {
                    "entryPrice": fmt(position.entry_price),
                    "leverage": str(int(position.leverage)),
                    "markPrice": fmt(view.mark_price),
                    "maxNotionalValue": plain(_tier_cap(call, instrument, position.leverage)),
                    "positionAmt": quantity(
                        position.side.sign * position.quantity, instrument.qty_step
                    ),
                    "notional": fmt(position.side.sign * notional(position, view.mark_price)),
                    "symbol": instrument.symbol,
                    "unRealizedProfit": fmt(unrealized_pnl(position, view.mark_price)),
                    "liquidationPrice": fmt(liq) if liq is not None else "0",
                    "positionSide": _position_side(view),
                    "updateTime": position.opened_ms,
                }
            )
    return rows


def _collateral_rates(call: Call) -> list[dict[str, Any]]:
    """`GET /sapi/v1/portfolio/collateralRate`: every coin the venue prices."""
    assets = sorted(set(call.market.scenario.feeds) | binance_pool.STABLECOINS)
    return [
        {"asset": asset, "collateralRate": f"{binance_pool.collateral_rate(asset):.4f}"}
        for asset in assets
    ]
