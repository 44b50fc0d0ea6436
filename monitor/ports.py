"""The seams between the poll cycle and the outside world. Adapters implement these Protocols."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from monitor.domain.model import AccountState, Snapshot, Tier, Venue
from monitor.domain.notification import Notification


class Clock(Protocol):
    """Where the current UTC time comes from (tests and the simulator control it)."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The `Clock` of a running daemon: wall-clock UTC time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TierChange:
    """A symbol's bracket / risk-limit table as first seen (`previous` None) or changed by the
    exchange since the last refresh: every liquidation price of that symbol moves with it."""

    account: str
    venue: Venue
    symbol: str
    previous: tuple[Tier, ...] | None
    current: tuple[Tier, ...]

    @property
    def is_change(self) -> bool:
        """True when the table replaced an earlier one (not merely seen for the first time)."""
        return self.previous is not None


class ExchangeClient(Protocol):
    """Read-only access to one configured account (one margin pool) on one venue."""

    async def fetch_account(self) -> AccountState:
        """The pool's complete current state, or an error: never a partial state."""
        ...

    def drain_tier_changes(self) -> list[TierChange]:
        """Tier tables seen for the first time or changed since the last call, oldest first."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class Sink(Protocol):
    """One notification sink (Telegram, a JSON webhook, MQTT alert events, ...)."""

    @property
    def name(self) -> str:
        """The sink's configured name; outbox rows are addressed to it."""
        ...

    async def send(self, notification: Notification) -> None:
        """Deliver one notification or raise a `DeliveryError`: `SinkUnavailable` (with the
        sink's `retry_after`), `MessageRejected` or `SinkRefused`."""
        ...


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One notification waiting for delivery to one sink; `attempts` counts failed tries so far."""

    id: int
    sink: str
    notification: Notification
    attempts: int


@dataclass(frozen=True, slots=True)
class SinkHealth:
    """How a sink is doing: `state` is "ok", "failing" (retryable errors: down, 5xx, rate
    limited) or "disabled" (a permanent error: its alerts are held and it is probed on the
    back-off); `since` is when it started failing, `next_attempt_at` the next probe.
    `retry_requested_at` is set by `portfolio-monitor alerts --retry SINK` until the daemon acts."""

    sink: str
    state: str = "ok"
    since: datetime | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    retry_requested_at: datetime | None = None

    @property
    def ok(self) -> bool:
        """True when the sink's last delivery worked (or it never failed)."""
        return self.state == "ok"


@dataclass(slots=True)
class HeldDelivery:
    """A notification for one sink handled in memory while the database refused writes:
    `delivered_at` set when the sink took it, else how often it failed and why."""

    notification: Notification
    sink: str
    delivered_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = None


class OutboxStore(Protocol):
    """The durable queue of notifications between the poll cycle and the sinks."""

    async def enqueue(self, notifications: Sequence[Notification], sinks: Sequence[str]) -> None:
        """Queue every notification for every sink, in its own transaction."""
        ...

    async def due(self, now: datetime, limit: int) -> Sequence[OutboxEntry]:
        """Undelivered, not dead entries whose next attempt is at or before `now`, oldest first."""
        ...

    async def retry_times(self, now: datetime) -> Mapping[str, datetime]:
        """For each sink with entries waiting for a retry (due after `now`), the earliest one."""
        ...

    async def retry_now(self, sink: str, now: datetime) -> None:
        """The sink is back: its entries waiting for a retry are due at `now`."""
        ...

    async def still_claimed(self, entry_id: int) -> bool:
        """Just before sending: whether the entry is still this daemon's to send (undelivered
        and not taken by another daemon sharing the database meanwhile)."""
        ...

    async def mark_delivered(self, entry_id: int, at: datetime) -> None:
        """The sink accepted the entry; it is never sent again."""
        ...

    async def mark_failed(self, entry_id: int, next_attempt_at: datetime, error: str) -> None:
        """A retryable failure: count the attempt and try again at `next_attempt_at`."""
        ...

    async def postpone(
        self, entry_ids: Sequence[int], next_attempt_at: datetime, note: str
    ) -> None:
        """Not tried (their sink is failing): due again at `next_attempt_at`, no attempt counted."""
        ...

    async def mark_dead(self, entry_id: int, error: str, *, attempted: bool = True) -> None:
        """Give up on the entry (its sink failed permanently); it stays stored for inspection.
        `attempted=False` when it was not even tried, so no attempt is counted."""
        ...

    async def depth(self) -> int:
        """How many entries are still waiting (undelivered and not dead)."""
        ...

    async def enqueue_held(self, deliveries: Sequence[HeldDelivery], now: datetime) -> None:
        """Store what was handled in memory, in one transaction: delivered rows as delivered,
        the others due at `now` (a notification id already queued for the sink is kept)."""
        ...

    async def held_before(self, sink: str, cutoff: datetime) -> Sequence[OutboxEntry]:
        """The sink's waiting entries created before `cutoff`, oldest first."""
        ...

    async def bury(self, entry_ids: Sequence[int], reason: str) -> None:
        """Mark entries dead with `reason` without counting an attempt (a last resort)."""
        ...

    async def sink_states(self) -> Mapping[str, SinkHealth]:
        """Every stored sink state by sink name."""
        ...

    async def save_sink_state(self, health: SinkHealth, now: datetime) -> None:
        """Store how a sink is doing (a pending retry request is kept)."""
        ...

    async def clear_retry_request(self, sink: str, requested_at: datetime) -> None:
        """The daemon acted on the retry request made at `requested_at` (a newer one stays)."""
        ...

    async def forget_sinks(self, keep: Sequence[str]) -> None:
        """Drop the stored state of every sink not in `keep` (removed from the configuration)."""
        ...


class AlertEventRecord(Protocol):
    """What the store needs of an alert event (fired, repeated, resolved, ...) to record it."""

    @property
    def rule_key(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def title(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def facts(self) -> Mapping[str, Any]: ...


class CycleWriter(Protocol):
    """Everything one poll cycle of one account writes, committed together or not at all."""

    async def add_snapshot(self, snapshot: Snapshot) -> None:
        """Store the account snapshot with all its positions (and a changed tier table)."""
        ...

    async def save_alert_states(
        self, account: str, states: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Upsert the alert state machine's JSON state per rule key."""
        ...

    async def add_alert_events(self, account: str, events: Sequence[AlertEventRecord]) -> None:
        """Record what the alert rules did in this cycle."""
        ...

    async def enqueue(self, notifications: Sequence[Notification], sinks: Sequence[str]) -> None:
        """Queue every notification for every sink (a replayed notification id is ignored)."""
        ...


class SnapshotStore(Protocol):
    """Durable storage of snapshots and alert state for the poll cycle."""

    def cycle(self) -> AbstractAsyncContextManager[CycleWriter]:
        """One transaction: committed on normal exit, rolled back on an exception or cancellation."""
        ...

    async def load_alert_states(self, account: str) -> dict[str, dict[str, Any]]:
        """The persisted alert state per rule key ({} for a new account)."""
        ...

    async def last_snapshot_at(self, account: str) -> datetime | None:
        """When the account's newest stored snapshot was taken (None if it has none)."""
        ...

    async def silenced_until(self, account: str, now: datetime) -> datetime | None:
        """When the account's last active silence ends (None: notifications are not silenced)."""
        ...

    async def silence_ends(self, now: datetime) -> dict[str, datetime]:
        """Every silenced account's last active silence end, in one read for all accounts."""
        ...

    async def prune(self, now: datetime) -> object:
        """Apply retention: downsample old raw snapshots, delete what is past the longest period."""
        ...

    async def close(self) -> None:
        """Release the database connections."""
        ...


@dataclass(frozen=True, slots=True)
class MarkUpdate:
    """One mark price a venue's public stream pushed: `symbol` is the venue's id ("BTCUSDT"),
    `at` the venue's time of the price."""

    symbol: str
    price: float
    at: datetime


class MarkStream(Protocol):
    """One venue's public mark stream at one address, shared by every account trading there."""

    @property
    def key(self) -> str:
        """Venue and address ("binance-usdm@production"): one stream per key."""
        ...

    def follow(self, symbols: frozenset[str]) -> None:
        """Subscribe to exactly these venue symbols from now on (an empty set: none)."""
        ...

    async def run(self, listener: MarkListener) -> None:
        """Connect, subscribe and report until cancelled; reconnects with back-off by itself."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...


class MarkListener(Protocol):
    """Told what a mark stream sees."""

    def marks(self, key: str, updates: Sequence[MarkUpdate]) -> None:
        """New marks arrived (must not block)."""
        ...

    def health(self, key: str, up: bool, reason: str) -> None:
        """The stream came up, or went down (closed, refused, or silent past its heartbeat)."""
        ...


class AccountStream(Protocol):
    """One account's private stream: it tells of fills, transfers, funding and margin changes."""

    @property
    def account(self) -> str:
        """The account it reports on."""
        ...

    async def run(self, listener: AccountEventListener) -> None:
        """Connect and report until cancelled; reconnects with back-off by itself."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...


class AccountEventListener(Protocol):
    """Told what a private account stream sees."""

    def account_event(self, account: str, what: str) -> None:
        """The account changed ("balance", "positions", "orders"); must not block."""
        ...

    def account_stream(self, account: str, up: bool, reason: str) -> None:
        """The private stream came up, or went down (`reason` holds no credential)."""
        ...
