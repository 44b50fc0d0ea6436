"""The seams between the poll cycle and the outside world. Adapters implement these Protocols."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from monitor.domain.model import AccountState


class Clock(Protocol):
    """Where the current UTC time comes from (tests and the simulator control it)."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class ExchangeClient(Protocol):
    """Read-only access to one configured account (one margin pool) on one venue."""

    async def fetch_account(self) -> AccountState:
        """The pool's complete current state, or an error: never a partial state."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
