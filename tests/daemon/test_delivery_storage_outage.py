"""The outbox sender while the database refuses writes: alerts go out from memory, nothing is
sent twice by our own retries, and the outbox holds everything once writes work again. Also the
outage's own bookkeeping: the cause named without secrets, log lines rate-limited."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.delivery import OutboxSender
from monitor.errors import StorageError, StorageUnavailable
from monitor.outage import DISK_FULL, LOCKED, OTHER, READ_ONLY, StorageOutage, classify, redact
from monitor.retry import RetryPolicy
from monitor.storage.migrate import prepare_database
from monitor.storage.repository import SqlStore
from tests.daemon.outbox import ManualClock, ScriptedSink, outbox_rows, retryable
from tests.notify.factories import notification

POLICY = RetryPolicy(initial=timedelta(seconds=5), maximum=timedelta(seconds=60))
_WRITES = {
    "mark_delivered",
    "mark_failed",
    "postpone",
    "enqueue",
    "enqueue_held",
    "save_sink_state",
}


class BreakableStore:
    """The real store, whose writes fail with "database or disk is full" while `broken`."""

    def __init__(self, inner: SqlStore) -> None:
        self._inner = inner
        self.broken = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in _WRITES:
            return attribute

        async def write(*args: Any, **kwargs: Any) -> Any:
            if self.broken:
                raise StorageUnavailable(f"{name}: database or disk is full")
            return await attribute(*args, **kwargs)

        return write


@pytest.fixture(name="database")
def _database(tmp_path: Path) -> Path:
    return tmp_path / "monitor.db"


@pytest.fixture(name="store")
async def _store(database: Path) -> AsyncIterator[SqlStore]:
    store = await prepare_database(f"sqlite:///{database}")
    yield store
    await store.close()


def _sender(store: BreakableStore, sinks: dict[str, ScriptedSink], outage: StorageOutage) -> Any:
    return OutboxSender(store, sinks, POLICY, clock=outage._clock, outage=outage)  # type: ignore[arg-type]


async def test_a_row_sent_whose_mark_failed_is_not_sent_again_and_is_marked_later(
    store: SqlStore, database: Path
) -> None:
    clock = ManualClock()
    outage = StorageOutage(clock)
    breakable = BreakableStore(store)
    hook = ScriptedSink("hook")
    await store.enqueue([notification(id="n1")], ["hook"])
    sender = _sender(breakable, {"hook": hook}, outage)
    breakable.broken = True

    await sender.deliver_due()  # sent; "delivered" cannot be written
    assert outage.failing
    assert outage.cause == DISK_FULL
    for _ in range(3):
        clock.advance(10)
        await sender.deliver_due()
    assert [n.id for n in hook.received if n.id == "n1"] == ["n1"]  # once, not once a pass

    breakable.broken = False
    await sender.store_held()  # the probe's step
    outage.succeeded()
    await sender.flush(5)
    assert [n.id for n in hook.received if n.id == "n1"] == ["n1"]
    rows = {row.notification_id: row for row in outbox_rows(database)}
    assert rows["n1"].delivered


async def test_alerts_go_out_from_memory_and_reach_the_outbox_when_writes_work(
    store: SqlStore, database: Path
) -> None:
    clock = ManualClock()
    outage = StorageOutage(clock)
    breakable = BreakableStore(store)
    hook, down = ScriptedSink("hook"), ScriptedSink("down", [retryable(), retryable()])
    sender = _sender(breakable, {"hook": hook, "down": down}, outage)
    breakable.broken = True
    firing = "system:storage_failing:firing:" + _ms(clock)
    outage.failed(StorageUnavailable("storing the poll cycle: database or disk is full"), "test")
    sender.hold(notification(id="margin"))

    await sender.deliver_due()
    clock.advance(6)  # past the back-off of the failing sink
    await sender.deliver_due()
    assert [n.id for n in hook.received] == [firing, "margin"]
    assert [n.id for n in down.received] == []  # failed twice, still held in memory
    assert outbox_rows(database) == []

    breakable.broken = False
    await sender.store_held()
    outage.succeeded()
    clock.advance(60)
    await sender.flush(5)
    rows = [(r.notification_id, r.sink, r.delivered) for r in outbox_rows(database)]
    assert ("margin", "hook", True) in rows
    assert ("margin", "down", True) in rows
    # Each sink got each notification once: the memory copy, or the outbox row, never both.
    for sink in (hook, down):
        ids = [n.id for n in sink.received]
        assert len(ids) == len(set(ids))
        assert "margin" in ids
        assert any(i.startswith("system:storage_failing:resolved:") for i in ids)


def _ms(clock: ManualClock) -> str:
    return str(int(clock.now().timestamp() * 1000))


def test_the_cause_is_named_from_the_driver_error() -> None:
    def sqlite_error(code: int, text: str) -> StorageError:
        error = sqlite3.OperationalError(text)
        error.sqlite_errorcode = code  # type: ignore[attr-defined]
        wrapped = StorageUnavailable(f"storing the poll cycle: {text}")
        wrapped.__cause__ = error
        return wrapped

    assert classify(sqlite_error(13, "database or disk is full")) == DISK_FULL
    assert classify(sqlite_error(5, "database is locked")) == LOCKED
    assert classify(sqlite_error(8, "attempt to write a readonly database")) == READ_ONLY
    assert (
        classify(StorageUnavailable('could not extend file "base/1/2": No space left')) == DISK_FULL
    )
    assert (
        classify(StorageUnavailable("cannot execute INSERT in a read-only transaction"))
        == READ_ONLY
    )
    assert classify(StorageUnavailable("disk I/O error")) == OTHER
    assert redact("connect to postgresql://mon:s3cret@db/monitor failed") == (
        "connect to postgresql://mon:***@db/monitor failed"
    )
    assert "hunter2" not in redact("host=db password=hunter2 user=mon")


def test_error_lines_are_one_per_change_and_a_reminder_every_few_minutes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    sent: list[str] = []
    outage = StorageOutage(clock, remind_every=timedelta(minutes=5))
    outage.deliver_from_memory = lambda n: sent.append(n.id)
    caplog.set_level(logging.ERROR, logger="monitor.outage")
    full = StorageUnavailable("database or disk is full")
    for _ in range(90):  # one failed write a second for 90 s
        outage.failed(full, "cycle")
        clock.advance(1)
    assert len(caplog.records) == 1
    outage.failed(StorageUnavailable("database is locked"), "cycle")  # the cause changed
    assert len(caplog.records) == 2
    clock.advance(300)
    outage.failed(StorageUnavailable("database is locked"), "cycle")
    assert len(caplog.records) == 3
    assert "STORAGE FAILING (locked)" in outage.status_text()
    outage.succeeded()
    assert outage.status_text() == ""
    assert [i.split(":")[2] for i in sent] == ["firing", "resolved"]  # one alert per outage
    assert sent[0].split(":")[3] == sent[1].split(":")[3]
