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
from monitor.domain.model import Collateral, CollateralTier, ExchangeAccountFigures
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
    """Logs once per coin that a collateral rate was assumed at 100 % for want of Binance's."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._said: set[str] = set()

    def assume(self, asset: str) -> float:
        """1.0, logged the first time for `asset`."""
        if asset not in self._said:
            self._said.add(asset)
            log.warning(
                "%s: no Portfolio Margin collateral rate for %s; its value counts at 100 %% "
                "(an assumption: the venue's equity, shown beside ours, applies the real rate)",
                self._label,
                asset,
            )
        return 1.0


def portfolio_collateral(
    balances: Any,
    prices: Mapping[str, AssetRate],
    rates: Mapping[str, float] | None,
    settle_assets: Iterable[str],
    stables: StableAssumptions,
    rate_assumptions: RateAssumptions,
    where: str,
) -> tuple[tuple[Collateral, ...], tuple[str, ...]]:
    """The pool's coins from `GET /papi/v1/balance`: margin asset less margin loan plus the
    USDⓈ-M wallet, at the coin's USD index and collateral rate; liabilities at 100 %.

    Returns the coins and the ones left to the venue term because no index prices them."""
    needed = set(settle_assets)
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
            rate = rate_assumptions.assume(asset)
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
    return tuple(coins), tuple(unpriced)


def venue_term_name(unpriced: Iterable[str]) -> str:
    """How `show` labels the part of the pool taken from the venue's figures."""
    coins = sorted(unpriced)
    extra = f", unpriced {' '.join(coins)}" if coins else ""
    return f"{VENUE_TERM}{extra})"
