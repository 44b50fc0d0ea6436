"""The outbox: notifications waiting for their sinks, and how each sink is doing.

Every notification is queued once per sink and delivered at least once, with retry and back-off
(`monitor.delivery` drives it). With several daemons sharing PostgreSQL, a row is claimed by the
daemon that delivers it (`Database.lease_holder`), and another one takes it only once that
daemon's heartbeat expired longer ago than `Database.claim_grace`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, literal, or_, select, true, update
from sqlalchemy.engine import Connection

from monitor.domain.notification import Notification
from monitor.ports import HeldDelivery, OutboxEntry, SinkHealth
from monitor.storage.database import Database
from monitor.storage.engine import dialect_insert, storage_errors
from monitor.storage.models import MonitorDaemon, Outbox, SinkState
from monitor.storage.serialize import notification_from_payload, notification_to_payload


class SqlOutbox:
    """The outbox and sink states on the database; implements `OutboxStore`."""

    def __init__(self, db: Database):
        self._db = db

    async def enqueue(self, notifications: Sequence[Notification], sinks: Sequence[str]) -> None:
        """Queue every notification for every sink in its own transaction."""
        rows = outbox_rows(notifications, sinks)
        if rows:
            await self._db.write("queueing notifications", lambda conn: enqueue_rows(conn, rows))

    def _claimable(self) -> ColumnElement[bool]:
        """Outbox rows this daemon may deliver: with several daemons on PostgreSQL, those not
        claimed by another live daemon; otherwise every row."""
        holder = self._db.lease_holder
        if holder is None or self._db.is_sqlite:
            return true()
        live = select(MonitorDaemon.name).where(
            MonitorDaemon.expires_at > func.now() - literal(self._db.claim_grace)
        )
        return or_(
            Outbox.claimed_by.is_(None),
            Outbox.claimed_by == holder,
            Outbox.claimed_by.not_in(live),
        )

    async def enqueue_held(self, deliveries: Sequence[HeldDelivery], now: datetime) -> None:
        """Store what was handled in memory, in one transaction: delivered rows as delivered,
        the others due at `now` (a notification id already queued for the sink is kept)."""
        rows = []
        for held in deliveries:
            (row,) = outbox_rows([held.notification], [held.sink])
            row.update(
                attempts=held.attempts,
                delivered_at=held.delivered_at,
                last_error=held.last_error,
                next_attempt_at=now if held.delivered_at is None else held.delivered_at,
            )
            rows.append(row)
        if rows:
            await self._db.write(
                "storing alerts handled in memory", lambda conn: enqueue_rows(conn, rows)
            )

    async def due(self, now: datetime, limit: int) -> Sequence[OutboxEntry]:
        """Undelivered, not dead entries whose next attempt is at or before `now`, oldest first.

        With several daemons on PostgreSQL the rows are claimed for this daemon: locked `FOR
        UPDATE SKIP LOCKED` (a row another daemon is claiming at this moment is skipped, not
        waited for) and marked `claimed_by`; another daemon leaves them alone until this one's
        heartbeat expires, so each is delivered by one daemon."""
        columns = (Outbox.id, Outbox.sink, Outbox.payload, Outbox.attempts, Outbox.created_at)

        def pending(*selected: Any) -> Any:
            return (
                select(*selected)
                .where(
                    Outbox.delivered_at.is_(None),
                    Outbox.dead.is_(False),
                    Outbox.next_attempt_at <= now,
                    self._claimable(),
                )
                .order_by(Outbox.created_at, Outbox.id)
                .limit(limit)
            )

        if self._db.lease_holder is not None and not self._db.is_sqlite:
            oldest = pending(Outbox.id).with_for_update(skip_locked=True).scalar_subquery()
            claim = (
                update(Outbox)
                .where(Outbox.id.in_(oldest))
                .values(claimed_by=self._db.lease_holder)
                .returning(*columns)
            )
            with storage_errors("claiming outbox rows"):
                async with self._db.engine.begin() as conn:
                    claimed = list(await conn.execute(claim))
            # RETURNING keeps no order: oldest first again, as delivery order depends on it.
            rows = sorted(claimed, key=lambda row: (row[4], row[0]))
        else:
            async with self._db.reading("reading the outbox") as conn:
                rows = list(await conn.execute(pending(*columns)))
        return [
            OutboxEntry(
                id=row_id,
                sink=sink,
                notification=notification_from_payload(payload),
                attempts=attempts,
            )
            for row_id, sink, payload, attempts, _created in rows
        ]

    async def retry_times(self, now: datetime) -> dict[str, datetime]:
        """For each sink with entries waiting for a retry (due after `now`), the earliest one."""
        async with self._db.reading("reading the outbox retry times") as conn:
            rows = await conn.execute(
                select(Outbox.sink, func.min(Outbox.next_attempt_at))
                .where(
                    Outbox.delivered_at.is_(None),
                    Outbox.dead.is_(False),
                    Outbox.next_attempt_at > now,
                    self._claimable(),
                )
                .group_by(Outbox.sink)
            )
            return {str(sink): when for sink, when in rows}

    async def retry_now(self, sink: str, now: datetime) -> None:
        """The sink is back: its entries waiting for a retry are due at `now`."""
        await self._db.write(
            "rescheduling notifications",
            lambda conn: conn.execute(
                update(Outbox)
                .where(
                    Outbox.sink == sink,
                    Outbox.delivered_at.is_(None),
                    Outbox.dead.is_(False),
                    Outbox.next_attempt_at > now,
                    self._claimable(),
                )
                .values(next_attempt_at=now)
            ),
        )

    async def _update_outbox(self, action: str, entry_id: int, **values: Any) -> None:
        await self._db.write(
            action,
            lambda conn: conn.execute(update(Outbox).where(Outbox.id == entry_id).values(**values)),
        )

    async def still_claimed(self, entry_id: int) -> bool:
        """Just before sending: whether the row is still this daemon's claim. A daemon whose
        heartbeat lapsed (its machine stalled past the claim grace) may have lost its rows to
        another one; it then must not send them as well. Always true with one daemon."""
        holder = self._db.lease_holder
        if holder is None or self._db.is_sqlite:
            return True
        async with self._db.reading("checking an outbox claim") as conn:
            found = await conn.scalar(
                select(Outbox.id).where(
                    Outbox.id == entry_id,
                    Outbox.claimed_by == holder,
                    Outbox.delivered_at.is_(None),
                    Outbox.dead.is_(False),
                )
            )
            return found is not None

    async def mark_delivered(self, entry_id: int, at: datetime) -> None:
        """The sink accepted the entry; it is never sent again."""
        await self._update_outbox(
            "marking an outbox entry delivered", entry_id, delivered_at=at, last_error=None
        )

    async def mark_failed(self, entry_id: int, next_attempt_at: datetime, error: str) -> None:
        """A retryable failure: count the attempt and try again at `next_attempt_at`."""
        await self._update_outbox(
            "recording a failed delivery",
            entry_id,
            attempts=Outbox.attempts + 1,
            next_attempt_at=next_attempt_at,
            last_error=error,
        )

    async def postpone(
        self, entry_ids: Sequence[int], next_attempt_at: datetime, note: str
    ) -> None:
        """Entries not tried because their sink is failing: due again at `next_attempt_at`,
        without counting an attempt."""
        if not entry_ids:
            return
        ids = list(entry_ids)
        await self._db.write(
            "postponing notifications",
            lambda conn: conn.execute(
                update(Outbox)
                .where(Outbox.id.in_(ids))
                .values(next_attempt_at=next_attempt_at, last_error=note)
            ),
        )

    async def mark_dead(self, entry_id: int, error: str, *, attempted: bool = True) -> None:
        """Give up on the entry; it stays stored for inspection. `attempted=False`: it was
        not even tried (its sink is disabled or gone), so no attempt is counted."""
        await self._update_outbox(
            "recording an undeliverable notification",
            entry_id,
            dead=True,
            attempts=Outbox.attempts + (1 if attempted else 0),
            last_error=error,
        )

    async def depth(self) -> int:
        """How many entries are still waiting (undelivered and not dead)."""
        async with self._db.reading("reading the outbox depth") as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(Outbox)
                .where(Outbox.delivered_at.is_(None), Outbox.dead.is_(False))
            )
            return int(count or 0)

    async def held_before(self, sink: str, cutoff: datetime) -> Sequence[OutboxEntry]:
        """The sink's waiting entries created before `cutoff`, oldest first."""
        async with self._db.reading("reading held notifications") as conn:
            rows = await conn.execute(
                select(Outbox.id, Outbox.sink, Outbox.payload, Outbox.attempts)
                .where(
                    Outbox.sink == sink,
                    Outbox.delivered_at.is_(None),
                    Outbox.dead.is_(False),
                    Outbox.created_at < cutoff,
                    self._claimable(),
                )
                .order_by(Outbox.created_at, Outbox.id)
            )
            return [
                OutboxEntry(row_id, name, notification_from_payload(payload), attempts)
                for row_id, name, payload, attempts in rows
            ]

    async def bury(self, entry_ids: Sequence[int], reason: str) -> None:
        """Mark entries dead with `reason` without counting an attempt (a last resort)."""
        ids = list(entry_ids)
        if not ids:
            return
        await self._db.write(
            "recording undeliverable notifications",
            lambda conn: conn.execute(
                update(Outbox).where(Outbox.id.in_(ids)).values(dead=True, last_error=reason)
            ),
        )

    async def held_counts(self) -> dict[str, int]:
        """Waiting (undelivered, not dead) entries per sink."""
        async with self._db.reading("reading the outbox per sink") as conn:
            rows = await conn.execute(
                select(Outbox.sink, func.count())
                .where(Outbox.delivered_at.is_(None), Outbox.dead.is_(False))
                .group_by(Outbox.sink)
            )
            return {str(sink): int(count) for sink, count in rows}

    async def sink_states(self) -> dict[str, SinkHealth]:
        """Every stored sink state by sink name."""
        async with self._db.reading("reading the sink states") as conn:
            rows = await conn.execute(select(SinkState))
            return {
                row.sink: SinkHealth(
                    row.sink,
                    row.state,
                    row.since,
                    row.last_error,
                    row.next_attempt_at,
                    row.retry_requested_at,
                )
                for row in rows
            }

    async def save_sink_state(self, health: SinkHealth, now: datetime) -> None:
        """Store how a sink is doing (a pending retry request is kept)."""
        values = {
            "state": health.state,
            "since": health.since,
            "last_error": health.last_error,
            "next_attempt_at": health.next_attempt_at,
            "updated_at": now,
        }
        await self._db.write(
            f"recording the state of sink {health.sink!r}",
            lambda conn: conn.execute(
                dialect_insert(conn)(SinkState)
                .values(sink=health.sink, **values)
                .on_conflict_do_update(index_elements=[SinkState.sink], set_=values)
            ),
        )

    async def clear_retry_request(self, sink: str, requested_at: datetime) -> None:
        """The daemon acted on the retry request made at `requested_at` (a newer one stays)."""
        await self._db.write(
            f"clearing the retry request of sink {sink!r}",
            lambda conn: conn.execute(
                update(SinkState)
                .where(SinkState.sink == sink, SinkState.retry_requested_at == requested_at)
                .values(retry_requested_at=None)
            ),
        )

    async def forget_sinks(self, keep: Sequence[str]) -> None:
        """Drop the stored state of every sink not in `keep` (removed from the configuration)."""
        names = list(keep)
        await self._db.write(
            "forgetting removed sinks",
            lambda conn: conn.execute(delete(SinkState).where(SinkState.sink.not_in(names))),
        )

    async def request_retry(self, sink: str, now: datetime, revive_since: datetime) -> int:
        """`alerts --retry SINK`: ask the daemon to try the sink at once (it ends the sink's
        back-off and sends its held entries at its next look, within about a second; a stopped
        daemon does it when it starts). Dead entries created at or after `revive_since` are
        revived and sent too, in order; older dead ones stay dead. Returns how many were revived.
        """

        def work(conn: Connection) -> int:
            revived = conn.execute(
                update(Outbox)
                .where(
                    Outbox.sink == sink,
                    Outbox.delivered_at.is_(None),
                    Outbox.dead.is_(True),
                    Outbox.created_at >= revive_since,
                )
                .values(dead=False, next_attempt_at=now, last_error="revived by alerts --retry")
            ).rowcount
            conn.execute(
                dialect_insert(conn)(SinkState)
                .values(sink=sink, state="ok", updated_at=now, retry_requested_at=now)
                .on_conflict_do_update(
                    index_elements=[SinkState.sink], set_={"retry_requested_at": now}
                )
            )
            return int(revived or 0)

        return await self._db.write(f"requesting a retry of sink {sink!r}", work)


def outbox_rows(
    notifications: Sequence[Notification], sinks: Sequence[str]
) -> list[dict[str, Any]]:
    """Outbox rows of every notification for every sink, due at once."""
    return [
        {
            "notification_id": notification.id,
            "sink": sink,
            "payload": notification_to_payload(notification),
            "created_at": notification.created_at,
            "attempts": 0,
            "next_attempt_at": notification.created_at,
            "delivered_at": None,
            "last_error": None,
            "dead": False,
        }
        for notification in notifications
        for sink in sinks
    ]


def enqueue_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert the rows in the caller's transaction, each notification once per sink."""
    # A notification replayed after a crash has the same id: queue it once per sink.
    conn.execute(
        dialect_insert(conn)(Outbox).on_conflict_do_nothing(
            index_elements=[Outbox.notification_id, Outbox.sink]
        ),
        rows,
    )
