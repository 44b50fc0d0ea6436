"""Binance Portfolio Margin (the `papi` host): one pool for margin, USDⓈ-M and COIN-M futures.

Binance liquidates when uniMMR = account equity / account maintenance margin falls to 105 % (FAQ
4868b2f1aa6c4d08af973328462bb0bd). We compute what we can: USDⓈ-M futures positions and the
collateral coins (margin + USDⓈ-M wallet, less margin loans) at their index and collateral rate.
Margin loans' maintenance margin, COIN-M futures, options and coins without a price are the
difference between the venue's account figures and ours, carried as one labelled venue term.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.domain.errors import ExchangeDataError
from monitor.domain.model import (
    Collateral,
    CollateralTier,
    ExchangeAccountFigures,
    Position,
    Side,
)
from monitor.exchanges.binance_pool import STABLECOINS, AssetRate, StableAssumptions
from monitor.exchanges.fields import as_list, as_mapping, number, optional_number, text

log = logging.getLogger(__name__)

# Equity / maintenance margin at which Binance liquidates a Portfolio Margin account.
PORTFOLIO_LIQUIDATION_RATIO = 1.05
VENUE_TERM = "venue figure (margin loans, COIN-M futures, options"


@dataclass(frozen=True, slots=True)
class PortfolioAccount:
    """The venue's account-level figures from `GET /papi/v1/account`, in USD."""

    equity: float
    maintenance_margin: float
    initial_margin: float | None
    uni_mmr: float | None
    status: str | None

    def reported(self) -> ExchangeAccountFigures:
        """The figures `show` puts beside ours; the ratio is 1/uniMMR (MM / equity, as Binance
        shows the margin ratio elsewhere), so uniMMR stays readable from it."""
        if self.uni_mmr:
            ratio: float | None = 1.0 / self.uni_mmr
        elif self.equity > 0:
            ratio = self.maintenance_margin / self.equity
        else:
            ratio = None
        return ExchangeAccountFigures(
            equity=self.equity,
            maintenance_margin=self.maintenance_margin,
            initial_margin=self.initial_margin,
            margin_ratio=ratio,
        )


def portfolio_account(payload: Any, where: str) -> PortfolioAccount:
    """`GET /papi/v1/account`: accountEquity, accountMaintMargin, uniMMR, accountStatus."""
    body = as_mapping(payload, where)
    status = body.get("accountStatus")
    return PortfolioAccount(
        equity=number(body, "accountEquity", where),
        maintenance_margin=number(body, "accountMaintMargin", where),
        initial_margin=optional_number(body, "accountInitialMargin", where),
        uni_mmr=optional_number(body, "uniMMR", where),
        status=status if isinstance(status, str) and status else None,
    )


def collateral_rates(payload: Any, where: str) -> dict[str, float]:
    """`GET /sapi/v1/portfolio/collateralRate`: the share of each coin's value that counts."""
    rates = {}
    for index, raw in enumerate(as_list(payload, where)):
        path = f"{where}[{index}]"
        row = as_mapping(raw, path)
        rate = number(row, "collateralRate", path)
        if not 0.0 <= rate <= 1.0:
            raise ExchangeDataError(f"{path}.collateralRate: {rate!r} is not between 0 and 1")
        rates[text(row, "asset", path)] = rate
    return rates


class RateAssumptions:
    """The collateral rate used for a coin while Binance's rates were never read, logged once per
    coin and bound.

    The pool is pinned to the venue's own equity by the venue term (what we do not model), so the
    rate only decides how much of a coin's price move reaches equity. The cautious bound is then
    100 % when a fall of the coin hurts (collateral with no net short position on it: the whole
    fall counts) and 0 % when a rise hurts (net short positions on it: their losses get no credit
    from the collateral's gain). 0 % for every coin would understate the loss of a falling coin.
    """

    def __init__(self, label: str) -> None:
        self._label = label
        self._said: set[tuple[str, float]] = set()

    def assume(self, asset: str, net_short: bool) -> float:
        """The cautious rate for `asset`, logged the first time for it."""
        rate = 0.0 if net_short else 1.0
        if (asset, rate) not in self._said:
            self._said.add((asset, rate))
            log.warning(
                "%s: no Portfolio Margin collateral rate for %s; its value counts at %s "
                "(the cautious bound while the rates are unread: %s)",
                self._label,
                asset,
                "0 %" if net_short else "100 %",
                "a rise hurts the net short positions on it"
                if net_short
                else "a fall of its price counts in full",
            )
        return rate


@dataclass(frozen=True, slots=True)
class PortfolioCoins:
    """The pool's coins, the ones left to the venue term (no index prices them) and the ones whose
    collateral rate is assumed (Binance's rates unread)."""

    collateral: tuple[Collateral, ...]
    unpriced: tuple[str, ...]
    assumed: tuple[str, ...]


def portfolio_collateral(
    balances: Any,
    prices: Mapping[str, AssetRate],
    rates: Mapping[str, float] | None,
    positions: Iterable[Position],
    stables: StableAssumptions,
    rate_assumptions: RateAssumptions,
    where: str,
) -> PortfolioCoins:
    """The pool's coins from `GET /papi/v1/balance`: margin asset less margin loan plus the
    USDⓈ-M wallet, at the coin's USD index and collateral rate; liabilities at 100 %."""
    positions = list(positions)
    needed = {p.settle_asset or "" for p in positions}
    net: dict[str, float] = {}
    for position in positions:
        sign = 1.0 if position.side is Side.LONG else -1.0
        underlying = position.underlying or ""
        net[underlying] = net.get(underlying, 0.0) + sign * position.quantity
    quantities: dict[str, float] = {}
    for index, raw in enumerate(as_list(balances, where)):
        path = f"{where}[{index}]"
        row = as_mapping(raw, path)
        asset = text(row, "asset", path)
        quantities[asset] = (
            number(row, "crossMarginAsset", path)
            - number(row, "crossMarginBorrowed", path)
            + number(row, "umWalletBalance", path)
        )
    coins = []
    unpriced = []
    assumed = []
    for asset in sorted(set(quantities) | needed):
        quantity = quantities.get(asset, 0.0)
        if quantity == 0.0 and asset not in needed:
            continue
        stable = asset in STABLECOINS
        price = prices.get(asset)
        if price is None:
            if not stable:
                unpriced.append(asset)
                continue
            price = stables.assume(asset)
        rate = rates.get(asset) if rates is not None else None
        if rate is None:
            rate = rate_assumptions.assume(asset, net.get(asset, 0.0) < 0)
            assumed.append(asset)
        coins.append(
            Collateral(
                asset=asset,
                quantity=quantity,
                price=price.index,
                ratios=(CollateralTier(0.0, rate),),
                liability_rate=1.0,
                stable=stable,
            )
        )
    return PortfolioCoins(tuple(coins), tuple(unpriced), tuple(assumed))


def venue_term_name(unpriced: Iterable[str]) -> str:
    """How `show` labels the part of the pool taken from the venue's figures."""
    coins = sorted(unpriced)
    extra = f", unpriced {' '.join(coins)}" if coins else ""
    return f"{VENUE_TERM}{extra})"
