"""The seams between the poll cycle and the outside world. Adapters implement these Protocols."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from monitor.domain.model import AccountState
from monitor.domain.notification import Notification


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


class Notifier(Protocol):
    """One notification sink (Telegram, a JSON webhook, MQTT alert events, ...)."""

    @property
    def name(self) -> str:
        """The sink's configured name; outbox rows are addressed to it."""
        ...

    async def send(self, notification: Notification) -> None:
        """Deliver one notification or raise `DeliveryError` (`permanent`, `retry_after`)."""
        ...


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One notification waiting for delivery to one sink; `attempts` counts failed tries so far."""

    id: int
    sink: str
    notification: Notification
    attempts: int


class OutboxStore(Protocol):
    """The durable queue of notifications between the poll cycle and the sinks."""

    async def enqueue(self, notifications: Sequence[Notification], sinks: Sequence[str]) -> None:
        """Queue every notification for every sink, in its own transaction."""
        ...

    async def due(self, now: datetime, limit: int) -> Sequence[OutboxEntry]:
        """Undelivered, not dead entries whose next attempt is at or before `now`, oldest first."""
        ...

    async def mark_delivered(self, entry_id: int, at: datetime) -> None:
        """The sink accepted the entry; it is never sent again."""
        ...

    async def mark_failed(self, entry_id: int, next_attempt_at: datetime, error: str) -> None:
        """A retryable failure: count the attempt and try again at `next_attempt_at`."""
        ...

    async def mark_dead(self, entry_id: int, error: str) -> None:
        """Give up on the entry (its sink failed permanently); it stays stored for inspection."""
        ...

    async def depth(self) -> int:
        """How many entries are still waiting (undelivered and not dead)."""
        ...
