"""The outbox sender against a real SQLite outbox: at-least-once, back-off, retry_after,
permanent failures holding a sink's alerts and probing it on the back-off, the age limit and
its summary, retry requests, blindness, bounded flush."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.delivery import REJECTED_ATTEMPTS, OutboxSender
from monitor.domain.notification import Notification, NotificationKind
from monitor.errors import MessageRejected
from monitor.retry import RetryPolicy
from monitor.storage.migrate import prepare_database
from monitor.storage.repository import SqlStore
from tests.daemon.outbox import ManualClock, ScriptedSink, outbox_rows, permanent, retryable
from tests.notify.factories import notification
from tests.support.waiting import wait_until

POLICY = RetryPolicy(initial=timedelta(seconds=5), maximum=timedelta(seconds=60))


@pytest.fixture(name="database")
def _database(tmp_path: Path) -> Path:
    return tmp_path / "monitor.db"


@pytest.fixture(name="store")
async def _store(database: Path) -> AsyncIterator[SqlStore]:
    store = await prepare_database(f"sqlite:///{database}")
    yield store
    await store.close()


async def _empty(store: SqlStore) -> bool:
    return await store.depth() == 0


async def test_delivers_every_row_once(store: SqlStore, database: Path) -> None:
    clock = ManualClock()
    ops, phone = ScriptedSink("ops"), ScriptedSink("phone")
    first, second = notification(id="n1"), notification(id="n2")
    await store.enqueue([first, second], ["ops", "phone"])
    sender = OutboxSender(store, {"ops": ops, "phone": phone}, POLICY, clock=clock)

    assert await sender.flush(5)
    assert [n.id for n in ops.received] == ["n1", "n2"]
    assert [n.id for n in phone.received] == ["n1", "n2"]
    assert await store.depth() == 0
    assert await sender.deliver_due() == 0  # delivered rows are never sent again
    assert all(row.delivered for row in outbox_rows(database))


async def test_retryable_failure_backs_off_then_delivers(store: SqlStore, database: Path) -> None:
    clock = ManualClock()
    ops = ScriptedSink("ops", [retryable(), retryable()])
    await store.enqueue([notification(id="n1", kind=NotificationKind.FIRING)], ["ops"])
    sender = OutboxSender(store, {"ops": ops}, POLICY, clock=clock)

    await sender.deliver_due()
    (row,) = outbox_rows(database)
    assert (row.attempts, row.delivered, row.dead, row.last_error) == (1, False, False, "HTTP 503")
    clock.advance(4.9)
    assert await sender.deliver_due() == 0  # not before the 5 s back-off
    clock.advance(0.1)
    await sender.deliver_due()  # second failure: 10 s now
    clock.advance(9.9)
    assert await sender.deliver_due() == 0
    clock.advance(0.1)
    await sender.deliver_due()
    assert [n.id for n in ops.received] == ["n1"]
    assert ops.attempts == 3
    assert await store.depth() == 0


async def test_retry_after_from_the_sink_is_honoured(store: SqlStore) -> None:
    clock = ManualClock()
    discord = ScriptedSink("discord", [retryable("HTTP 429", retry_after=30)])
    await store.enqueue([notification(id="n1")], ["discord"])
    sender = OutboxSender(store, {"discord": discord}, POLICY, clock=clock)
    await sender.deliver_due()
    clock.advance(29)
    assert await sender.deliver_due() == 0
    clock.advance(1)
    await sender.deliver_due()
    assert len(discord.received) == 1


async def test_a_sink_that_is_down_is_not_hammered_and_others_keep_going(store: SqlStore) -> None:
    clock = ManualClock()
    down = ScriptedSink("down", [retryable()] * 100)
    ops = ScriptedSink("ops")
    await store.enqueue([notification(id=f"n{i}") for i in range(5)], ["down", "ops"])
    sender = OutboxSender(store, {"down": down, "ops": ops}, POLICY, clock=clock)
    for _ in range(3):
        await sender.deliver_due()
    assert down.attempts == 1  # one try, then the whole sink waits for its back-off
    assert len(ops.received) == 5
    assert await store.depth() == 5


async def test_a_backlog_for_a_dead_sink_does_not_starve_the_others(
    store: SqlStore, database: Path
) -> None:
    clock = ManualClock()
    down = ScriptedSink("down", [retryable("HTTP 502")] * 100)
    ops = ScriptedSink("ops")
    await store.enqueue([notification(id=f"old{i}") for i in range(10)], ["down"])
    clock.advance(1)
    await store.enqueue([notification(id="new")], ["ops"])
    sender = OutboxSender(store, {"down": down, "ops": ops}, POLICY, clock=clock, batch=3)
    assert await sender.flush(5)  # batches of 3: only "down" rows come first
    assert [n.id for n in ops.received] == ["new"]
    assert down.attempts == 1
    rows = {r.notification_id: r for r in outbox_rows(database) if r.sink == "down"}
    assert rows["old0"].last_error == "HTTP 502"
    assert rows["old9"].last_error == "not tried: down is failing (HTTP 502)"
    assert len({r.next_attempt_at for r in rows.values()}) == 1  # all wait for the same retry


async def test_rows_waiting_behind_a_failing_sink_count_no_attempts(
    store: SqlStore, database: Path
) -> None:
    clock = ManualClock()
    down = ScriptedSink("down", [retryable("HTTP 502")] * 3)
    await store.enqueue([notification(id=f"n{i}") for i in range(3)], ["down"])
    sender = OutboxSender(store, {"down": down}, POLICY, clock=clock)
    for wait in (0, 5, 10):  # three failed tries of n0, each after its back-off
        clock.advance(wait)
        await sender.deliver_due()
    clock.advance(1)
    await store.enqueue([notification(id="late")], ["down"])  # arrives while the sink waits
    await sender.deliver_due()
    attempts = {r.notification_id: r.attempts for r in outbox_rows(database)}
    assert attempts == {"n0": 3, "n1": 0, "n2": 0, "late": 0}
    assert down.attempts == 3


async def test_permanent_failure_holds_the_alerts_probes_on_the_back_off_and_tells_the_others(
    store: SqlStore, database: Path
) -> None:
    clock = ManualClock()
    broken = ScriptedSink("broken", [permanent(), permanent()])
    ops = ScriptedSink("ops")
    await store.enqueue([notification(id="n1"), notification(id="n2")], ["broken", "ops"])
    sender = OutboxSender(store, {"broken": broken, "ops": ops}, POLICY, clock=clock)

    assert await sender.flush(5)
    assert broken.attempts == 1  # n2 is not even tried: it waits behind n1 for the probe
    assert "broken" in sender.disabled
    assert sender.health()["broken"].state == "disabled"
    rows = {(r.notification_id, r.sink): r for r in outbox_rows(database)}
    assert not rows[("n1", "broken")].dead  # held, not dead-lettered
    assert rows[("n1", "broken")].attempts == 1
    assert not rows[("n2", "broken")].dead
    assert rows[("n2", "broken")].attempts == 0
    assert await store.depth() == 2
    system = [n for n in ops.received if n.kind is NotificationKind.SYSTEM]
    assert [n.title for n in system] == ["Alerts to broken are held: the sink refused them"]
    assert "does not exist" in system[0].text
    assert "alerts --retry broken" in system[0].text

    # Probed with its oldest held row on the back-off: 5 s, then 10 s; not in between.
    clock.advance(4.9)
    await sender.flush(5)
    assert broken.attempts == 1
    clock.advance(0.1)
    await sender.flush(5)  # the second permanent refusal: the others are not told twice
    assert broken.attempts == 2
    assert len([n for n in ops.received if n.kind is NotificationKind.SYSTEM]) == 1
    clock.advance(9.9)
    await sender.flush(5)
    assert broken.attempts == 2
    clock.advance(0.1)
    assert await sender.flush(5)  # the hook is back: everything it missed, in order, once
    assert [n.id for n in broken.received] == ["n1", "n2"]
    assert "broken" not in sender.disabled
    assert sender.health()["broken"].ok
    assert (await store.sink_states())["broken"].ok
    assert [n.title for n in ops.received if n.kind is NotificationKind.SYSTEM][-1] == (
        "Alerts to broken resumed"
    )
    assert await store.depth() == 0


async def test_the_failing_sink_is_stored_for_status(store: SqlStore) -> None:
    clock = ManualClock()
    hook = ScriptedSink("hook", [permanent("hook: HTTP 410")])
    await store.enqueue([notification(id="n1")], ["hook"])
    await OutboxSender(store, {"hook": hook}, POLICY, clock=clock).deliver_due()
    stored = (await store.sink_states())["hook"]
    assert (stored.state, stored.since, stored.last_error) == (
        "disabled",
        clock.now(),
        "hook: HTTP 410",
    )
    assert stored.next_attempt_at == clock.now() + timedelta(seconds=5)
    assert (await store.held_counts()) == {"hook": 1}


async def test_a_restart_probes_a_disabled_sink_at_once(store: SqlStore) -> None:
    clock = ManualClock()
    hook = ScriptedSink("hook", [permanent()] * 4)
    await store.enqueue([notification(id="n1")], ["hook"])
    sender = OutboxSender(store, {"hook": hook}, POLICY, clock=clock)
    for wait in (0, 5, 10, 20):  # the probe interval has grown to 40 s
        clock.advance(wait)
        await sender.deliver_due()
    clock.advance(1)
    await store.enqueue([notification(id="n2")], ["hook"])

    fixed = ScriptedSink("hook")
    ops = ScriptedSink("ops")
    restarted = OutboxSender(store, {"hook": fixed, "ops": ops}, POLICY, clock=clock)
    assert await restarted.flush(5)
    assert [n.id for n in fixed.received] == ["n1", "n2"]
    # The "held" notice went out before the restart, so the others hear that it resumed.
    assert [n.title for n in ops.received] == ["Alerts to hook resumed"]


async def test_rows_dead_from_an_older_version_stay_dead_after_a_restart(
    store: SqlStore, database: Path
) -> None:
    await store.enqueue([notification(id="n1")], ["hook"])
    (entry,) = await store.due(ManualClock().now(), 10)
    await store.mark_dead(entry.id, "hook: HTTP 410", attempted=False)  # what 0.x did
    hook = ScriptedSink("hook")
    assert await OutboxSender(store, {"hook": hook}, POLICY, clock=ManualClock()).flush(5)
    assert hook.received == []
    assert outbox_rows(database)[0].dead


async def test_a_retry_request_sends_held_rows_now_and_revives_recent_dead_ones(
    store: SqlStore, database: Path
) -> None:
    clock = ManualClock()
    day = timedelta(hours=24)
    old = replace(notification(id="old"), created_at=clock.now() - 2 * day)
    dead = replace(notification(id="dead"), created_at=clock.now() - timedelta(hours=1))
    await store.enqueue([old, dead], ["hook"])
    for entry in await store.due(clock.now(), 10):
        await store.mark_dead(entry.id, "hook: HTTP 410", attempted=False)  # an older version
    await store.enqueue([notification(id="held")], ["hook"])
    hook = ScriptedSink("hook", [permanent()] * 3)
    sender = OutboxSender(store, {"hook": hook}, POLICY, clock=clock)
    for wait in (0, 5, 10):  # refused; the next probe is 20 s away
        clock.advance(wait)
        await sender.deliver_due()
    clock.advance(1)
    assert await sender.deliver_due() == 0

    # `alerts --retry hook`, from another process, through the database.
    revived = await store.request_retry("hook", clock.now(), clock.now() - day)
    assert revived == 1  # "dead" (1 h old); "old" (2 days) stays dead
    assert await sender.flush(5)
    assert [n.id for n in hook.received] == ["dead", "held"]
    assert (await store.sink_states())["hook"].retry_requested_at is None  # acted on once
    rows = {r.notification_id: r for r in outbox_rows(database)}
    assert rows["old"].dead
    assert rows["dead"].delivered
    assert rows["held"].delivered


async def test_held_alerts_past_the_age_limit_are_summarised_then_dead_with_the_reason(
    store: SqlStore, database: Path
) -> None:
    clock = ManualClock()
    hook = ScriptedSink("hook", [permanent()] * 30)
    sender = OutboxSender(store, {"hook": hook}, POLICY, clock=clock, max_age=timedelta(minutes=10))
    for index in range(25):  # 25 alerts while the hook answers 410, one a minute
        await store.enqueue(
            [replace(notification(id=f"n{index:02}"), created_at=clock.now())], ["hook"]
        )
        await sender.deliver_due()
        clock.advance(60)
    hook.script.clear()  # it works again
    sender.retry_all()  # (a reload) rather than waiting up to a minute for the next probe
    assert await sender.flush(5)

    summary, *rest = hook.received
    assert summary.kind is NotificationKind.SYSTEM
    assert summary.title == "15 alerts older than 10m were not delivered"
    assert summary.text.count("\n- ") == 15
    # The ten younger than 10 minutes arrive one by one, in order, after the summary.
    assert [n.id for n in rest] == [f"n{index:02}" for index in range(15, 25)]
    rows = {r.notification_id: r for r in outbox_rows(database)}
    expired = [rows[f"n{index:02}"] for index in range(15)]
    assert all(row.dead for row in expired)
    assert all(
        f"older than 10m when hook took alerts again; summarised in {summary.id}"
        in (row.last_error or "")
        for row in expired
    )
    assert all(rows[f"n{index:02}"].delivered for index in range(15, 25))


async def test_the_summary_fails_like_any_probe_and_nothing_is_dropped(
    store: SqlStore, database: Path
) -> None:
    clock = ManualClock()
    await store.enqueue([notification(id="n1")], ["hook"])
    clock.advance(3 * 3600)
    hook = ScriptedSink("hook", [retryable()])
    sender = OutboxSender(store, {"hook": hook}, POLICY, clock=clock, max_age=timedelta(hours=1))
    await sender.deliver_due()
    assert hook.received == []
    assert not outbox_rows(database)[0].dead  # the summary did not go out: still held
    clock.advance(5)
    assert await sender.flush(5)
    assert [n.rule for n in hook.received] == ["undelivered"]
    assert outbox_rows(database)[0].dead


async def test_every_remote_sink_failing_is_logged_critical_every_few_minutes(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    hook = ScriptedSink("hook", [permanent()] * 100)
    console = ScriptedSink("console")  # local: it does not count as a way out
    sender = OutboxSender(store, {"hook": hook, "console": console}, POLICY, clock=clock)
    await store.enqueue([notification(id="n1")], ["hook", "console"])

    def criticals() -> int:
        return len([r for r in caplog.records if r.levelno == logging.CRITICAL])

    with caplog.at_level(logging.WARNING, logger="monitor.delivery"):
        for _ in range(12):  # 12 probes over about 4 minutes: one line, not one per attempt
            await sender.deliver_due()
            clock.advance(20)
        assert hook.attempts > 5
        assert criticals() == 1
        assert [h.sink for h in sender.blind()] == ["hook"]
        assert sender.status_text().startswith("ALERTS REACH NO ONE")
        clock.advance(60)  # five minutes after the first line
        await sender.deliver_due()
        assert criticals() == 2
        hook.script.clear()
        clock.advance(60)
        await sender.flush(5)
        assert sender.blind() == []
        assert sender.status_text() == ""
        assert criticals() == 2


async def test_one_failing_sink_among_working_ones_is_not_blindness(store: SqlStore) -> None:
    clock = ManualClock()
    sender = OutboxSender(
        store,
        {"hook": ScriptedSink("hook", [permanent()]), "ops": ScriptedSink("ops")},
        POLICY,
        clock=clock,
    )
    await store.enqueue([notification(id="n1")], ["hook", "ops"])
    await sender.flush(5)
    assert sender.blind() == []
    assert sender.status_text().startswith("alert sink failing: hook disabled")


async def test_a_message_a_working_sink_keeps_refusing_is_given_up_alone(
    store: SqlStore, database: Path
) -> None:
    clock = ManualClock()
    refused = MessageRejected("telegram: HTTP 400: Bad Request: something new")
    telegram = ScriptedSink("telegram", [refused] * REJECTED_ATTEMPTS)
    ops = ScriptedSink("ops")
    await store.enqueue([notification(id="n1"), notification(id="n2")], ["telegram", "ops"])
    sender = OutboxSender(store, {"telegram": telegram, "ops": ops}, POLICY, clock=clock)

    for _ in range(REJECTED_ATTEMPTS):
        await sender.deliver_due()
        clock.advance(60)  # past any back-off
    await sender.flush(5)

    # n1 was tried the allowed number of times, then given up on its own; n2, queued behind it,
    # reached the same sink, which stays enabled.
    assert telegram.attempts == REJECTED_ATTEMPTS + 1
    assert [n.id for n in telegram.received] == ["n2"]
    assert "telegram" not in sender.disabled
    rows = {(r.notification_id, r.sink): r for r in outbox_rows(database)}
    assert rows[("n1", "telegram")].dead
    assert rows[("n1", "telegram")].attempts == REJECTED_ATTEMPTS
    assert rows[("n2", "telegram")].delivered
    system = [n for n in ops.received if n.kind is NotificationKind.SYSTEM]
    assert [n.title for n in system] == ["An alert did not reach telegram"]
    assert "something new" in system[0].text
    assert await store.depth() == 0


async def test_rows_for_a_sink_no_longer_configured_are_marked_dead(
    store: SqlStore, database: Path
) -> None:
    await store.enqueue([notification(id="n1")], ["removed"])
    sender = OutboxSender(store, {}, POLICY, clock=ManualClock())
    assert await sender.flush(5)
    (row,) = outbox_rows(database)
    assert row.dead
    assert row.last_error == "the sink is not configured any more"
    assert row.attempts == 0


async def test_nothing_is_lost_across_a_restart(database: Path) -> None:
    clock = ManualClock()
    store = await prepare_database(f"sqlite:///{database}")
    try:
        await store.enqueue([notification(id="n1")], ["ops"])
        down = ScriptedSink("ops", [retryable()])
        await OutboxSender(store, {"ops": down}, POLICY, clock=clock).deliver_due()
    finally:
        await store.close()

    reopened = await prepare_database(f"sqlite:///{database}")
    try:
        clock.advance(5)
        ops = ScriptedSink("ops")
        assert await OutboxSender(reopened, {"ops": ops}, POLICY, clock=clock).flush(5)
        assert [n.id for n in ops.received] == ["n1"]
        assert ops.received[0].facts["margin_ratio"] == 1.42
    finally:
        await reopened.close()


async def test_after_a_restart_a_newer_row_still_waits_for_an_older_one_in_back_off(
    store: SqlStore,
) -> None:
    """The firing notice failed and waits for its retry; the daemon restarts and the alert
    resolves. The resolved notice must not arrive first: the last word would be "firing"."""
    clock = ManualClock()
    firing = notification(id="firing", kind=NotificationKind.FIRING)
    await store.enqueue([firing], ["ops"])
    down = ScriptedSink("ops", [retryable()])
    await OutboxSender(store, {"ops": down}, POLICY, clock=clock).deliver_due()

    clock.advance(1)  # restarted: a new sender that knows nothing of the back-off
    resolved = replace(
        notification(id="resolved", kind=NotificationKind.RESOLVED), created_at=clock.now()
    )
    await store.enqueue([resolved], ["ops"])
    ops = ScriptedSink("ops")
    sender = OutboxSender(store, {"ops": ops}, POLICY, clock=clock)
    await sender.flush(5)
    assert ops.received == []
    clock.advance(4)
    assert await sender.flush(5)
    assert [n.id for n in ops.received] == ["firing", "resolved"]


async def test_a_recovered_sink_gets_its_waiting_rows_at_once(
    store: SqlStore, database: Path
) -> None:
    clock = ManualClock()
    mqtt = ScriptedSink("mqtt", [retryable("not connected")] * 4)
    await store.enqueue([notification(id="n1"), notification(id="n2")], ["mqtt"])
    sender = OutboxSender(store, {"mqtt": mqtt}, POLICY, clock=clock)
    for wait in (0, 5, 10, 20):  # the back-off has grown to 40 s
        clock.advance(wait)
        await sender.deliver_due()
    clock.advance(1)
    assert await sender.deliver_due() == 0
    sender.sink_recovered("mqtt")  # the broker connection is back
    assert await sender.flush(5)
    assert [n.id for n in mqtt.received] == ["n1", "n2"]
    assert await store.depth() == 0


async def test_flush_is_bounded(store: SqlStore) -> None:
    class Stuck:
        name = "stuck"

        async def send(self, notification: object) -> None:
            await asyncio.sleep(3600)

    await store.enqueue([notification(id="n1")], ["stuck"])
    sender = OutboxSender(store, {"stuck": Stuck()}, POLICY, clock=ManualClock())
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert not await sender.flush(0.3)
    assert loop.time() - started < 2
    assert await store.depth() == 1


async def test_a_sink_that_times_out_is_retried(store: SqlStore, database: Path) -> None:
    class Slow:
        name = "slow"

        async def send(self, notification: object) -> None:
            await asyncio.sleep(3600)

    await store.enqueue([notification(id="n1")], ["slow"])
    policy = RetryPolicy(
        initial=timedelta(seconds=5),
        maximum=timedelta(minutes=15),
        attempt_timeout=timedelta(seconds=0.1),
    )
    await OutboxSender(store, {"slow": Slow()}, policy, clock=ManualClock()).deliver_due()
    (row,) = outbox_rows(database)
    assert not row.dead
    assert row.attempts == 1
    assert "no answer in time" in (row.last_error or "")


async def test_run_delivers_when_woken(store: SqlStore) -> None:
    passes: list[int] = []

    class Counted(OutboxSender):
        async def deliver_due(self) -> int:
            attempted = await super().deliver_due()
            passes.append(attempted)
            return attempted

    ops = ScriptedSink("ops")
    sender = Counted(store, {"ops": ops}, POLICY, poll_interval=30)
    task = asyncio.create_task(sender.run())
    try:
        # The first pass found nothing; the next is 30 s away unless woken.
        await wait_until(lambda: passes == [0], 5, "the first pass")
        await store.enqueue([notification(id="n1", created_at=datetime.now(UTC))], ["ops"])
        sender.wake()
        await wait_until(lambda: ops.received, 5, "the woken delivery")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [n.id for n in ops.received] == ["n1"]


async def test_run_stops_even_when_a_sink_swallows_the_cancellation(store: SqlStore) -> None:
    entered = asyncio.Event()

    class Swallowing:
        """Like aiomqtt's publish under Python 3.11 when the PUBACK races the cancellation:
        sends run in a gathered task, so the sender's own cancellation still ends it."""

        name = "mqtt"

        async def send(self, notification: object) -> None:
            entered.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                return

    await store.enqueue([notification(id="n1")], ["mqtt"])
    sender = OutboxSender(store, {"mqtt": Swallowing()}, POLICY, poll_interval=3600)
    task = asyncio.create_task(sender.run())
    async with asyncio.timeout(5):
        await entered.wait()
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    assert task.cancelled()


async def test_a_store_failure_in_one_sink_does_not_resend_another_sinks_rows(
    store: SqlStore,
) -> None:
    """A failed write for one sink ends the pass; a send still in flight for another sink must
    finish (and be recorded) before the next pass reads the outbox again, or it is sent twice."""

    class FlakyStore:
        """The real store, except that marking one sink's row delivered fails once."""

        def __init__(self, inner: SqlStore) -> None:
            self._inner = inner
            self.failed = False

        def __getattr__(self, name: str) -> object:
            return getattr(self._inner, name)

        async def mark_delivered(self, entry_id: int, at: object) -> None:
            if not self.failed:
                self.failed = True
                raise RuntimeError("database is locked")
            await self._inner.mark_delivered(entry_id, at)  # type: ignore[arg-type]

    class Slow(ScriptedSink):
        async def send(self, notification: Notification) -> None:
            await asyncio.sleep(0.3)
            await super().send(notification)

    fast, slow = ScriptedSink("fast"), Slow("slow")
    await store.enqueue([notification(id="n1")], ["fast", "slow"])
    sender = OutboxSender(
        FlakyStore(store),  # type: ignore[arg-type]
        {"fast": fast, "slow": slow},
        POLICY,
        clock=ManualClock(),
        poll_interval=0.05,
    )
    task = asyncio.create_task(sender.run())
    try:
        await wait_until(lambda: _empty(store), 5, "an empty outbox")
        await asyncio.sleep(0.5)  # letting time pass is the point: a duplicate would be sent by now
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [n.id for n in slow.received] == ["n1"]
    assert [n.id for n in fast.received] == ["n1", "n1"]  # its mark failed: at least once
