"""The simulated Bybit Unified Trading Account in cross margin: one pool of every collateral coin.

Under UTA cross margin (REGULAR_MARGIN) Bybit values every collateral coin in USD at its USD index
price and tiered collateral value ratio, and margins the USDT and USDC contracts from that one pool.
The simulator builds the pooled `AccountState` the project's engine assesses, so what it reports
(`totalMarginBalance`, `totalMaintenanceMargin`, `accountMMRate`, `liqPrice`) is what a correct
client computes. Inverse contracts stay in their own coin's pool: under UTA 1.0 ("unified-1.0") they
sit in the separate contract wallet as on Bybit; a UTA 2.0 account holding them is simplified the
same way (Bybit pools them with every coin there, which the engine does not model; the monitor
refuses bybit-inverse entries on such accounts).
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.domain.model import Collateral, CollateralTier, MarginMode
from monitor.simulator.scenario import BYBIT, AccountSpec

# USD stablecoins (the simulator prices them at 1).
STABLE = frozenset({"USDT", "USDC", "USD"})
UNIFIED_MODES = frozenset({"unified", "unified-1.0"})
# Tiered collateral value ratios served by /v5/spot-margin-trade/collateral: (min qty, ratio), the
# last tier unbounded. Shaped like Bybit's published tables ("Collateral Value Ratios in UTA").
COLLATERAL_TIERS: Mapping[str, tuple[tuple[float, float], ...]] = {
    "USDT": ((0.0, 1.0),),
    "USDC": ((0.0, 1.0),),
    "BTC": ((0.0, 0.95), (10.0, 0.9), (50.0, 0.0)),
    "ETH": ((0.0, 0.95), (100.0, 0.9), (1000.0, 0.0)),
    "BNB": ((0.0, 0.8), (1000.0, 0.0)),
}


def pooled(spec: AccountSpec) -> bool:
    """Whether the account is a Bybit UTA in cross margin (its linear contracts share one pool)."""
    return (
        spec.exchange == BYBIT
        and spec.account_mode in UNIFIED_MODES
        and spec.margin_mode is MarginMode.CROSS
    )


def contract_wallet(spec: AccountSpec, inverse_settles: set[str], coin: str) -> bool:
    """Whether `coin` sits in a UTA 1.0 account's separate inverse-contract wallet (the coins that
    settle the account's inverse contracts) rather than in the unified wallet."""
    return spec.account_mode == "unified-1.0" and coin in inverse_settles


def tiers(coin: str) -> tuple[CollateralTier, ...]:
    """The coin's collateral value ratio tiers; a coin without a table is not collateral."""
    table = COLLATERAL_TIERS.get(coin)
    if table is None:
        return (CollateralTier(0.0, 0.0),)
    return tuple(CollateralTier(floor, ratio) for floor, ratio in table)


def collateral(wallet: Mapping[str, float], prices: Mapping[str, float]) -> tuple[Collateral, ...]:
    """The pool's coins: every wallet coin (and settle coins held at zero) at its USD price."""
    return tuple(
        Collateral(
            asset=coin,
            quantity=wallet.get(coin, 0.0),
            price=prices[coin],
            ratios=tiers(coin),
            liability_rate=1.0,
            stable=coin in STABLE,
        )
        for coin in sorted(prices)
    )
