"""Bybit v5 Unified Trading Account: linear (USDT- and USDC-settled) and inverse perpetuals.

Every poll first reads `/v5/account/info` (`bybit_account`): a classic account is refused, a
portfolio-margin account too. In cross margin (REGULAR_MARGIN) a bybit-linear entry watches the
account's whole pool: every collateral coin in USD (`bybit_pool`, `bybit_collateral`) behind the
USDT and USDC contracts together, whatever the entry's `asset`. In isolated-margin mode, and for
inverse contracts under UTA 1.0, an entry watches one settle coin as before. ccxt's `marginMode` is
always None on Bybit, so the margin mode comes from the account or the row's `tradeMode`;
maintenance-margin deductions come from the public risk-limit table, and the taker fee (Bybit puts
the fee to close inside IM and MM) from the account's fee rates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from monitor.domain.errors import ExchangeDataError, ExchangeUnavailable, MonitorError
from monitor.domain.model import (
    AccountState,
    ExchangeAccountFigures,
    MarginMode,
    PoolModel,
    Position,
    Side,
    Venue,
)
from monitor.domain.units import format_percent
from monitor.exchanges.base import VenueClient, all_of
from monitor.exchanges.bybit_account import BybitAccount, bybit_account
from monitor.exchanges.bybit_collateral import (
    CollateralBook,
    collateral_switches,
    collateral_tiers,
    spot_usd_index,
)
from monitor.exchanges.bybit_pool import ReadPosition, unified_parts, unified_wallet
from monitor.exchanges.fields import (
    as_list,
    as_mapping,
    number,
    optional_number,
    positive_or_none,
    text,
)
from monitor.exchanges.probe import ProbeReport, permission_warnings
from monitor.exchanges.stops import StopReader
from monitor.exchanges.tiers import TierTable, tiers_from_rows

_PAGE_LIMIT = 200
# A runaway cursor must not turn one poll into an unbounded crawl.
_MAX_PAGES = 20
# Bybit settles linear contracts in these coins; a unified pool reads the positions of each.
LINEAR_SETTLE_COINS = ("USDT", "USDC")
# Bybit's published taker fee for perpetual and futures contracts (linear and inverse) at the
# non-VIP level, the highest of its standard schedule ("Trading Fee Structure"): used for a symbol
# whose own rate was never read. A higher fee makes the fee to close, and so the maintenance
# margin, larger: the cautious side.
DEFAULT_TAKER_FEE = 0.00055
# How soon fee rates that could not be read are asked for again (not every poll: a venue that
# does not serve them would cost every poll a failed request and its retries).
FEE_RETRY_SECONDS = 300.0

log = logging.getLogger(__name__)

_TRADING_GROUPS = ("ContractTrade", "Spot", "Options", "Derivatives", "Exchange", "CopyTrading")


def result_of(response: Any, where: str) -> Mapping[str, Any]:
    """The `result` object of a v5 envelope."""
    envelope = as_mapping(response, where)
    return as_mapping(envelope.get("result"), f"{where}.result")


class BybitClient(VenueClient):
    """A Bybit UTA account; `venue` picks linear or inverse contracts, `asset` the settle coin."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._collateral = CollateralBook(self.tiers.refresh_interval)
        self._fee_rates: dict[str, float] = {}
        self._fees_loaded_at = -float("inf")
        # Symbols whose rate is Bybit's default for want of the account's own, and why.
        self._fees_assumed: dict[str, str] = {}
        self._fees_retry_at = -float("inf")
        self._stops = StopReader(self)

    @property
    def _category(self) -> str:
        return "inverse" if self.venue is Venue.BYBIT_INVERSE else "linear"

    async def server_time_ms(self) -> int:
        response = as_mapping(await self.exchange.publicGetV5MarketTime(), f"{self.label}: time")
        return int(number(response, "time", f"{self.label}: time"))

    async def _fetch_account(self) -> AccountState:
        await self.ensure_markets()
        # The account kind decides which wallet and which positions make the pool; a classic
        # account answers the unified wallet with a bare 404, so it is asked first.
        where = f"{self.label}: account info"
        account = bybit_account(
            await self.request("account info", "privateGetV5AccountInfo"), where
        )
        if account.model is PoolModel.PORTFOLIO:
            raise ExchangeDataError(
                f"{where}.result.marginMode: PORTFOLIO_MARGIN: Bybit margins a portfolio-margin "
                "account by portfolio risk and publishes no liquidation price per position; this "
                "monitor does not compute it (switch the account to cross or isolated margin)"
            )
        if self.venue is Venue.BYBIT_INVERSE and account.inverse_pooled:
            raise ExchangeDataError(
                f"{where}: UTA 2.0 in {account.label.split(' ', 2)[2]} shares margin between "
                "inverse contracts and every other coin (Bybit API docs, Different Account "
                "Modes); the engine pools linear contracts only: watch this account with venue = "
                "bybit-linear, whose pool carries the inverse positions' PnL and margin as venue "
                "figures"
            )
        if account.model is PoolModel.UNIFIED and self.venue is Venue.BYBIT_LINEAR:
            return await self._unified(account)
        return await self._single_coin(account)

    async def _single_coin(self, account: BybitAccount) -> AccountState:
        """One settle coin's pool: isolated-margin mode, or inverse contracts under UTA 1.0 (their
        own "inverse derivatives account", wallet-balance accountType=CONTRACT)."""
        account_type = "CONTRACT" if self.venue.inverse and account.version == 1 else "UNIFIED"
        wallet, rows = await all_of(
            self.request(
                "wallet balance", "privateGetV5AccountWalletBalance", {"accountType": account_type}
            ),
            self._position_rows(self.asset),
        )
        account_isolated = account.model is PoolModel.ISOLATED
        symbols = {text(row, "symbol", where) for where, row in rows}
        await all_of(self._refresh_tiers(symbols), self._refresh_fees(symbols))
        wallet_balance, reported = self._pool(wallet)
        positions = tuple(self._position(row, where, account_isolated) for where, row in rows)
        state = AccountState(
            venue=self.venue,
            wallet_balance=wallet_balance,
            positions=positions,
            asset=self.asset,
            reported=reported,
            model=PoolModel.ISOLATED if account_isolated else PoolModel.SINGLE_ASSET,
            assumptions=self._assumptions(positions),
        )
        return await self._stops.bybit(state, rows, self._category, (self.asset,))

    async def _unified(self, account: BybitAccount) -> AccountState:
        """The whole cross-margin pool of a UTA: every collateral coin in USD behind the USDT and
        USDC contracts together (the entry's `asset` selects nothing here)."""
        wallet_raw, *pages = await all_of(
            self.request(
                "wallet balance", "privateGetV5AccountWalletBalance", {"accountType": "UNIFIED"}
            ),
            *(self._position_rows(coin) for coin in LINEAR_SETTLE_COINS),
        )
        rows = [entry for page in pages for entry in page]
        symbols = {text(row, "symbol", where) for where, row in rows}
        await all_of(
            self._refresh_tiers(symbols), self._refresh_fees(symbols), self._refresh_collateral()
        )
        positions = tuple(self._position(row, where, False, pooled=True) for where, row in rows)
        read = [
            ReadPosition(
                settle_asset=position.settle_asset or "",
                unrealized_pnl=optional_number(row, "unrealisedPnl", where) or 0.0,
                maintenance_margin=optional_number(row, "positionMM", where) or 0.0,
            )
            for position, (where, row) in zip(positions, rows, strict=True)
        ]
        wallet = unified_wallet(wallet_raw, f"{self.label}: wallet balance")
        settle = {entry.settle_asset for entry in read}
        unpriced = sorted(wallet.unpriced(settle, self._collateral))
        prices = await all_of(*(self._usd_index(coin) for coin in unpriced))
        parts = unified_parts(
            wallet, read, self._collateral, dict(zip(unpriced, prices, strict=True))
        )
        assumptions = self._assumptions(positions)
        if parts.assumed:
            assumptions += (
                f"collateral value ratio 100 % for stablecoins and 0 % for other coins "
                f"({', '.join(parts.assumed)}; the cautious bound): collateral tables "
                f"unreadable ({self._collateral.failure})",
            )
        state = AccountState(
            venue=self.venue,
            wallet_balance=parts.wallet_balance,
            positions=positions,
            asset="USD",
            reported=parts.reported,
            model=PoolModel.UNIFIED,
            collateral=parts.collateral,
            venue_terms=parts.venue_terms,
            assumptions=assumptions,
        )
        return await self._stops.bybit(state, rows, self._category, LINEAR_SETTLE_COINS)

    async def _refresh_collateral(self) -> None:
        """Re-read the tiered collateral value ratios and collateral switches once an hour."""
        book = self._collateral
        if not book.stale():
            return
        try:
            tiers, switches = await all_of(
                self.request("collateral ratios", "publicGetV5SpotMarginTradeCollateral"),
                self.request("collateral info", "privateGetV5AccountCollateralInfo"),
            )
        except MonitorError as exc:
            if book.loaded:
                return  # the tables we have, as for the risk-limit tables
            # Never read: each coin counts at its cautious bound (see bybit_pool) until they
            # are, asked for again after a while (`_retry_seconds`), not on every poll.
            if book.failure is None:
                log.warning(
                    "%s: collateral tables unreadable (%s); until they are read, stablecoins "
                    "count at 100 %% of their value and other coins at 0 %% (the cautious bound)",
                    self.label,
                    exc,
                )
            book.failed(str(exc), retry_in=self._retry_seconds)
            return
        book.update(
            collateral_tiers(tiers, f"{self.label}: spot-margin-trade/collateral"),
            collateral_switches(switches, f"{self.label}: collateral-info"),
        )

    async def _usd_index(self, coin: str) -> float:
        """Bybit's USD index price of `coin` from its spot ticker (`usdIndexPrice`, "used to
        calculate USD value of the assets in Unified account"), for a coin the wallet row cannot
        price. USDT has no USDT pair: its USD price is USDC's index over the USDCUSDT price."""
        symbol = "USDCUSDT" if coin == "USDT" else f"{coin}USDT"
        where = f"{self.label}: spot ticker {symbol}"
        index, last = spot_usd_index(
            await self.request(
                f"USD index {coin}",
                "publicGetV5MarketTickers",
                {"category": "spot", "symbol": symbol},
            ),
            where,
        )
        if coin != "USDT":
            return index
        if not last:
            raise ExchangeDataError(f"{where}.lastPrice: missing")
        return index / last

    async def _position_rows(self, settle: str) -> list[tuple[str, Mapping[str, Any]]]:
        """(field path, row) of every non-flat position settled in `settle`, following the
        cursor."""
        params: dict[str, Any] = {"category": self._category, "limit": _PAGE_LIMIT}
        if self._category == "linear":
            params["settleCoin"] = settle
        # One row per position (symbol and leg): a page Bybit serves twice must not count twice.
        legs: dict[tuple[str, str], tuple[str, Mapping[str, Any]]] = {}
        sent: set[str] = set()
        for page in range(_MAX_PAGES):
            where = f"{self.label}: positions {settle} page {page}"
            result = result_of(
                await self.request("positions", "privateGetV5PositionList", params), where
            )
            for index, raw in enumerate(as_list(result.get("list"), f"{where}.list")):
                path = f"{where}.list[{index}]"
                row = as_mapping(raw, path)
                if number(row, "size", path) != 0:
                    leg = (text(row, "symbol", path), str(row.get("positionIdx", "0")))
                    legs.setdefault(leg, (path, row))
            cursor = result.get("nextPageCursor")
            # Bybit may end with a cursor that addresses the page it came with: asking for it
            # again returns the same rows and the same cursor, for ever.
            if not cursor or cursor in sent:
                rows = list(legs.values())
                if self._category == "inverse":
                    await self.ensure_listed(text(row, "symbol", path) for path, row in rows)
                return [(path, row) for path, row in rows if self._settles_in(row, path, settle)]
            sent.add(str(cursor))
            params = {**params, "cursor": cursor}
        raise ExchangeDataError(f"{self.label}: positions: more than {_MAX_PAGES} pages")

    def _settles_in(self, row: Mapping[str, Any], where: str, settle: str) -> bool:
        if self._category == "linear":
            return True  # the request already asked for this settle coin
        market = self.listed_market(text(row, "symbol", where), where)
        return str(market.get("settleId") or "") == settle

    def _pool(self, wallet: Any) -> tuple[float, ExchangeAccountFigures]:
        where = f"{self.label}: wallet balance"
        accounts = as_list(result_of(wallet, where).get("list"), f"{where}.list")
        if not accounts:
            raise ExchangeDataError(f"{where}.list: empty (is this a Unified Trading Account?)")
        account = as_mapping(accounts[0], f"{where}.list[0]")
        ratio = optional_number(account, "accountMMRate", f"{where}.list[0]")
        for index, raw in enumerate(as_list(account.get("coin"), f"{where}.list[0].coin")):
            path = f"{where}.list[0].coin[{index}]"
            coin = as_mapping(raw, path)
            if coin.get("coin") != self.asset:
                continue
            equity = optional_number(coin, "equity", path)
            maintenance = optional_number(coin, "totalPositionMM", path)
            # accountMMRate spans every coin of the unified account; this pool's own rate is
            # what compares with ours (the account-wide one is the fallback).
            if equity and maintenance is not None:
                ratio = maintenance / equity
            reported = ExchangeAccountFigures(
                equity=equity,
                maintenance_margin=maintenance,
                initial_margin=optional_number(coin, "totalPositionIM", path),
                margin_ratio=ratio,
            )
            return number(coin, "walletBalance", path), reported
        # Bybit lists only coins with a balance: no row means nothing of this coin in the wallet.
        return 0.0, ExchangeAccountFigures(margin_ratio=ratio)

    def _position(
        self, row: Mapping[str, Any], where: str, account_isolated: bool, *, pooled: bool = False
    ) -> Position:
        symbol = text(row, "symbol", where)
        index = str(row.get("positionIdx", "0"))
        hedge = index in ("1", "2")
        if hedge:
            side = Side.LONG if index == "1" else Side.SHORT
        elif row.get("side") in ("Buy", "Sell"):
            side = Side.LONG if row.get("side") == "Buy" else Side.SHORT
        else:
            raise ExchangeDataError(f"{where}.side: {row.get('side')!r} on an open position")
        isolated = account_isolated or str(row.get("tradeMode", "0")) == "1"
        tiers = self.tiers.table(symbol)
        if tiers is None:
            raise ExchangeDataError(f"{where}: no risk-limit table for {symbol}")
        return Position(
            symbol=symbol,
            side=side,
            margin_mode=MarginMode.ISOLATED if isolated else MarginMode.CROSS,
            quantity=abs(number(row, "size", where)),
            entry_price=number(row, "avgPrice", where),
            mark_price=number(row, "markPrice", where),
            tiers=tiers,
            contract_size=1.0,
            leverage=optional_number(row, "leverage", where),
            isolated_margin=number(row, "positionIM", where) if isolated else None,
            taker_fee=self._taker_fee(symbol),
            hedge=hedge,
            exchange_liquidation_price=positive_or_none(optional_number(row, "liqPrice", where)),
            exchange_maintenance_margin=optional_number(row, "positionMM", where),
            settle_asset=self._market_coin(symbol, where, "settleId") if pooled else None,
            underlying=self._market_coin(symbol, where, "baseId") if pooled else None,
        )

    def _market_coin(self, symbol: str, where: str, key: str) -> str:
        """The settle or base coin of a listed market (USDT / BTC for BTCUSDT)."""
        coin = self.listed_market(symbol, where).get(key)
        if not isinstance(coin, str) or not coin:
            raise ExchangeDataError(f"{where}.symbol: market {symbol} has no {key}")
        return coin

    async def _refresh_tiers(self, symbols: set[str]) -> None:
        stale = self.tiers.stale(symbols)
        if not stale:
            return
        try:
            responses = await all_of(
                *(
                    self.request(
                        f"risk limits {symbol}",
                        "publicGetV5MarketRiskLimit",
                        {"category": self._category, "symbol": symbol},
                    )
                    for symbol in stale
                )
            )
        except ExchangeUnavailable:
            # A failed hourly re-read keeps the tables we have (tried again next poll) rather
            # than leaving the account unwatched; only a table we never had fails the fetch.
            if self.tiers.covers(symbols):
                return
            raise
        self.tiers.update(
            {
                symbol: self._table(symbol, response)
                for symbol, response in zip(stale, responses, strict=True)
            }
        )

    def _table(self, symbol: str, response: Any) -> TierTable:
        where = f"{self.label}: risk-limit {symbol}"
        entries = []
        for index, raw in enumerate(
            as_list(result_of(response, where).get("list"), f"{where}.list")
        ):
            path = f"{where}.list[{index}]"
            row = as_mapping(raw, path)
            if row.get("symbol", symbol) != symbol:
                continue
            entries.append(
                (
                    number(row, "riskLimitValue", path),
                    number(row, "maintenanceMargin", path),
                    optional_number(row, "mmDeduction", path) or 0.0,
                )
            )
        if not entries:
            raise ExchangeDataError(f"{where}: empty risk-limit table")
        entries.sort()
        floors = [0.0] + [cap for cap, _, _ in entries[:-1]]
        return tiers_from_rows(
            (floor, cap, mmr, deduction)
            for floor, (cap, mmr, deduction) in zip(floors, entries, strict=True)
        )

    async def _refresh_fees(self, symbols: set[str]) -> None:
        now = time.monotonic()
        fresh = now - self._fees_loaded_at < self.tiers.refresh_interval
        if fresh and symbols <= self._fee_rates.keys():
            return
        if not symbols or (now < self._fees_retry_at and symbols <= self._known_fees()):
            return
        where = f"{self.label}: fee rates"
        try:
            response = await self.request(
                "fee rates", "privateGetV5AccountFeeRate", {"category": self._category}
            )
            rates = {}
            for index, raw in enumerate(
                as_list(result_of(response, where).get("list"), f"{where}.list")
            ):
                row = as_mapping(raw, f"{where}.list[{index}]")
                rates[text(row, "symbol", f"{where}.list[{index}]")] = number(
                    row, "takerFeeRate", f"{where}.list[{index}]"
                )
        except MonitorError as exc:
            # The fee to close is a small term of the maintenance margin with a published
            # default: not reading it must not leave the account unwatched. The rates we have
            # are kept (as for the risk-limit tables); only symbols never read get the default.
            self._fees_retry_at = now + self._retry_seconds
            self._assume_fees(symbols - self._fee_rates.keys(), f"fee rates unreadable ({exc})")
            return
        missing = symbols - rates.keys()
        self._fee_rates = rates
        self._fees_loaded_at = now
        if missing:
            self._fees_retry_at = now + self._retry_seconds
        self._fees_assumed = {s: why for s, why in self._fees_assumed.items() if s in missing}
        self._assume_fees(missing, "no rate for it in the account's fee rates")

    @property
    def _retry_seconds(self) -> float:
        """How soon optional data that could not be read is asked for again."""
        return min(FEE_RETRY_SECONDS, self.tiers.refresh_interval)

    def _known_fees(self) -> set[str]:
        return self._fee_rates.keys() | self._fees_assumed.keys()

    def _assume_fees(self, symbols: Iterable[str], why: str) -> None:
        """Use Bybit's default taker fee for `symbols`; one warning per symbol and reason."""
        new = sorted(s for s in symbols if self._fees_assumed.get(s) != why)
        for symbol in symbols:
            self._fees_assumed[symbol] = why
        if new:
            log.warning(
                "%s: taker fee of %s assumed at Bybit's non-VIP default %.3f %% "
                "(the cautious side: a higher fee to close, a larger maintenance margin): %s",
                self.label,
                ", ".join(new),
                DEFAULT_TAKER_FEE * 100,
                why,
            )

    def _taker_fee(self, symbol: str) -> float:
        rate = self._fee_rates.get(symbol)
        if rate is None:
            self._fees_assumed.setdefault(symbol, "fee rates not read yet")
            return DEFAULT_TAKER_FEE
        return rate

    def _assumptions(self, positions: Iterable[Position]) -> tuple[str, ...]:
        """What this state assumes for want of the venue's data, in words."""
        assumed = sorted({p.symbol for p in positions if p.symbol in self._fees_assumed})
        if not assumed:
            return ()
        reasons = sorted({self._fees_assumed[symbol] for symbol in assumed})
        return (
            f"taker fee {format_percent(DEFAULT_TAKER_FEE)} (Bybit's non-VIP default) for "
            f"{', '.join(assumed)}: {'; '.join(reasons)}",
        )

    async def probe(self) -> ProbeReport:
        try:
            state = await self.fetch_account()
            account = bybit_account(
                await self.request("account info", "privateGetV5AccountInfo"),
                f"{self.label}: account info",
            )
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
            key = result_of(
                await self.request("key permissions", "privateGetV5UserQueryApi"),
                f"{self.label}: query-api",
            )
            granted = key.get("permissions")
            groups = granted if isinstance(granted, Mapping) else {}
            permissions = tuple(
                sorted(
                    f"{group}:{perm}"
                    for group, perms in groups.items()
                    if isinstance(perms, list)
                    for perm in perms
                )
            )
            read_only = str(key.get("readOnly", "")) == "1"
            can_trade = not read_only and any(groups.get(group) for group in _TRADING_GROUPS)
            can_withdraw = "Withdraw" in (groups.get("Wallet") or [])
        except MonitorError as exc:
            warnings.append(f"key permissions unknown: {exc}")
        if state.pooled:
            warnings.append(
                f"{account.label}: this entry watches the account's whole cross pool (every "
                f"collateral coin, USDT and USDC contracts); asset = {self.asset} selects nothing "
                "here, and every entry on this key shows the same pool"
            )
        for term in state.venue_terms:
            warnings.append(f"{term.name}: taken from Bybit's own figures")
        position_mode = None
        if state.positions:
            position_mode = "hedge" if any(p.hedge for p in state.positions) else "one-way"
        warnings.extend(permission_warnings(can_trade, can_withdraw))
        margin = {PoolModel.ISOLATED: "isolated", PoolModel.UNIFIED: "cross"}
        return ProbeReport(
            self.name,
            self.venue,
            reachable=True,
            can_trade=can_trade,
            can_withdraw=can_withdraw,
            permissions=permissions,
            position_mode=position_mode,
            account_model=state.model.value,
            margin_modes=(margin.get(account.model, account.model.value),),
            warnings=tuple(warnings),
        )
