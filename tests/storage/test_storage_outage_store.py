"""What the storage probe and the memory queue need of the store, on SQLite and PostgreSQL: a
write that changes nothing, freeing the WAL, and storing deliveries handled in memory."""

from __future__ import annotations

from datetime import timedelta

from monitor.ports import HeldDelivery
from monitor.storage.repository import SqlStore
from tests.storage.factories import T0, notification


async def test_the_probe_write_and_freeing_space_work_on_a_healthy_database(
    store: SqlStore,
) -> None:
    await store.check_writable()
    await store.free_space()  # SQLite: a truncating checkpoint; PostgreSQL: nothing to do
    await store.check_writable()


async def test_deliveries_handled_in_memory_are_stored_delivered_or_due(store: SqlStore) -> None:
    sent, missed = notification(1), notification(2)
    delivered_at = T0 + timedelta(seconds=1)
    await store.enqueue_held(
        [
            HeldDelivery(sent, "hook", delivered_at=delivered_at),
            HeldDelivery(missed, "hook", attempts=2, last_error="HTTP 503"),
        ],
        T0 + timedelta(seconds=5),
    )
    due = await store.due(T0 + timedelta(seconds=5), 10)
    assert [(e.notification.id, e.attempts) for e in due] == [(missed.id, 2)]  # "sent" is not due
    assert await store.depth() == 1
    # Stored again (a probe that failed after writing): the id is queued once per sink.
    await store.enqueue_held([HeldDelivery(missed, "hook")], T0 + timedelta(seconds=6))
    assert await store.depth() == 1
