"""Helpers for outbox tests: a real SQLite store, a clock the test moves, scripted sinks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.domain.notification import Notification
from monitor.errors import DeliveryError, SinkRefused, SinkUnavailable


class ManualClock:
    """UTC time that moves only when the test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2025, 11, 21, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@dataclass
class ScriptedSink:
    """A sink whose next outcomes are scripted: None = accept, an exception = raise it.
    Once the script is used up it accepts everything."""

    name: str
    script: list[BaseException | None] = field(default_factory=list)
    received: list[Notification] = field(default_factory=list)
    attempts: int = 0

    async def send(self, notification: Notification) -> None:
        self.attempts += 1
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        self.received.append(notification)


def retryable(message: str = "HTTP 503", retry_after: float | None = None) -> DeliveryError:
    return SinkUnavailable(message, retry_after=retry_after)


def permanent(message: str = "HTTP 404: the webhook does not exist any more") -> DeliveryError:
    return SinkRefused(message)


@dataclass(frozen=True)
class Row:
    notification_id: str
    sink: str
    attempts: int
    delivered: bool
    dead: bool
    last_error: str | None
    next_attempt_at: str


def outbox_rows(database: Path) -> list[Row]:
    """The outbox table as stored on disk (read with the stdlib, independent of the repository)."""
    with sqlite3.connect(database) as connection:
        rows: Iterable[tuple[object, ...]] = connection.execute(
            "SELECT notification_id, sink, attempts, delivered_at IS NOT NULL, dead, last_error,"
            " next_attempt_at FROM outbox ORDER BY id"
        )
        return [
            Row(str(n), str(s), int(a), bool(d), bool(x), e if e is None else str(e), str(t))  # type: ignore[call-overload]
            for n, s, a, d, x, e, t in rows
        ]
