"""A Bybit Unified Trading Account in cross margin (REGULAR_MARGIN) as one pool of collateral coins.

Bybit ("Glossary (Unified Trading Account)", "Collateral Value Ratios in UTA"): Margin Balance (USD)
= Σ coin balance x USD index price x tiered collateral value ratio (positive balances; negative
ones at 100 %) + perpetual and futures unrealised PnL of USDT and USDC contracts - spot borrow;
Account MM Rate = Total Maintenance Margin / (Margin Balance - Haircut Loss + Order Loss);
liquidation at 100 %.

What is read from `GET /v5/account/wallet-balance?accountType=UNIFIED`, per coin row:
- quantity = `walletBalance` - `spotBorrow` (Bybit: "old walletBalance = new walletBalance -
  spotBorrow"; a negative balance is a liability),
- USD price = `usdValue` / `equity`: the USD index price Bybit itself valued the coin at, in the same
  response as the balances (Bybit's USD index is the USDT-perpetual index x BTCUSD index / BTCUSDT
  index; no public endpoint serves it for every coin at once). A coin with no equity (or a settle
  coin with no row: Bybit omits zero balances) takes the spot ticker's `usdIndexPrice` instead,
- whether it counts: the row's `marginCollateral`/`collateralSwitch`, else collateral-info's.
The account-level `totalMarginBalance`, `totalMaintenanceMargin`, `totalInitialMargin` and
`accountMMRate` (all in USD) are the venue's figures shown beside ours.

What Bybit counts and we cannot model from positions is taken from its own figures, labelled:
- positions the pool does not read (inverse contracts under UTA 2.0, options): the part of a coin's
  `unrealisedPnl` and `totalPositionMM` that the linear position rows do not account for (venue
  figures against venue figures, so rounding of ours plays no part), held at today's value;
- spot borrows and open orders: account `totalMaintenanceMargin` minus the coins' position margin,
  when the account has borrows or orders to explain it.
Haircut loss and order loss (in Bybit's MM-rate denominator) are not published per account; they
are left out, and the venue's `accountMMRate` stands beside ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.domain.errors import ExchangeDataError
from monitor.domain.model import Collateral, CollateralTier, ExchangeAccountFigures, VenueTerm
from monitor.exchanges.bybit_collateral import CollateralBook, wallet_switch
from monitor.exchanges.fields import as_list, as_mapping, number, optional_number, text

# USD stablecoins: their price does not move with marks (the engine holds it in every move).
STABLE = frozenset(
    {"USDT", "USDC", "USDE", "DAI", "FDUSD", "PYUSD", "USD1", "RLUSD", "TUSD", "BUSD", "USDD"}
)
_NOTHING = (CollateralTier(0.0, 0.0),)
UNREAD_POSITIONS = "positions not read (inverse contracts, options)"
BORROWS_AND_ORDERS = "spot borrows and open orders"


@dataclass(frozen=True, slots=True)
class WalletCoin:
    """One coin row of the unified wallet."""

    asset: str
    quantity: float
    equity: float | None
    usd_value: float | None
    unrealized_pnl: float
    position_mm: float
    switch: bool | None
    borrowed: bool
    order_margin: float


@dataclass(frozen=True, slots=True)
class ReadPosition:
    """What the venue says about one position row the pool read (in its settle coin)."""

    settle_asset: str
    unrealized_pnl: float
    maintenance_margin: float


@dataclass(frozen=True, slots=True)
class UnifiedWallet:
    """The account summary and coin rows of a wallet-balance response."""

    summary: Mapping[str, Any]
    coins: tuple[WalletCoin, ...]
    where: str

    def wallet_price(self, coin: WalletCoin) -> float | None:
        """The USD price the venue valued `coin` at, None when the row cannot say."""
        if coin.equity and coin.usd_value:
            price = coin.usd_value / coin.equity
            if price > 0:
                return price
        return None

    def unpriced(self, settle_assets: Iterable[str], book: CollateralBook) -> set[str]:
        """Coins that need a USD index price from elsewhere: no usable row, yet settled in, owed,
        or held as collateral."""
        settle = set(settle_assets)
        by_asset = {coin.asset: coin for coin in self.coins}
        missing = {asset for asset in settle if asset not in by_asset}
        for coin in self.coins:
            if self.wallet_price(coin) is None and _priced_matters(coin, settle, book):
                missing.add(coin.asset)
        return missing


def _counts(coin: WalletCoin, book: CollateralBook) -> bool | None:
    return coin.switch if coin.switch is not None else book.switches.get(coin.asset)


def _priced_matters(coin: WalletCoin, settle: set[str], book: CollateralBook) -> bool:
    """Whether the coin's value depends on its price: settled in, owed, or held as collateral."""
    if coin.asset in settle or coin.quantity < 0:
        return True
    return bool(coin.quantity) and _counts(coin, book) is not False


def unified_wallet(response: Any, where: str) -> UnifiedWallet:
    """The first (only) account of a wallet-balance envelope and its coin rows."""
    result = as_mapping(as_mapping(response, where).get("result"), f"{where}.result")
    accounts = as_list(result.get("list"), f"{where}.result.list")
    if not accounts:
        raise ExchangeDataError(f"{where}.result.list: empty (is this a Unified Trading Account?)")
    path = f"{where}.result.list[0]"
    summary = as_mapping(accounts[0], path)
    coins = []
    for index, raw in enumerate(as_list(summary.get("coin"), f"{path}.coin")):
        row_path = f"{path}.coin[{index}]"
        row = as_mapping(raw, row_path)
        borrow = optional_number(row, "spotBorrow", row_path) or 0.0
        coins.append(
            WalletCoin(
                asset=text(row, "coin", row_path),
                quantity=number(row, "walletBalance", row_path) - borrow,
                equity=optional_number(row, "equity", row_path),
                usd_value=optional_number(row, "usdValue", row_path),
                unrealized_pnl=optional_number(row, "unrealisedPnl", row_path) or 0.0,
                position_mm=optional_number(row, "totalPositionMM", row_path) or 0.0,
                switch=wallet_switch(row, row_path),
                borrowed=borrow > 0 or (optional_number(row, "borrowAmount", row_path) or 0) > 0,
                order_margin=optional_number(row, "totalOrderIM", row_path) or 0.0,
            )
        )
    return UnifiedWallet(summary, tuple(coins), path)


@dataclass(frozen=True, slots=True)
class UnifiedParts:
    """What a pooled AccountState takes from the wallet."""

    collateral: tuple[Collateral, ...]
    venue_terms: tuple[VenueTerm, ...]
    reported: ExchangeAccountFigures
    wallet_balance: float
    # Coins valued at their cautious bound because the collateral tables were never read.
    assumed: tuple[str, ...] = ()


def unified_parts(
    wallet: UnifiedWallet,
    read: Iterable[ReadPosition],
    book: CollateralBook,
    index_prices: Mapping[str, float],
) -> UnifiedParts:
    """Collateral coins, venue terms and the venue's account figures of a cross-margin UTA.

    `read` are the position rows the pool computes itself; `index_prices` the USD index prices of
    the coins `wallet.unpriced` named."""
    where = wallet.where
    read = list(read)
    settle_assets = {position.settle_asset for position in read}
    collateral: list[Collateral] = []
    assumed: list[str] = []
    unread_pnl = 0.0
    unread_mm = 0.0
    position_mm_usd = 0.0
    for number_, coin in enumerate(wallet.coins):
        path = f"{where}.coin[{number_}]"
        price = wallet.wallet_price(coin) or index_prices.get(coin.asset)
        if price is None:
            if not _priced_matters(coin, settle_assets, book):
                continue  # worth nothing as margin at any price
            raise ExchangeDataError(f"{path}.usdValue: no USD price for {coin.asset}")
        counts = _counts(coin, book)
        ratios: tuple[CollateralTier, ...] | None
        if book.failure is not None and counts is not False and coin.asset not in book.tiers:
            # The tables were never read: the cautious bound of the coin's value ratio, 100 %
            # for a stablecoin (what Bybit gives USDT and USDC) and 0 % for any other coin.
            ratios = _cautious(coin.asset)
            assumed.append(coin.asset)
        elif counts is None:
            raise ExchangeDataError(
                f"{path}: {coin.asset} is in neither the wallet's nor collateral-info's "
                "collateral list (marginCollateral / collateralSwitch)"
            )
        elif counts:
            ratios = book.tiers.get(coin.asset)
            if ratios is None:
                raise ExchangeDataError(
                    f"{path}: no tiered collateral value ratio for {coin.asset} "
                    "(spot-margin-trade/collateral)"
                )
        else:
            # Switched off or not accepted: a positive balance is worth nothing as margin; a
            # negative one is still owed in full.
            ratios = _NOTHING
        collateral.append(
            Collateral(
                asset=coin.asset,
                quantity=coin.quantity,
                price=price,
                ratios=ratios,
                liability_rate=1.0,
                stable=coin.asset in STABLE,
            )
        )
        ours = [p for p in read if p.settle_asset == coin.asset]
        pnl_gap = coin.unrealized_pnl - sum(p.unrealized_pnl for p in ours)
        mm_gap = coin.position_mm - sum(p.maintenance_margin for p in ours)
        scale = abs(coin.unrealized_pnl) + coin.position_mm + 1.0
        if abs(pnl_gap) > 1e-6 * scale:
            unread_pnl += pnl_gap * price
        if abs(mm_gap) > 1e-6 * scale:
            unread_mm += mm_gap * price
        position_mm_usd += coin.position_mm * price
    listed = {coin.asset for coin in collateral}
    for asset in sorted(settle_assets - listed):
        # Bybit omits coins with a zero balance; positions settled in one still draw on it.
        if asset not in index_prices:
            raise ExchangeDataError(f"{where}.coin: no row and no USD index price for {asset}")
        ratios = book.tiers.get(asset)
        if ratios is None and book.failure is not None:
            ratios = _cautious(asset)
            assumed.append(asset)
        elif ratios is None:
            # Its PnL counts at this ratio once positive: guessing one would be silently wrong.
            raise ExchangeDataError(
                f"{where}.coin: no tiered collateral value ratio for settle coin {asset} "
                "(spot-margin-trade/collateral)"
            )
        collateral.append(Collateral(asset, 0.0, index_prices[asset], ratios, 1.0, asset in STABLE))
    summary = wallet.summary
    total_mm = optional_number(summary, "totalMaintenanceMargin", where)
    terms = []
    if unread_pnl or unread_mm:
        terms.append(VenueTerm(UNREAD_POSITIONS, equity=unread_pnl, maintenance_margin=unread_mm))
    explained = any(coin.borrowed or coin.order_margin > 0 for coin in wallet.coins)
    if total_mm is not None and explained:
        rest = total_mm - position_mm_usd
        if rest > 1e-6 * (total_mm + 1.0):
            terms.append(VenueTerm(BORROWS_AND_ORDERS, maintenance_margin=rest))
    reported = ExchangeAccountFigures(
        equity=optional_number(summary, "totalMarginBalance", where),
        maintenance_margin=total_mm,
        initial_margin=optional_number(summary, "totalInitialMargin", where),
        margin_ratio=optional_number(summary, "accountMMRate", where),
    )
    wallet_total = optional_number(summary, "totalWalletBalance", where)
    return UnifiedParts(
        collateral=tuple(collateral),
        venue_terms=tuple(terms),
        reported=reported,
        wallet_balance=wallet_total if wallet_total is not None else 0.0,
        assumed=tuple(assumed),
    )


def _cautious(asset: str) -> tuple[CollateralTier, ...]:
    return (CollateralTier(0.0, 1.0 if asset in STABLE else 0.0),)
