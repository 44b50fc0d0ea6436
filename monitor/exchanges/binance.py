"""Binance USDⓈ-M (fapi) and COIN-M (dapi) futures: one account's margin pool from raw fields.

ccxt's own `maintenanceMargin` (no `cum`), `collateral` and `marginRatio` are never used; we read
`/fapi/v3/account` + `/fapi/v3/positionRisk` (or the dapi v1 equivalents) and the per-user
leverage brackets directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from monitor.domain.errors import ExchangeDataError, ExchangeUnavailable, MonitorError
from monitor.domain.model import (
    AccountState,
    ExchangeAccountFigures,
    MarginMode,
    Position,
    Side,
    Venue,
)
from monitor.exchanges.base import VenueClient, all_of
from monitor.exchanges.fields import (
    as_list,
    as_mapping,
    number,
    optional_number,
    positive_or_none,
    text,
)
from monitor.exchanges.probe import ProbeReport, permission_warnings
from monitor.exchanges.tiers import TierTable, tiers_from_rows


class BinanceClient(VenueClient):
    """Binance futures account; `venue` picks USDⓈ-M (linear) or COIN-M (inverse)."""

    @property
    def _inverse(self) -> bool:
        return self.venue is Venue.BINANCE_COINM

    async def server_time_ms(self) -> int:
        method = "dapiPublicGetTime" if self._inverse else "fapiPublicGetTime"
        response = as_mapping(await getattr(self.exchange, method)(), f"{self.label}: time")
        return int(number(response, "serverTime", f"{self.label}: time"))

    async def _fetch_account(self) -> AccountState:
        await self.ensure_markets()
        if self._inverse:
            account, risk = await all_of(
                self.request("account", "dapiPrivateGetAccount"),
                self.request("positions", "dapiPrivateGetPositionRisk"),
            )
        else:
            account, risk = await all_of(
                self.request("account", "fapiPrivateV3GetAccount"),
                self.request("positions", "fapiPrivateV3GetPositionRisk"),
            )
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
        )

    def _open_rows(self, rows: list[Any]) -> list[tuple[str, Mapping[str, Any]]]:
        """(field path, row) of the non-flat positions settled in this pool's asset."""
        result = []
        for index, raw in enumerate(rows):
            where = f"{self.label}: positionRisk[{index}]"
            row = as_mapping(raw, where)
            if number(row, "positionAmt", where) == 0:
                continue
            if self._margin_asset(row, where) == self.asset:
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
    ) -> Position:
        symbol = text(row, "symbol", where)
        amount = number(row, "positionAmt", where)
        position_side = str(row.get("positionSide") or "BOTH")
        hedge = position_side in ("LONG", "SHORT")
        if hedge:
            side = Side.LONG if position_side == "LONG" else Side.SHORT
        else:
            side = Side.LONG if amount > 0 else Side.SHORT
        isolated_wallet = optional_number(row, "isolatedWallet", where) or 0.0
        margin_type = str(row.get("marginType") or "").lower()
        isolated = margin_type == "isolated" if margin_type else isolated_wallet != 0
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
        )

    async def _refresh_tiers(self, symbols: set[str]) -> None:
        if not self.tiers.stale(symbols):
            return
        method = (
            "dapiPrivateV2GetLeverageBracket" if self._inverse else "fapiPrivateGetLeverageBracket"
        )
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
        api = "dapi" if self._inverse else "fapi"
        position_mode = None
        try:
            dual = as_mapping(
                await self.request("position mode", f"{api}PrivateGetPositionSideDual"),
                f"{self.label}: positionSide/dual",
            )
            position_mode = "hedge" if dual.get("dualSidePosition") in (True, "true") else "one-way"
        except MonitorError as exc:
            warnings.append(f"position mode unknown: {exc}")
        margin_modes = sorted({p.margin_mode.value for p in state.positions})
        if not self._inverse:
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
