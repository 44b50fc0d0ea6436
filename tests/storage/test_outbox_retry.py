"""The outbox calls the sender uses to keep a failing sink's rows in order without counting
untried rows as attempts: postpone, mark_dead(attempted=False) and retry_times, on every backend."""

from __future__ import annotations

from datetime import timedelta

from monitor.storage.repository import SqlStore
from tests.storage.factories import T0, notification


async def test_postpone_and_untried_dead_rows_count_no_attempt(store: SqlStore) -> None:
    await store.enqueue([notification(1), notification(2), notification(3)], ["ops"])
    first, second, third = await store.due(T0, 10)
    later = T0 + timedelta(minutes=5)
    await store.mark_failed(first.id, later, "HTTP 503")
    await store.postpone([second.id, third.id], later, "not tried: ops is failing")
    assert await store.due(T0 + timedelta(minutes=1), 10) == []
    assert [(e.id, e.attempts) for e in await store.due(later, 10)] == [
        (first.id, 1),
        (second.id, 0),
        (third.id, 0),
    ]
    await store.postpone([], later, "nothing")  # no rows: no write, no error
    await store.mark_dead(third.id, "ops is disabled", attempted=False)
    assert [(e.id, e.attempts) for e in await store.due(later, 10)] == [
        (first.id, 1),
        (second.id, 0),
    ]


async def test_retry_times_name_each_sinks_earliest_waiting_row(store: SqlStore) -> None:
    await store.enqueue([notification(1), notification(2)], ["ops", "phone"])
    rows = await store.due(T0, 10)
    ops = [e for e in rows if e.sink == "ops"]
    phone = [e for e in rows if e.sink == "phone"]
    await store.mark_failed(ops[0].id, T0 + timedelta(seconds=40), "HTTP 503")
    await store.postpone([ops[1].id], T0 + timedelta(seconds=90), "not tried")
    await store.mark_delivered(phone[0].id, T0)
    assert await store.retry_times(T0) == {"ops": T0 + timedelta(seconds=40)}
    assert await store.retry_times(T0 + timedelta(seconds=40)) == {
        "ops": T0 + timedelta(seconds=90)
    }


async def test_retry_now_makes_one_sinks_waiting_rows_due(store: SqlStore) -> None:
    await store.enqueue([notification(1)], ["mqtt", "ops"])
    for entry in await store.due(T0, 10):
        await store.mark_failed(entry.id, T0 + timedelta(minutes=10), "down")
    now = T0 + timedelta(seconds=30)
    await store.retry_now("mqtt", now)
    assert [e.sink for e in await store.due(now, 10)] == ["mqtt"]
    assert await store.retry_times(now) == {"ops": T0 + timedelta(minutes=10)}
