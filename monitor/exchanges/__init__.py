"""ccxt adapters: Binance USDⓈ-M and COIN-M, Bybit v5 UTA linear and inverse, turned into the
domain `AccountState` from the venues' raw fields.

Entry point: `ExchangeHub` (`client_for(name, AccountSettings)` gives an `ExchangeClient`;
`aclose()`); each client also offers `probe()` for check-config and `drain_tier_changes()`.
Importing ccxt takes seconds, so the names that need it load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from monitor.exchanges.probe import BudgetLine, ProbeReport, request_budget
from monitor.ports import TierChange

if TYPE_CHECKING:
    from monitor.exchanges.base import VenueClient
    from monitor.exchanges.hub import ExchangeHub

__all__ = [
    "BudgetLine",
    "ExchangeHub",
    "ProbeReport",
    "TierChange",
    "VenueClient",
    "request_budget",
]

_LAZY = {
    "ExchangeHub": "monitor.exchanges.hub",
    "VenueClient": "monitor.exchanges.base",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
