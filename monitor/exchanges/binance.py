"""Binance USDⓈ-M (fapi) and COIN-M (dapi) futures: one account's margin pool from raw fields.

ccxt's own `maintenanceMargin` (no `cum`), `collateral` and `marginRatio` are never used; we read
`/fapi/v3/account` + `/fapi/v3/positionRisk` (or the dapi v1 equivalents) and the per-user
leverage brackets directly.

A USDⓈ-M account is in one of three margin models, detected at the first fetch and re-checked with
the bracket tables (hourly), and at once when an answer contradicts the model we hold:
- single-asset: each margin asset is its own pool; the entry's `asset` picks it.
- Multi-Assets (`GET /fapi/v1/multiAssetsMargin`): every margin asset backs every cross position,
  in USD at the asset index (`binance_pool`); the entry watches the whole pool, `asset` is unused.
- Portfolio Margin: fapi refuses the key (-2015) while the papi host answers; the pool is read
  from papi (`binance_portfolio`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from typing import Any

from monitor.domain.errors import (
    ExchangeAuthError,
    ExchangeDataError,
    ExchangeError,
    ExchangeUnavailable,
    InvalidInput,
    MonitorError,
)
from monitor.domain.margin import assess
from monitor.domain.model import (
    AccountState,
    Collateral,
    ExchangeAccountFigures,
    MarginMode,
    PoolModel,
    Position,
    Side,
    Venue,
    VenueTerm,
)
from monitor.exchanges.base import VenueClient, all_of
from monitor.exchanges.binance_pool import (
    STABLECOINS,
    AssetRate,
    StableAssumptions,
    asset_rates,
    collateral_of,
    totals_pooled,
)
from monitor.exchanges.binance_portfolio import (
    PORTFOLIO_LIQUIDATION_RATIO,
    RateAssumptions,
    collateral_rates,
    portfolio_account,
    portfolio_collateral,
    venue_term_name,
)
from monitor.exchanges.fields import (
    as_list,
    as_mapping,
    number,
    optional_number,
    positive_or_none,
    text,
)
from monitor.exchanges.probe import ProbeReport, permission_warnings
from monitor.exchanges.stops import OrderWatch, StopReader
from monitor.exchanges.tiers import TierTable, tiers_from_rows


class BinanceClient(VenueClient):
    """Binance futures account; `venue` picks USDⓈ-M (linear) or COIN-M (inverse).
    `order_watch` follows the account's user-data stream, if one runs: while it reports no
    change, the open protective orders are not asked for again at every fetch."""

    def __init__(self, *args: Any, order_watch: OrderWatch | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The margin model as last detected (None: not yet), and when (monotonic seconds).
        self.model: PoolModel | None = PoolModel.SINGLE_ASSET if self._inverse else None
        self.clock = time.monotonic
        self._model_checked = -float("inf")
        self._rates: dict[str, AssetRate] = {}
        self._rates_read = -float("inf")
        self._collateral_rates: dict[str, float] | None = None
        self._collateral_rates_read = -float("inf")
        self._stables = StableAssumptions(self.label)
        self._rate_assumptions = RateAssumptions(self.label)
        self._stops = StopReader(self, order_watch)

    @property
    def _inverse(self) -> bool:
        return self.venue is Venue.BINANCE_COINM

    def _stale(self, since: float) -> bool:
        return self.clock() - since >= self.tiers.refresh_interval

    async def server_time_ms(self) -> int:
        method = "dapiPublicGetTime" if self._inverse else "fapiPublicGetTime"
        response = as_mapping(await getattr(self.exchange, method)(), f"{self.label}: time")
        return int(number(response, "serverTime", f"{self.label}: time"))

    async def _with_protective_orders(self, state: AccountState) -> AccountState:
        return await self._stops.binance(state)

    async def _fetch_account(self) -> AccountState:
        await self.ensure_markets()
        if self._inverse:
            try:
                account, risk = await all_of(
                    self.request("account", "dapiPrivateGetAccount"),
                    self.request("positions", "dapiPrivateGetPositionRisk"),
                )
            except ExchangeAuthError as refused:
                if await self._is_portfolio():
                    raise ExchangeDataError(
                        f"{self.label}: a Portfolio Margin account (dapi refuses it): configure "
                        "it as binance-usdm, which reads the portfolio from the papi host; its "
                        "COIN-M positions count there as the venue's figures"
                    ) from refused
                raise
            return await self._single_asset(account, risk)
        model = await self._detect_model()
        if model is PoolModel.PORTFOLIO:
            try:
                return await self._portfolio()
            except ExchangeAuthError:
                # papi refusing a key it used to take: the account may have left Portfolio Margin.
                if await self._detect_model(force=True) is PoolModel.PORTFOLIO:
                    raise
                return await self._fetch_account()
        try:
            return await self._usdm(model, recheck=True)
        except ExchangeAuthError:
            # fapi refuses a Portfolio Margin account with the same -2015 as a bad key.
            if not await self._is_portfolio():
                raise
            self._set_model(PoolModel.PORTFOLIO)
            return await self._portfolio()

    def _set_model(self, model: PoolModel) -> None:
        self.model = model
        self._model_checked = self.clock()

    async def _detect_model(self, *, force: bool = False) -> PoolModel:
        """The account's margin model, read again when older than the tier refresh interval."""
        if self.model is not None and not force and not self._stale(self._model_checked):
            return self.model
        try:
            body = as_mapping(
                await self.request("margin model", "fapiPrivateGetMultiAssetsMargin"),
                f"{self.label}: multiAssetsMargin",
            )
        except ExchangeAuthError:
            if not await self._is_portfolio():
                raise
            self._set_model(PoolModel.PORTFOLIO)
            return PoolModel.PORTFOLIO
        except ExchangeUnavailable:
            # A failed hourly re-read keeps the model we know (tried again next poll).
            if self.model is not None and not force:
                return self.model
            raise
        flag = body.get("multiAssetsMargin")
        if flag not in (True, False, "true", "false"):
            raise ExchangeDataError(f"{self.label}: multiAssetsMargin.multiAssetsMargin: missing")
        self._set_model(
            PoolModel.MULTI_ASSETS if flag in (True, "true") else PoolModel.SINGLE_ASSET
        )
        assert self.model is not None
        return self.model

    async def _is_portfolio(self) -> bool:
        """Whether the papi host takes this key: fapi's -2015 then means Portfolio Margin, not a
        bad key. A refusal there too leaves the original error standing."""
        try:
            await self.request("portfolio margin account", "papiGetAccount")
        except (ExchangeAuthError, ExchangeDataError):
            return False
        return True

    async def _usdm(self, model: PoolModel, *, recheck: bool) -> AccountState:
        account, risk = await all_of(
            self.request("account", "fapiPrivateV3GetAccount"),
            self.request("positions", "fapiPrivateV3GetPositionRisk"),
        )
        account_body = as_mapping(account, f"{self.label}: account")
        pooled = totals_pooled(account_body)
        contradicted = pooled is not None and pooled != (model is PoolModel.MULTI_ASSETS)
        if model is PoolModel.MULTI_ASSETS and not contradicted:
            # Multi-Assets is cross only: an isolated row means the mode was switched off.
            contradicted = any(
                isinstance(row, Mapping) and _float(row.get("isolatedWallet"))
                for row in (risk if isinstance(risk, list) else ())
            )
        if contradicted and recheck:
            fresh = await self._detect_model(force=True)
            if fresh is not model:
                if fresh is PoolModel.PORTFOLIO:
                    return await self._portfolio()
                return await self._usdm(fresh, recheck=False)
        if model is PoolModel.MULTI_ASSETS:
            return await self._multi_assets(account_body, risk)
        return await self._single_asset(account_body, risk)

    async def _single_asset(self, account: Any, risk: Any) -> AccountState:
        risk_rows = as_list(risk, f"{self.label}: positionRisk")
        if self._inverse:
            # COIN-M rows name no margin asset and no contract size: both come from the markets.
            await self.ensure_listed(
                str(row.get("symbol"))
                for row in risk_rows
                if isinstance(row, Mapping) and _float(row.get("positionAmt"))
            )
        rows = self._open_rows(risk_rows)
        await self._refresh_tiers({text(row, "symbol", where) for where, row in rows})
        account_body = as_mapping(account, f"{self.label}: account")
        wallet_balance, cross_equity = self._pool(account_body)
        # COIN-M positionRisk has no margins; the account's own position rows have them everywhere.
        margins = _account_margins(account_body)
        positions = tuple(self._position(row, where, margins) for where, row in rows)
        cross = [
            (margins.get(_leg(row)), position)
            for (_, row), position in zip(rows, positions, strict=True)
            if position.margin_mode is MarginMode.CROSS
        ]
        maintenance = _total(position.exchange_maintenance_margin for _, position in cross)
        initial = _total(None if leg is None else leg[1] for leg, _ in cross)
        ratio = maintenance / cross_equity if maintenance is not None and cross_equity else None
        return AccountState(
            venue=self.venue,
            wallet_balance=wallet_balance,
            positions=positions,
            asset=self.asset,
            # The venue's own figures for the same cross pool our engine computes, so the two
            # can be compared line by line (isolated positions have their own pools).
            reported=ExchangeAccountFigures(
                equity=cross_equity,
                maintenance_margin=maintenance,
                initial_margin=initial,
                margin_ratio=ratio,
            ),
            model=PoolModel.SINGLE_ASSET,
        )

    async def _pooled_positions(
        self, risk: Any, margins: Mapping[tuple[str, str], tuple[float | None, float | None]]
    ) -> tuple[list[tuple[str, Mapping[str, Any]]], tuple[Position, ...]]:
        """Every open USDⓈ-M position of the account, whatever its margin asset, with the coin it
        settles in and the coin its mark prices."""
        risk_rows = as_list(risk, f"{self.label}: positionRisk")
        rows = self._open_rows(risk_rows, every_asset=True)
        symbols = {text(row, "symbol", where) for where, row in rows}
        await self.ensure_listed(symbols)
        await self._refresh_tiers(symbols)
        positions = tuple(self._position(row, where, margins, pooled=True) for where, row in rows)
        return rows, positions

    async def _index(self, held: Iterable[str]) -> dict[str, AssetRate]:
        """The Multi-Assets asset index: read every poll while the pool holds a coin whose price
        moves, otherwise with the bracket tables (stablecoin rates barely move)."""
        moving = any(asset not in STABLECOINS for asset in held)
        if moving or self._stale(self._rates_read):
            try:
                body = await self.request("asset index", "fapiPublicGetAssetIndex")
            except ExchangeUnavailable:
                # Stale stablecoin rates beat an unwatched account; a moving coin's do not.
                if moving or not self._rates:
                    raise
                return self._rates
            self._rates = asset_rates(body, f"{self.label}: assetIndex")
            self._rates_read = self.clock()
        return self._rates

    async def _multi_assets(self, account: Mapping[str, Any], risk: Any) -> AccountState:
        where = f"{self.label}: account"
        margins = _account_margins(account)
        rows, positions = await self._pooled_positions(risk, margins)
        settle = {p.settle_asset or "" for p in positions if p.margin_mode is MarginMode.CROSS}
        held = [
            str(row.get("asset"))
            for row in as_list(account.get("assets"), f"{where}.assets")
            if isinstance(row, Mapping)
            and row.get("marginAvailable") is not False
            and _float(row.get("crossWalletBalance"))
        ]
        rates = await self._index(held)
        collateral = collateral_of(account, rates, settle, self._stables, where)
        coins = {coin.asset: coin for coin in collateral}
        for position in positions:
            coin = coins.get(position.settle_asset or "")
            if position.margin_mode is MarginMode.CROSS and (coin is None or not coin.stable):
                raise ExchangeDataError(
                    f"{where}: {position.symbol} settles in {position.settle_asset}, which is not "
                    "a USD stablecoin of the pool"
                )
        return AccountState(
            venue=self.venue,
            wallet_balance=number(account, "totalCrossWalletBalance", where),
            positions=positions,
            asset="USD",
            reported=self._multi_assets_figures(account, rows, positions, coins, rates, where),
            model=PoolModel.MULTI_ASSETS,
            collateral=collateral,
        )

    def _multi_assets_figures(
        self,
        account: Mapping[str, Any],
        rows: list[tuple[str, Mapping[str, Any]]],
        positions: tuple[Position, ...],
        coins: Mapping[str, Collateral],
        rates: Mapping[str, AssetRate],
        where: str,
    ) -> ExchangeAccountFigures:
        """The account's USD totals for the cross pool: totalCrossWalletBalance + totalCrossUnPnl,
        totalMaintMargin and totalInitialMargin less what isolated positions hold (converted as
        the engine converts margin: at the settle coin's ask rate)."""
        wallet = number(account, "totalCrossWalletBalance", where)
        unrealized = optional_number(account, "totalCrossUnPnl", where)
        equity = (
            wallet + unrealized
            if unrealized is not None
            else optional_number(account, "totalMarginBalance", where)
        )
        maintenance = optional_number(account, "totalMaintMargin", where)
        initial = optional_number(account, "totalInitialMargin", where)
        margins = _account_margins(account)
        for (_, row), position in zip(rows, positions, strict=True):
            if position.margin_mode is not MarginMode.ISOLATED:
                continue
            coin = coins.get(position.settle_asset or "")
            rate = rates.get(position.settle_asset or "")
            price = coin.price * coin.liability_rate if coin else (rate.ask_rate if rate else 1.0)
            own_mm, own_im = margins.get(_leg(row), (None, None))
            own_mm = _first(position.exchange_maintenance_margin, own_mm)
            maintenance = (
                None if maintenance is None or own_mm is None else maintenance - own_mm * price
            )
            initial = None if initial is None or own_im is None else initial - own_im * price
        ratio = maintenance / equity if maintenance is not None and equity else None
        return ExchangeAccountFigures(
            equity=equity,
            maintenance_margin=maintenance,
            initial_margin=initial,
            margin_ratio=ratio,
        )

    async def _portfolio(self) -> AccountState:
        where = f"{self.label}: papi"
        account, risk, balances = await all_of(
            self.request("portfolio account", "papiGetAccount"),
            self.request("portfolio positions", "papiGetUmPositionRisk"),
            self.request("portfolio balances", "papiGetBalance"),
        )
        venue = portfolio_account(account, f"{where} account")
        _, positions = await self._pooled_positions(risk, {})
        held = [
            str(row.get("asset"))
            for row in as_list(balances, f"{where} balance")
            if isinstance(row, Mapping)
            and (_float(row.get("crossMarginAsset")) or _float(row.get("umWalletBalance")))
        ]
        rates = await self._index(held)
        coins = portfolio_collateral(
            balances,
            rates,
            await self._portfolio_rates(),
            positions,
            self._stables,
            self._rate_assumptions,
            f"{where} balance",
        )
        collateral, unpriced = coins.collateral, coins.unpriced
        assumptions: tuple[str, ...] = ()
        if coins.assumed:
            assumptions = (
                f"collateral rate of {', '.join(coins.assumed)} at its cautious bound (100 %, or "
                "0 % for a coin with net short positions on it): Binance's collateral rates "
                "unreadable",
            )
        state = AccountState(
            venue=self.venue,
            wallet_balance=sum(coin.quantity * coin.price for coin in collateral),
            positions=positions,
            asset="USD",
            reported=venue.reported(),
            model=PoolModel.PORTFOLIO,
            collateral=collateral,
            liquidation_ratio=PORTFOLIO_LIQUIDATION_RATIO,
            assumptions=assumptions,
        )
        try:
            ours = assess(state)
        except InvalidInput as error:
            raise ExchangeDataError(f"{where}: {error}") from None
        # What Binance counts and we do not model, so that at today's prices the pool is the
        # venue's own: labelled in every view, and constant while prices move.
        term = VenueTerm(
            venue_term_name(unpriced),
            equity=venue.equity - ours.equity,
            maintenance_margin=venue.maintenance_margin - ours.maintenance_margin,
        )
        return dataclasses.replace(state, venue_terms=(term,))

    async def _portfolio_rates(self) -> dict[str, float] | None:
        """Binance's collateral rates (`GET /sapi/v1/portfolio/collateralRate`, weight 50), read
        with the bracket tables; None (each coin then at its cautious bound, logged) if never had."""
        if self._stale(self._collateral_rates_read):
            # Tried once per interval whatever the outcome: a refused call is not repeated
            # every poll at weight 50.
            self._collateral_rates_read = self.clock()
            try:
                body = await self.request("collateral rates", "sapiGetPortfolioCollateralRate")
                self._collateral_rates = collateral_rates(body, f"{self.label}: collateralRate")
            except ExchangeError:
                pass  # the rates we had, or the stated cautious bound
        return self._collateral_rates

    def _open_rows(
        self, rows: list[Any], *, every_asset: bool = False
    ) -> list[tuple[str, Mapping[str, Any]]]:
        """(field path, row) of the non-flat positions settled in this pool's asset (in every
        asset when the account pools them)."""
        result = []
        for index, raw in enumerate(rows):
            where = f"{self.label}: positionRisk[{index}]"
            row = as_mapping(raw, where)
            if number(row, "positionAmt", where) == 0:
                continue
            if every_asset or self._margin_asset(row, where) == self.asset:
                result.append((where, row))
        return result

    def _margin_asset(self, row: Mapping[str, Any], where: str) -> str:
        asset = row.get("marginAsset")
        if isinstance(asset, str) and asset:
            return asset
        return str(self.listed_market(text(row, "symbol", where), where).get("settleId") or "")

    def _pool(self, account: Mapping[str, Any]) -> tuple[float, float | None]:
        """(cross wallet balance, the venue's cross equity) of this pool's asset."""
        where = f"{self.label}: account.assets"
        assets = as_list(account.get("assets"), where)
        for index, raw in enumerate(assets):
            row = as_mapping(raw, f"{where}[{index}]")
            if row.get("asset") != self.asset:
                continue
            path = f"{where}[{index}]"
            wallet = number(row, "crossWalletBalance", path)
            unrealized = optional_number(row, "crossUnPnl", path)
            return wallet, None if unrealized is None else wallet + unrealized
        raise ExchangeDataError(f"{where}: no {self.asset} balance in the account")

    def _position(
        self,
        row: Mapping[str, Any],
        where: str,
        margins: Mapping[tuple[str, str], tuple[float | None, float | None]],
        *,
        pooled: bool = False,
    ) -> Position:
        symbol = text(row, "symbol", where)
        amount = number(row, "positionAmt", where)
        position_side = str(row.get("positionSide") or "BOTH")
        hedge = position_side in ("LONG", "SHORT")
        if hedge:
            side = Side.LONG if position_side == "LONG" else Side.SHORT
        else:
            side = Side.LONG if amount > 0 else Side.SHORT
        wallet_field = optional_number(row, "isolatedWallet", where)
        margin_type = str(row.get("marginType") or "").lower()
        if margin_type:
            isolated = margin_type == "isolated"
        else:
            # v3 rows carry no marginType: an isolated position is one holding its own margin.
            isolated = bool(wallet_field or optional_number(row, "isolatedMargin", where))
        if isolated and wallet_field is None:
            # Read as 0 it would put the liquidation price at the entry: refuse it instead.
            raise ExchangeDataError(f"{where}.isolatedWallet: missing for an isolated position")
        isolated_wallet = wallet_field or 0.0
        tiers = self.tiers.table(symbol)
        if tiers is None:
            raise ExchangeDataError(f"{where}: no leverage bracket table for {symbol}")
        contract_size = 1.0
        if self._inverse:
            contract_size = float(self.listed_market(symbol, where).get("contractSize") or 0.0)
            if contract_size <= 0:
                raise ExchangeDataError(f"{where}: no contract size for {symbol}")
        return Position(
            symbol=symbol,
            side=side,
            margin_mode=MarginMode.ISOLATED if isolated else MarginMode.CROSS,
            quantity=abs(amount),
            entry_price=number(row, "entryPrice", where),
            mark_price=number(row, "markPrice", where),
            tiers=tiers,
            contract_size=contract_size,
            leverage=optional_number(row, "leverage", where),
            isolated_margin=isolated_wallet if isolated else None,
            hedge=hedge,
            exchange_liquidation_price=positive_or_none(
                optional_number(row, "liquidationPrice", where)
            ),
            exchange_maintenance_margin=_first(
                optional_number(row, "maintMargin", where), margins.get(_leg(row), (None, None))[0]
            ),
            settle_asset=self._margin_asset(row, where) if pooled else None,
            underlying=self._base_asset(symbol, where) if pooled else None,
        )

    def _base_asset(self, symbol: str, where: str) -> str:
        """The coin the contract's mark prices (BTC for BTCUSDT)."""
        market = self.listed_market(symbol, where)
        base = market.get("baseId") or market.get("base")
        if not isinstance(base, str) or not base:
            raise ExchangeDataError(f"{where}.symbol: no base asset for {symbol}")
        return base

    async def _refresh_tiers(self, symbols: set[str]) -> None:
        if not self.tiers.stale(symbols):
            return
        if self._inverse:
            method = "dapiPrivateV2GetLeverageBracket"
        elif self.model is PoolModel.PORTFOLIO:
            # fapi refuses a Portfolio Margin key; papi serves the same per-user brackets.
            method = "papiGetUmLeverageBracket"
        else:
            method = "fapiPrivateGetLeverageBracket"
        try:
            body = await self.request("leverage brackets", method)
        except ExchangeUnavailable:
            # A failed hourly re-read keeps the tables we have (tried again next poll) rather
            # than leaving the account unwatched; only a table we never had fails the fetch.
            if self.tiers.covers(symbols):
                return
            raise
        response = as_list(body, f"{self.label}: brackets")
        tables: dict[str, TierTable] = {}
        for index, raw in enumerate(response):
            where = f"{self.label}: leverageBracket[{index}]"
            entry = as_mapping(raw, where)
            symbol = text(entry, "symbol", where)
            if symbol in symbols or self.tiers.table(symbol) is not None:
                tables[symbol] = self._table(entry, where)
        missing = symbols - tables.keys()
        if missing:
            raise ExchangeDataError(f"{self.label}: no leverage brackets for {sorted(missing)}")
        self.tiers.update(tables)

    def _table(self, entry: Mapping[str, Any], where: str) -> TierTable:
        floor_key, cap_key = (
            ("qtyFloor", "qtyCap") if self._inverse else ("notionalFloor", "notionalCap")
        )
        rows = []
        for index, raw in enumerate(as_list(entry.get("brackets"), f"{where}.brackets")):
            path = f"{where}.brackets[{index}]"
            bracket = as_mapping(raw, path)
            rows.append(
                (
                    number(bracket, floor_key, path),
                    number(bracket, cap_key, path),
                    number(bracket, "maintMarginRatio", path),
                    optional_number(bracket, "cum", path) or 0.0,
                )
            )
        if not rows:
            raise ExchangeDataError(f"{where}.brackets: empty")
        return tiers_from_rows(rows)

    async def probe(self) -> ProbeReport:
        try:
            state = await self.fetch_account()
        except MonitorError as exc:
            return ProbeReport(
                self.name,
                self.venue,
                reachable=not isinstance(exc, ExchangeUnavailable),
                error=str(exc),
            )
        warnings: list[str] = []
        can_trade = can_withdraw = None
        permissions: tuple[str, ...] = ()
        try:
            restrictions = as_mapping(
                await self.request("key permissions", "sapiGetAccountApiRestrictions"),
                f"{self.label}: apiRestrictions",
            )
            permissions = tuple(
                sorted(
                    key
                    for key, value in restrictions.items()
                    if key.startswith(("enable", "permits", "ip")) and value is True
                )
            )
            other_trading = any(
                restrictions.get(key) is True
                for key in (
                    "enableSpotAndMarginTrading",
                    "enableMargin",
                    "enableVanillaOptions",
                    "enablePortfolioMarginTrading",
                )
            )
            futures = restrictions.get("enableFutures") is True
            can_trade = other_trading or futures
            can_withdraw = restrictions.get("enableWithdrawals") is True
            if other_trading:
                warnings.append(
                    "the API key can trade spot, margin or options; the monitor needs none of it"
                )
            if futures:
                # Binance has no read-only futures permission: reading positions needs enableFutures.
                warnings.append(
                    "enableFutures (which reading futures data requires) also lets this key trade "
                    "futures; Binance offers no read-only futures key"
                    + (
                        ""
                        if restrictions.get("ipRestrict") is True
                        else ": restrict it to this host's IP"
                    )
                )
        except MonitorError as exc:
            warnings.append(f"key permissions unknown: {exc}")
        portfolio = self.model is PoolModel.PORTFOLIO
        if portfolio:
            dual_method = "papiGetUmPositionSideDual"
        else:
            dual_method = f"{'dapi' if self._inverse else 'fapi'}PrivateGetPositionSideDual"
        position_mode = None
        try:
            dual = as_mapping(
                await self.request("position mode", dual_method),
                f"{self.label}: positionSide/dual",
            )
            position_mode = "hedge" if dual.get("dualSidePosition") in (True, "true") else "one-way"
        except MonitorError as exc:
            warnings.append(f"position mode unknown: {exc}")
        margin_modes = sorted({p.margin_mode.value for p in state.positions})
        if not self._inverse and not portfolio:
            try:
                configs = as_list(
                    await self.request("margin modes", "fapiPrivateGetSymbolConfig"),
                    f"{self.label}: symbolConfig",
                )
                held = {p.symbol for p in state.positions}
                margin_modes = sorted(
                    {
                        "isolated"
                        if str(c.get("marginType", "")).upper() == "ISOLATED"
                        else "cross"
                        for c in configs
                        if isinstance(c, Mapping) and (not held or c.get("symbol") in held)
                    }
                    | set(margin_modes)
                )
            except MonitorError as exc:
                warnings.append(f"margin modes from positions only: {exc}")
        warnings.extend(permission_warnings(None, can_withdraw))
        return ProbeReport(
            self.name,
            self.venue,
            reachable=True,
            can_trade=can_trade,
            can_withdraw=can_withdraw,
            permissions=permissions,
            position_mode=position_mode,
            account_model=state.model.value,
            margin_modes=tuple(margin_modes),
            warnings=tuple(warnings),
        )


def _leg(row: Mapping[str, Any]) -> tuple[str, str]:
    return str(row.get("symbol")), str(row.get("positionSide") or "BOTH")


def _first(*values: float | None) -> float | None:
    return next((value for value in values if value is not None), None)


def _account_margins(
    account: Mapping[str, Any],
) -> dict[tuple[str, str], tuple[float | None, float | None]]:
    """(maintenance, initial) margin per (symbol, position side) from the account's position rows;
    the venue's own figures, shown beside ours, so a malformed one is dropped rather than fatal."""
    margins = {}
    rows = account.get("positions")
    for row in rows if isinstance(rows, list) else ():
        if isinstance(row, Mapping):
            margins[_leg(row)] = (_float(row.get("maintMargin")), _float(row.get("initialMargin")))
    return margins


def _float(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _total(values: Iterable[float | None]) -> float | None:
    """The sum of the venue's numbers, or None if any is missing (no sum of a partial list)."""
    total = 0.0
    for value in values:
        if value is None:
            return None
        total += value
    return total
