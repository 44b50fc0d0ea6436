"""Binance USDⓈ-M Multi-Assets mode: every margin asset of the futures wallet backs every cross
position, valued in USD at Binance's asset index.

Binance values a margin asset at `bidRate` (index less its bid buffer) while its balance is positive
and charges liabilities and maintenance margin at `askRate` (index plus its ask buffer): FAQ "How to
Calculate Margin Ratio in the Multi-Assets Mode" (c983a9268cfa4e70a4916c276bb3b7bc) and
`GET /fapi/v1/assetIndex` (Binance USDⓈ-M API, "Multi-Assets Mode Asset Index").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.domain.errors import ExchangeDataError
from monitor.domain.model import Collateral, CollateralTier
from monitor.domain.units import format_quantity
from monitor.exchanges.fields import as_list, as_mapping, number, optional_number, text

log = logging.getLogger(__name__)

# USD stablecoins Binance accepts as futures margin: their price does not follow any mark, and a
# missing index entry for one of them may be taken as 1 USD (never for a coin that moves).
STABLECOINS = frozenset({"USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI", "BFUSD"})


@dataclass(frozen=True, slots=True)
class AssetRate:
    """One line of Binance's Multi-Assets asset index: `index` USD per coin, `bid_rate` what a
    positive balance counts for, `ask_rate` what a liability or a margin requirement costs."""

    index: float
    bid_rate: float
    ask_rate: float


def asset_rates(payload: Any, where: str) -> dict[str, AssetRate]:
    """The asset index by coin ("BTC"), from `GET /fapi/v1/assetIndex` rows ("BTCUSD")."""
    rows = [payload] if isinstance(payload, Mapping) else as_list(payload, where)
    rates: dict[str, AssetRate] = {}
    for number_, raw in enumerate(rows):
        path = f"{where}[{number_}]"
        row = as_mapping(raw, path)
        symbol = text(row, "symbol", path)
        if not symbol.endswith("USD"):
            continue  # only USD indexes value a margin asset
        index = number(row, "index", path)
        if index <= 0:
            raise ExchangeDataError(f"{path}.index: {index!r} is not a price")
        rates[symbol.removesuffix("USD")] = AssetRate(
            index=index,
            bid_rate=number(row, "bidRate", path),
            ask_rate=number(row, "askRate", path),
        )
    return rates


class StableAssumptions:
    """Remembers which stablecoins were valued at 1 USD for want of an index line, so the log says
    it once per coin rather than on every poll."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._said: set[str] = set()

    def assume(self, asset: str) -> AssetRate:
        """1 USD at no buffer for `asset`, logged the first time."""
        if asset not in self._said:
            self._said.add(asset)
            log.warning(
                "%s: the Multi-Assets asset index has no %sUSD line; %s is valued at 1 USD with "
                "no collateral buffer (an assumption, stated once)",
                self._label,
                asset,
                asset,
            )
        return AssetRate(1.0, 1.0, 1.0)


def collateral_of(
    account: Mapping[str, Any],
    rates: Mapping[str, AssetRate],
    settle_assets: Iterable[str],
    assumptions: StableAssumptions,
    where: str,
) -> tuple[Collateral, ...]:
    """The pool's coins from the v3 account's `assets[]`: every margin asset holding a cross
    balance, plus the settlement coins of cross positions (at 0 when the wallet holds none).

    The v3 account response omits `marginAvailable` (v2 has it): a row that says `false` is left
    out, a row that does not say is a margin asset, as every coin of the USDⓈ-M wallet is in this
    mode.
    """
    needed = set(settle_assets)
    balances: dict[str, float] = {}
    for index, raw in enumerate(as_list(account.get("assets"), f"{where}.assets")):
        path = f"{where}.assets[{index}]"
        row = as_mapping(raw, path)
        asset = text(row, "asset", path)
        if row.get("marginAvailable") is False:
            continue
        wallet = optional_number(row, "crossWalletBalance", path)
        if wallet is None:
            wallet = number(row, "walletBalance", path)
        balances[asset] = wallet
    coins = []
    for asset in sorted(set(balances) | needed):
        quantity = balances.get(asset, 0.0)
        if quantity == 0.0 and asset not in needed:
            continue
        rate = rates.get(asset)
        stable = asset in STABLECOINS
        if rate is None:
            if not stable:
                raise ExchangeDataError(
                    f"{where}: the Multi-Assets asset index has no {asset}USD line, so the "
                    f"{format_quantity(quantity)} {asset} in the pool has no price"
                )
            rate = assumptions.assume(asset)
        coins.append(
            Collateral(
                asset=asset,
                quantity=quantity,
                price=rate.index,
                ratios=(CollateralTier(0.0, min(1.0, rate.bid_rate / rate.index)),),
                liability_rate=rate.ask_rate / rate.index,
                stable=stable,
            )
        )
    return tuple(coins)


def totals_pooled(account: Mapping[str, Any]) -> bool | None:
    """Whether the v3 account's totals cover several assets (Multi-Assets) or the USDT asset alone
    (single-asset mode, where Binance documents them as "only for USDT asset"); None when the
    account cannot tell (no balance other than USDT)."""
    rows = account.get("assets")
    if not isinstance(rows, list):
        return None
    usdt = None
    others = False
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        wallet = _float(row.get("crossWalletBalance"))
        if row.get("asset") == "USDT":
            usdt = wallet
        elif wallet:
            others = True
    total = _float(account.get("totalCrossWalletBalance"))
    if not others or usdt is None or total is None:
        return None
    return abs(total - usdt) > 1e-6 * max(1.0, abs(total))


def _float(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None
