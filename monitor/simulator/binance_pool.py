"""The simulated Binance's pooled accounts: Multi-Assets mode and Portfolio Margin.

Every coin of the account's wallet backs every USDⓈ-M cross position, valued in USD: in
Multi-Assets mode at the asset index less a bid buffer (liabilities and margin at the index plus an
ask buffer), under Portfolio Margin at the index times a collateral rate, liquidated at
equity / maintenance margin = 105 %. The buffers and rates follow Binance's published figures at
the time of its FAQs (BTC/ETH/BNB 95 %, USDT/USDC 99.99 %; PM collateral rate USDC 100 %).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from monitor.domain.model import (
    AccountState,
    Collateral,
    CollateralTier,
    MarginMode,
    PoolModel,
    Position,
    Venue,
)
from monitor.simulator.scenario import BINANCE, AccountSpec, Instrument

MULTI_ASSETS = "multi-assets"
PORTFOLIO = "portfolio"
# USD stablecoins the simulated venue prices at 1 USD; it publishes an index line for these two
# only, so a client meets a stablecoin without one (FDUSD) as on the real venue's older lists.
STABLECOINS = frozenset({"USDT", "USDC", "FDUSD", "BUSD"})
INDEXED_STABLECOINS = ("USDC", "USDT")
STABLE_BUFFER = 0.0001
COIN_BUFFER = 0.05
PORTFOLIO_STABLE_RATE = 1.0
PORTFOLIO_COIN_RATE = 0.95
PORTFOLIO_LIQUIDATION = 1.05


def pooled(spec: AccountSpec) -> bool:
    """Whether the account pools every coin (Multi-Assets or Portfolio Margin)."""
    return spec.exchange == BINANCE and spec.account_mode in (MULTI_ASSETS, PORTFOLIO)


def buffer(asset: str) -> float:
    """The Multi-Assets bid and ask buffer of `asset`."""
    return STABLE_BUFFER if asset in STABLECOINS else COIN_BUFFER


def collateral_rate(asset: str) -> float:
    """The Portfolio Margin collateral rate of `asset`."""
    return PORTFOLIO_STABLE_RATE if asset in STABLECOINS else PORTFOLIO_COIN_RATE


def pooled_state(
    spec: AccountSpec,
    wallet: Mapping[str, float],
    instruments: Sequence[Instrument],
    positions: Sequence[Position],
    prices: Mapping[str, float],
) -> AccountState:
    """The pool as the venue computes it: `prices` are the coins' USD index (stablecoins 1)."""
    portfolio = spec.account_mode == PORTFOLIO
    tagged = tuple(
        dataclasses.replace(position, settle_asset=instrument.settle, underlying=instrument.base)
        for position, instrument in zip(positions, instruments, strict=True)
    )
    settle = {
        instrument.settle
        for position, instrument in zip(positions, instruments, strict=True)
        if position.margin_mode is MarginMode.CROSS
    }
    coins = []
    for asset in sorted(set(wallet) | settle):
        price = prices.get(asset)
        if price is None:
            continue  # a coin the venue cannot price is not collateral
        if portfolio:
            ratio, liability = collateral_rate(asset), 1.0
        else:
            ratio, liability = 1.0 - buffer(asset), 1.0 + buffer(asset)
        coins.append(
            Collateral(
                asset=asset,
                quantity=wallet.get(asset, 0.0),
                price=price,
                ratios=(CollateralTier(0.0, ratio),),
                liability_rate=liability,
                stable=asset in STABLECOINS,
            )
        )
    return AccountState(
        venue=Venue.BINANCE_USDM,
        wallet_balance=sum(coin.quantity * coin.price for coin in coins),
        positions=tagged,
        asset="USD",
        model=PoolModel.PORTFOLIO if portfolio else PoolModel.MULTI_ASSETS,
        collateral=tuple(coins),
        liquidation_ratio=PORTFOLIO_LIQUIDATION if portfolio else 1.0,
    )
