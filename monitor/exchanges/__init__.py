"""ccxt adapters: Binance USDⓈ-M and COIN-M, Bybit v5 UTA linear and inverse, turned into the
domain `AccountState` from the venues' raw fields.

Entry point: `ExchangeHub` (`client_for(name, AccountSettings)` gives an `ExchangeClient`;
`aclose()`); each client also offers `probe()` for check-config and `drain_tier_changes()`.
"""

from __future__ import annotations

from monitor.exchanges.base import VenueClient
from monitor.exchanges.hub import ExchangeHub
from monitor.exchanges.probe import BudgetLine, ProbeReport, request_budget
from monitor.exchanges.resilience import RetryPolicy
from monitor.ports import TierChange

__all__ = [
    "BudgetLine",
    "ExchangeHub",
    "ProbeReport",
    "RetryPolicy",
    "TierChange",
    "VenueClient",
    "request_budget",
]
