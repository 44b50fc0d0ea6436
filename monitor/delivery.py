"""The outbox sender: delivers queued notifications to their sinks, at least once.

Rows are written by the poll cycle in the same transaction as the snapshot, so an alert exists
as soon as its cause is stored. This loop hands each due row to its sink:
- success: the row is marked delivered and never sent again;
- a retryable failure (network, 5xx, rate limit, broker down): the row is tried again after an
  exponential back-off, or after the sink's own `retry_after` when it gave one; the sink is not
  tried again before then, so a dead webhook is not hammered;
- a permanent failure (revoked token, deleted hook answering 404/410): the sink is disabled, a
  SYSTEM notification tells the remaining sinks, and its rows are *held*, not given up: the sink
  is probed with its oldest held row on the same back-off, and is re-enabled at once by a reload,
  a restart or `portfolio-monitor alerts --retry SINK` (a request stored in the database, taken
  at the next pass). When it works again it gets what it missed, in order; rows older than
  `max_age` are summarised in one message to it and then marked dead with that reason.
A dead row is a last resort and always says why. While every remote sink (all but the console)
is failing, a CRITICAL log line says so every few minutes; `health()`/`status_text()` tell the
daemon's STATUS= line, metrics and the stored sink state (`portfolio-monitor status`).
Every payload carries the notification id, so a receiver drops the duplicates a crash between
"sent" and "marked delivered" can cause.

While the database refuses writes (`monitor.outage`), the sender works from memory: the
notifications handed to `hold()` are delivered with the same back-off, and stored in the outbox
when writes work again (delivered ones as delivered, the rest as due). A row sent whose
"delivered" mark could not be written is remembered and not sent again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from monitor.domain.errors import PermanentError, RetryableError
from monitor.domain.notification import Notification, NotificationKind, Severity
from monitor.domain.units import format_duration
from monitor.errors import DeliveryError, MessageRejected, SinkUnavailable, StorageError
from monitor.outage import StorageOutage
from monitor.ports import (
    Clock,
    HeldDelivery,
    OutboxEntry,
    OutboxStore,
    Sink,
    SinkHealth,
    SystemClock,
)
from monitor.retry import RetryPolicy

log = logging.getLogger(__name__)

# Notifications about the monitor itself belong to no account.
SYSTEM_ACCOUNT = ""
# Tries before a message that a working sink keeps refusing is given up on its own.
REJECTED_ATTEMPTS = 3
# Held alerts older than this are summarised instead of sent one by one ([notify.delivery] max_age).
MAX_AGE = timedelta(hours=24)
# Sinks that cannot fail and that nobody watches from afar: they do not count as a way out.
LOCAL_SINKS = frozenset({"console"})
# While every remote sink fails, the CRITICAL log line is repeated this often (not per attempt).
BLIND_LOG_EVERY = timedelta(minutes=5)
# How many expired alerts the summary names one by one.
SUMMARY_LINES = 20
# A sink that failed waits 5 s, doubling up to 15 min ([notify.delivery] retry_initial/retry_max);
# one delivery attempt may take 30 s.
DELIVERY_RETRY = RetryPolicy(
    initial=timedelta(seconds=5),
    maximum=timedelta(minutes=15),
    attempt_timeout=timedelta(seconds=30),
)


def _retry_after(error: DeliveryError) -> float | None:
    """The wait the sink asked for; only a retryable failure carries one."""
    return error.retry_after if isinstance(error, RetryableError) else None


class OutboxSender:
    """Delivers due outbox rows to `sinks` (by name). Run `run()` as a task; call `wake()` after
    a cycle committed notifications and `flush(seconds)` on shutdown."""

    def __init__(
        self,
        store: OutboxStore,
        sinks: Mapping[str, Sink],
        policy: RetryPolicy | None = None,
        *,
        clock: Clock | None = None,
        poll_interval: float = 1.0,
        batch: int = 100,
        max_age: timedelta = MAX_AGE,
        local_sinks: Collection[str] = LOCAL_SINKS,
        blind_log_every: timedelta = BLIND_LOG_EVERY,
        outage: StorageOutage | None = None,
    ) -> None:
        self._store = store
        self._sinks = dict(sinks)
        self._policy = policy or DELIVERY_RETRY
        self._clock = clock or SystemClock()
        self._poll_interval = poll_interval
        self._batch = batch
        self._wake = asyncio.Event()
        self._blocked_until: dict[str, datetime] = {}
        self._resumed = False
        self._recovered: set[str] = set()
        self._failures: dict[str, int] = {}
        self._pass = asyncio.Lock()
        self._last_error: dict[str, str] = {}
        self._max_age = max_age
        self._local = frozenset(local_sinks)
        self._blind_log_every = blind_log_every
        self._blind_logged_at: datetime | None = None
        # Sinks that are not ok (failing or disabled), as stored in the sink_state table.
        self._health: dict[str, SinkHealth] = {}
        # Sinks whose "alerts are held" notice went out in this outage (cleared when they work).
        self._told: set[str] = set()
        self.disabled: dict[str, str] = {}
        self.delivered = 0
        # While storage fails: notifications handled in memory, and outbox rows sent whose
        # "delivered" mark is not written yet (never sent again).
        self._outage = outage
        self._memory: list[HeldDelivery] = []
        self._unmarked: dict[int, datetime] = {}
        if outage is not None:
            outage.deliver_from_memory = self.hold
            outage.on_recovery(self.store_held)

    def hold(self, notification: Notification) -> None:
        """Deliver `notification` to every sink from memory (the database refused the cycle's
        write); it reaches the outbox once writes work again."""
        self._memory.extend(HeldDelivery(notification, sink) for sink in self._sinks)
        self.wake()

    async def store_held(self) -> None:
        """Write what was handled in memory to the outbox (the storage probe calls it);
        StorageError when the database still refuses."""
        async with self._pass:
            await self._store_memory()

    def wake(self) -> None:
        """Look for due rows now instead of at the next poll interval."""
        self._wake.set()

    def sink_recovered(self, sink: str) -> None:
        """The sink is known to work again (the MQTT broker connection is back): end its
        back-off and deliver its waiting rows now, not when the back-off (up to `maximum`)
        would have tried again."""
        self._recovered.add(sink)
        self.wake()

    def retry_all(self) -> None:
        """Try every failing or disabled sink now (a reload: the operator may have fixed one)."""
        for sink in self._health:
            self._recovered.add(sink)
        self.wake()

    def health(self) -> dict[str, SinkHealth]:
        """How every configured sink is doing, by name ("ok" unless it failed since it last worked)."""
        return {name: self._health.get(name, SinkHealth(name)) for name in self._sinks}

    def blind(self) -> list[SinkHealth]:
        """The remote sinks when every one of them is failing (alerts reach no one); else []."""
        remote = [name for name in self._sinks if name not in self._local]
        failing = [self._health[name] for name in remote if name in self._health]
        return failing if remote and len(failing) == len(remote) else []

    def status_text(self) -> str:
        """One clause for systemd's STATUS= line naming the failing sinks; "" when all work."""
        failing = [h for name, h in self.health().items() if not h.ok]
        if not failing:
            return ""
        parts = []
        for health in failing:
            since = f" since {health.since:%H:%M:%S} UTC" if health.since else ""
            error = (health.last_error or "")[:80]
            parts.append(f"{health.sink} {health.state}{since} ({error})")
        prefix = (
            "ALERTS REACH NO ONE, every remote sink is failing"
            if self.blind()
            else "alert sink failing"
        )
        return f"{prefix}: {', '.join(parts)}"

    async def run(self) -> None:
        """Deliver forever (until cancelled), every `poll_interval` seconds or when woken."""
        while True:
            try:
                await self.deliver_due()
            except Exception:
                # A store failure (database locked, disk full) must not end delivery for good.
                log.exception("outbox: delivery pass failed; retrying")
            try:
                async with asyncio.timeout(self._poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def flush(self, timeout_seconds: float) -> bool:
        """Deliver what is due now, for at most `timeout_seconds`; True if nothing due is left
        (rows waiting for a back-off or for a sink that is down do not count)."""
        try:
            async with asyncio.timeout(timeout_seconds):
                while True:
                    attempted = await self.deliver_due()
                    if attempted == 0:
                        break
        except TimeoutError:
            log.warning("outbox: flush stopped after %.1fs with rows still due", timeout_seconds)
            return False
        finally:
            await self._report_unstored()
        return True

    async def _report_unstored(self) -> None:
        """At shutdown: store what memory holds, or say what is lost (never silently)."""
        if not self._memory and not self._unmarked:
            return
        try:
            async with self._pass:
                await self._store_memory()
        except StorageError as exc:
            sent = sum(1 for held in self._memory if held.delivered_at is not None)
            log.error(
                "outbox: storage still failing at shutdown (%s): %d alert deliveries handled in "
                "memory are not in the outbox (%d delivered, %d never delivered: lost)",
                exc,
                len(self._memory),
                sent,
                len(self._memory) - sent,
            )

    async def deliver_due(self) -> int:
        """One pass over the due rows; returns how many rows were handled (0 = nothing to do)."""
        # flush() at shutdown may overlap a pass of run(); one pass at a time sends each row once.
        async with self._pass:
            outage = self._outage
            if outage is None:
                return await self._deliver_due()
            if outage.failing:
                # The probe finds out when writes work; no pass waits for a lock meanwhile.
                return await self._deliver_memory()
            try:
                await self._store_memory()
                return await self._deliver_due()
            except StorageError as exc:
                outage.failed(exc, "delivering alerts")
                return await self._deliver_memory()

    async def _store_memory(self) -> None:
        """Move what memory holds into the outbox, and write the pending "delivered" marks."""
        for entry_id, at in list(self._unmarked.items()):
            await self._store.mark_delivered(entry_id, at)
            del self._unmarked[entry_id]
        if not self._memory:
            return
        taken = list(self._memory)
        await self._store.enqueue_held(taken, self._clock.now())
        stored = {id(held) for held in taken}
        self._memory = [held for held in self._memory if id(held) not in stored]

    async def _deliver_memory(self) -> int:
        """Deliver the notifications held in memory (storage failing); returns rows tried."""
        now = self._clock.now()
        by_sink: dict[str, list[HeldDelivery]] = {}
        for held in self._memory:
            if held.delivered_at is None and held.sink in self._sinks:
                by_sink.setdefault(held.sink, []).append(held)
        results = await asyncio.gather(
            *(self._deliver_memory_to(sink, rows, now) for sink, rows in by_sink.items())
        )
        self._check_blind(self._clock.now())
        return sum(results)

    async def _deliver_memory_to(
        self, sink_name: str, rows: Sequence[HeldDelivery], now: datetime
    ) -> int:
        """Like `_deliver_to`, in memory: in order, the rest wait behind a failure."""
        blocked = self._blocked_until.get(sink_name)
        if blocked is not None and blocked > now:
            return 0
        sink = self._sinks[sink_name]
        for tried, held in enumerate(rows, start=1):
            error = await self._attempt(sink, held.notification)
            at = self._clock.now()
            if error is None:
                held.delivered_at = at
                self.delivered += 1
                self._failures.pop(sink_name, None)
                self._blocked_until.pop(sink_name, None)
                if self._health.pop(sink_name, None) is not None:
                    self.disabled.pop(sink_name, None)
                    log.warning("outbox: %s works again (delivering from memory)", sink_name)
                continue
            held.attempts += 1
            held.last_error = str(error)
            failures = self._failures.get(sink_name, 0) + 1
            self._failures[sink_name] = failures
            wait = self._policy.delay(failures, _retry_after(error))
            self._blocked_until[sink_name] = at + wait
            self._last_error[sink_name] = str(error)
            previous = self._health.get(sink_name)
            since = previous.since if previous is not None and previous.since else at
            state = "disabled" if isinstance(error, PermanentError) else "failing"
            self._health[sink_name] = SinkHealth(sink_name, state, since, str(error), at + wait)
            log.warning(
                "outbox: %s failed (%d in a row; delivering from memory, storage failing), "
                "retrying in %s: %s",
                sink_name,
                failures,
                wait,
                error,
            )
            return tried
        return len(rows)

    async def _deliver_due(self) -> int:
        now = self._clock.now()
        if not self._resumed:
            await self._resume(now)
            self._resumed = True
        await self._take_retry_requests()
        while self._recovered:
            sink = self._recovered.pop()
            self._blocked_until.pop(sink, None)
            self._failures.pop(sink, None)
            await self._store.retry_now(sink, now)
        # Sent before storage failed, "delivered" not written yet: never sent again.
        entries = [e for e in await self._store.due(now, self._batch) if e.id not in self._unmarked]
        by_sink: dict[str, list[OutboxEntry]] = {}
        waiting: dict[str, list[OutboxEntry]] = {}
        attempted = 0
        for entry in entries:
            if entry.sink not in self._sinks:
                reason = "the sink is not configured any more"
                await self._store.mark_dead(entry.id, reason, attempted=False)
                attempted += 1
                continue
            blocked = self._blocked_until.get(entry.sink)
            if blocked is not None and blocked > now:
                # Move the row out of the way, or a backlog for one dead sink would fill every
                # batch and starve the healthy sinks queued behind it.
                waiting.setdefault(entry.sink, []).append(entry)
                attempted += 1
                continue
            by_sink.setdefault(entry.sink, []).append(entry)
        for sink, rows in waiting.items():
            await self._postpone(sink, rows, self._blocked_until[sink])
        # Every sink's run finishes before the pass ends, even when another one's store write
        # failed: a send left running would still be unmarked when the next pass reads the
        # outbox, and would be sent a second time.
        results = await asyncio.gather(
            *(self._deliver_to(sink, rows) for sink, rows in by_sink.items()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
            attempted += result
        self._check_blind(self._clock.now())
        return attempted

    async def _resume(self, now: datetime) -> None:
        """Pick up where the last process left off. A sink in back-off still is: its rows wait
        in the store, and a newer row sent now would overtake them (a resolved notice arriving
        before the firing one). A sink that was disabled is probed at once: a restart is how an
        operator says "I fixed it"."""
        stored = await self._store.sink_states()
        for sink, health in stored.items():
            if sink in self._sinks and not health.ok:
                self._health[sink] = health
                if health.state == "disabled":
                    self._told.add(sink)  # the others were told before the restart
                    self.disabled[sink] = health.last_error or ""
                    self._recovered.add(sink)
        for sink, until in (await self._store.retry_times(now)).items():
            if sink not in self._recovered:
                self._blocked_until.setdefault(sink, until)
        await self._store.forget_sinks(list(self._sinks))

    async def _take_retry_requests(self) -> None:
        """Act on `portfolio-monitor alerts --retry SINK`, stored in the database by the CLI."""
        for sink, health in (await self._store.sink_states()).items():
            if health.retry_requested_at is None:
                continue
            if sink in self._sinks:
                log.warning("outbox: %s retried on request; its held alerts go out now", sink)
                self._recovered.add(sink)
            await self._store.clear_retry_request(sink, health.retry_requested_at)

    async def _deliver_to(self, sink_name: str, entries: Sequence[OutboxEntry]) -> int:
        """Rows of one sink, oldest first. After a failure the rest wait with the failed row,
        so the order of alerts is kept. Held rows past `max_age` are summarised first."""
        sink = self._sinks[sink_name]
        handled = len(entries)
        if entries[0].notification.created_at < self._clock.now() - self._max_age:
            error, buried = await self._summarise_expired(sink_name, sink)
            if error is not None:
                await self._after_failure(sink_name, entries, 0, error)
                return handled
            entries = [entry for entry in entries if entry.id not in buried]
        for done, entry in enumerate(entries, start=1):
            if not await self._store.still_claimed(entry.id):
                # Another daemon took this batch while this one stalled: it sends the rest.
                log.warning(
                    "outbox: %s: %d row(s) were taken over by another daemon; not sent here",
                    sink_name,
                    len(entries) - done + 1,
                )
                return handled
            error = await self._attempt(sink, entry.notification)
            if error is None:
                delivered_at = self._clock.now()
                try:
                    await self._store.mark_delivered(entry.id, delivered_at)
                except StorageError:
                    self._unmarked[entry.id] = delivered_at
                    raise
                await self._succeeded(sink_name)
                self.delivered += 1
                continue
            if await self._after_failure(sink_name, entries, done - 1, error):
                continue  # this message alone was given up; the sink goes on with the next
            return handled
        return handled

    async def _after_failure(
        self, sink: str, entries: Sequence[OutboxEntry], index: int, error: DeliveryError
    ) -> bool:
        """`entries[index]` failed: record it; the rows behind it wait for the same probe.
        True when only that message was given up and the sink goes on."""
        if await self._failed(entries[index], error):
            return True
        blocked = self._blocked_until.get(sink)
        if blocked is not None:
            await self._postpone(sink, entries[index + 1 :], blocked)
        return False

    async def _attempt(self, sink: Sink, notification: Notification) -> DeliveryError | None:
        try:
            limit = self._policy.attempt_timeout
            async with asyncio.timeout(None if limit is None else limit.total_seconds()):
                await sink.send(notification)
        except DeliveryError as error:
            return error
        except TimeoutError:
            return SinkUnavailable(f"{sink.name}: no answer in time")
        except Exception as error:
            # A bug in one sink must not stop the others; keep the row and retry it.
            log.exception("outbox: sink %s raised unexpectedly", sink.name)
            return SinkUnavailable(f"{sink.name}: {error!r}")
        return None

    async def _summarise_expired(
        self, sink_name: str, sink: Sink
    ) -> tuple[DeliveryError | None, set[int]]:
        """Send one message listing the sink's held rows older than `max_age`, then mark them
        dead saying so: a day-old "margin ratio 140 %" delivered as news would mislead."""
        now = self._clock.now()
        expired = await self._store.held_before(sink_name, now - self._max_age)
        if not expired:
            return None, set()
        summary = self._expired_notice(sink_name, expired, now)
        error = await self._attempt(sink, summary)
        if error is not None:
            return error, set()
        ids = [entry.id for entry in expired]
        await self._store.bury(
            ids,
            f"not delivered: older than {format_duration(self._max_age)} when {sink_name} "
            f"took alerts again; summarised in {summary.id}",
        )
        await self._succeeded(sink_name)
        log.warning(
            "outbox: %d alert(s) held for %s were older than %s; sent one summary instead",
            len(ids),
            sink_name,
            format_duration(self._max_age),
        )
        return None, set(ids)

    def _expired_notice(
        self, sink: str, expired: Sequence[OutboxEntry], now: datetime
    ) -> Notification:
        age = format_duration(self._max_age)
        lines = [
            f"- {entry.notification.created_at:%Y-%m-%d %H:%M} UTC "
            f"[{entry.notification.severity}] {entry.notification.title}"
            for entry in expired[:SUMMARY_LINES]
        ]
        if len(expired) > SUMMARY_LINES:
            lines.append(f"- ... and {len(expired) - SUMMARY_LINES} more")
        text = (
            f"They were held while {sink} was failing and are too old to be sent as news:\n"
            + "\n".join(lines)
            + "\nNewer alerts follow in order; `portfolio-monitor alerts` lists every one."
        )
        worst = max((entry.notification.severity for entry in expired), key=lambda s: s.rank)
        return Notification(
            # The oldest row's id: a summary re-sent after a crash keeps its id (receivers
            # drop the duplicate).
            id=f"system:undelivered:{sink}:{expired[0].id}",
            account=SYSTEM_ACCOUNT,
            rule="undelivered",
            kind=NotificationKind.SYSTEM,
            # A summary of the past is not itself an emergency (no paging priority).
            severity=Severity.CRITICAL if worst.rank >= Severity.CRITICAL.rank else worst,
            title=f"{len(expired)} alerts older than {age} were not delivered",
            text=text,
            created_at=now,
            facts={"sink": sink, "count": len(expired)},
        )

    async def _failed(self, entry: OutboxEntry, error: DeliveryError) -> bool:
        """Record a failed try; True when only this message was given up (the sink is fine)."""
        if isinstance(error, MessageRejected) and entry.attempts + 1 >= REJECTED_ATTEMPTS:
            await self._give_up(entry, str(error))
            return True
        # The back-off follows the sink's run of failures, not the row's attempt count: rows
        # that only waited behind a failed one did not make the sink any less healthy.
        failures = self._failures.get(entry.sink, 0) + 1
        self._failures[entry.sink] = failures
        wait = self._policy.delay(failures, _retry_after(error))
        now = self._clock.now()
        next_attempt = now + wait
        self._blocked_until[entry.sink] = next_attempt
        self._last_error[entry.sink] = str(error)
        await self._store.mark_failed(entry.id, next_attempt, str(error))
        await self._record_failure(entry.sink, error, now, next_attempt)
        if not isinstance(error, PermanentError):
            log.warning(
                "outbox: %s failed (%d in a row), retrying in %s: %s",
                entry.sink,
                failures,
                wait,
                error,
            )
        elif entry.sink in self._told:
            log.warning(
                "outbox: %s still refuses permanently (%d in a row), probing again in %s: %s",
                entry.sink,
                failures,
                wait,
                error,
            )
        else:
            await self._disable(entry.sink, str(error), wait)
        return False

    async def _record_failure(
        self, sink: str, error: DeliveryError, now: datetime, next_attempt: datetime
    ) -> None:
        previous = self._health.get(sink)
        since = previous.since if previous is not None and previous.since else now
        state = "disabled" if isinstance(error, PermanentError) else "failing"
        if isinstance(error, PermanentError):
            self.disabled[sink] = str(error)
        else:
            self.disabled.pop(sink, None)
        health = SinkHealth(sink, state, since, str(error), next_attempt)
        self._health[sink] = health
        await self._store.save_sink_state(health, now)

    async def _succeeded(self, sink: str) -> None:
        """The sink took a message: end its back-off; after an outage, say it works again."""
        self._failures.pop(sink, None)
        self._blocked_until.pop(sink, None)
        previous = self._health.pop(sink, None)
        if previous is None:
            return
        self.disabled.pop(sink, None)
        now = self._clock.now()
        await self._store.save_sink_state(SinkHealth(sink), now)
        since = previous.since or now
        log.warning(
            "outbox: %s works again after failing for %s; its held alerts follow in order",
            sink,
            format_duration(now - since),
        )
        if sink in self._told:
            self._told.discard(sink)
            await self._tell_others(
                sink,
                "sink_resumed",
                f"Alerts to {sink} resumed",
                f"{sink} accepts alerts again; it gets the ones it missed, in order.",
                Severity.INFO,
            )

    def _check_blind(self, now: datetime) -> None:
        """While every remote sink fails, a CRITICAL line every few minutes: the journal is
        then the only place a person still sees that alerts reach no one."""
        failing = self.blind()
        if not failing:
            if self._blind_logged_at is not None:
                log.warning("outbox: alerts reach a remote sink again")
            self._blind_logged_at = None
            return
        if (
            self._blind_logged_at is not None
            and now - self._blind_logged_at < self._blind_log_every
        ):
            return
        self._blind_logged_at = now
        log.critical(
            "ALERTS REACH NO ONE: every remote sink is failing: %s. Alerts are held and sent "
            "in order when a sink works again; after fixing it: portfolio-monitor alerts "
            "--retry SINK",
            "; ".join(f"{h.sink} {h.state} ({h.last_error})" for h in failing),
        )

    async def _postpone(self, sink: str, entries: Sequence[OutboxEntry], until: datetime) -> None:
        """Rows that wait for their failing sink; not an attempt (`alerts` counts real tries)."""
        reason = self._last_error.get(sink, "")
        await self._store.postpone(
            [entry.id for entry in entries], until, f"not tried: {sink} is failing ({reason})"
        )

    async def _disable(self, sink: str, reason: str, wait: timedelta) -> None:
        self._told.add(sink)
        log.error(
            "outbox: sink %s disabled: %s; its alerts are held and it is probed again in %s "
            "(at once after: portfolio-monitor alerts --retry %s, a reload or a restart)",
            sink,
            reason,
            wait,
            sink,
        )
        await self._tell_others(
            sink,
            "sink_disabled",
            f"Alerts to {sink} are held: the sink refused them",
            f"portfolio-monitor could not deliver to {sink}: {reason}. That will not change "
            f"by itself, so its alerts are kept and {sink} is tried again on a back-off (at "
            f"most every {format_duration(self._policy.maximum)}); when it works it gets what "
            f"it missed, in order (alerts older than {format_duration(self._max_age)} as one "
            f"summary). After fixing it run `portfolio-monitor alerts --retry {sink}` (or "
            "reload or restart the service) to send them at once. Alerts keep going to the "
            "other sinks.",
        )

    async def _give_up(self, entry: OutboxEntry, reason: str) -> None:
        await self._store.mark_dead(entry.id, reason)
        title = entry.notification.title
        log.error(
            "outbox: %s refused %r %d times, given up on it alone: %s",
            entry.sink,
            title,
            REJECTED_ATTEMPTS,
            reason,
        )
        await self._tell_others(
            entry.sink,
            "message_rejected",
            f"An alert did not reach {entry.sink}",
            f'{entry.sink} refused the message "{title}" {REJECTED_ATTEMPTS} times '
            f"({reason}), so it was given up; later alerts still go to {entry.sink}.",
        )

    async def _tell_others(
        self, sink: str, rule: str, title: str, text: str, severity: Severity = Severity.CRITICAL
    ) -> None:
        """A notice about `sink` to every other working sink (none: the log has it)."""
        others = [name for name in self._sinks if name not in self.disabled and name != sink]
        if not others:
            return
        now = self._clock.now()
        notice = Notification(
            id=f"system:{rule}:{sink}:{now.timestamp():.6f}",
            account=SYSTEM_ACCOUNT,
            rule=rule,
            kind=NotificationKind.SYSTEM,
            severity=severity,
            title=title,
            text=text,
            created_at=now,
            facts={"sink": sink},
        )
        await self._store.enqueue([notice], others)
        self.wake()
