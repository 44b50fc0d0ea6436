"""The outbox sender: delivers queued notifications to their sinks, at least once.

Rows are written by the poll cycle in the same transaction as the snapshot, so an alert exists
as soon as its cause is stored. This loop hands each due row to its sink:
- success: the row is marked delivered and never sent again;
- a retryable failure (network, 5xx, rate limit, broker down): the row is tried again after an
  exponential back-off, or after the sink's own `retry_after` when it gave one; the sink is not
  tried again before then, so a dead webhook is not hammered;
- a permanent failure (revoked token, deleted hook): the sink is disabled until restart, its rows
  are marked dead with the reason, and a SYSTEM notification tells the remaining sinks.
Every payload carries the notification id, so a receiver drops the duplicates a crash between
"sent" and "marked delivered" can cause.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.domain.errors import DeliveryError
from monitor.domain.notification import Notification, NotificationKind, Severity
from monitor.ports import Clock, Notifier, OutboxEntry, OutboxStore

log = logging.getLogger(__name__)

# Notifications about the monitor itself belong to no account.
SYSTEM_ACCOUNT = ""
# Tries before a message that a working sink keeps refusing is given up on its own.
REJECTED_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait before retrying a sink that failed: `initial` after the first failure,
    doubling up to `maximum`; `send_timeout` bounds one delivery attempt."""

    initial: timedelta = timedelta(seconds=5)
    maximum: timedelta = timedelta(minutes=15)
    send_timeout: timedelta = timedelta(seconds=30)

    def delay(self, attempts: int, retry_after: float | None = None) -> timedelta:
        """The wait after the `attempts`-th failed try (1 = first failure). A sink's own
        `retry_after` wins when it is longer than our back-off (it knows its rate limit)."""
        exponent = max(0, attempts - 1)
        # Cap the exponent before multiplying: 2**exponent overflows timedelta long before
        # anyone has retried for a day.
        backoff = self.initial * (1 << min(exponent, 30))
        wait = min(backoff, self.maximum)
        if retry_after is not None and retry_after > 0:
            wait = max(wait, timedelta(seconds=retry_after))
        return wait


class _SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class OutboxSender:
    """Delivers due outbox rows to `sinks` (by name). Run `run()` as a task; call `wake()` after
    a cycle committed notifications and `flush(seconds)` on shutdown."""

    def __init__(
        self,
        store: OutboxStore,
        sinks: Mapping[str, Notifier],
        policy: RetryPolicy | None = None,
        *,
        clock: Clock | None = None,
        poll_interval: float = 1.0,
        batch: int = 100,
    ) -> None:
        self._store = store
        self._sinks = dict(sinks)
        self._policy = policy or RetryPolicy()
        self._clock = clock or _SystemClock()
        self._poll_interval = poll_interval
        self._batch = batch
        self._wake = asyncio.Event()
        self._blocked_until: dict[str, datetime] = {}
        self._resumed = False
        self._recovered: set[str] = set()
        self._failures: dict[str, int] = {}
        self._pass = asyncio.Lock()
        self._last_error: dict[str, str] = {}
        self.disabled: dict[str, str] = {}
        self.delivered = 0

    def wake(self) -> None:
        """Look for due rows now instead of at the next poll interval."""
        self._wake.set()

    def sink_recovered(self, sink: str) -> None:
        """The sink is known to work again (the MQTT broker connection is back): end its
        back-off and deliver its waiting rows now, not when the back-off (up to `maximum`)
        would have tried again."""
        self._recovered.add(sink)
        self.wake()

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
                        return True
        except TimeoutError:
            log.warning("outbox: flush stopped after %.1fs with rows still due", timeout_seconds)
            return False

    async def deliver_due(self) -> int:
        """One pass over the due rows; returns how many rows were handled (0 = nothing to do)."""
        # flush() at shutdown may overlap a pass of run(); one pass at a time sends each row once.
        async with self._pass:
            return await self._deliver_due()

    async def _deliver_due(self) -> int:
        now = self._clock.now()
        if not self._resumed:
            # Sinks that were in back-off when the process stopped still are: their rows wait
            # in the store, and a newer row sent now would overtake them (a resolved notice
            # arriving before the firing one).
            for sink, until in (await self._store.retry_times(now)).items():
                self._blocked_until.setdefault(sink, until)
            self._resumed = True
        while self._recovered:
            sink = self._recovered.pop()
            self._blocked_until.pop(sink, None)
            self._failures.pop(sink, None)
            await self._store.retry_now(sink, now)
        entries = await self._store.due(now, self._batch)
        by_sink: dict[str, list[OutboxEntry]] = {}
        waiting: dict[str, list[OutboxEntry]] = {}
        attempted = 0
        for entry in entries:
            if entry.sink in self.disabled or entry.sink not in self._sinks:
                reason = self.disabled.get(entry.sink, "the sink is not configured any more")
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
        return attempted

    async def _deliver_to(self, sink_name: str, entries: Sequence[OutboxEntry]) -> int:
        """Rows of one sink, oldest first. After a failure the rest wait with the failed row,
        so the order of alerts is kept."""
        sink = self._sinks[sink_name]
        for done, entry in enumerate(entries, start=1):
            error = await self._attempt(sink, entry)
            if error is None:
                await self._store.mark_delivered(entry.id, self._clock.now())
                self._failures.pop(sink_name, None)
                self._blocked_until.pop(sink_name, None)
                self.delivered += 1
                continue
            if await self._failed(entry, error):
                continue  # this message alone was given up; the sink goes on with the next
            blocked = self._blocked_until.get(sink_name)
            if not error.permanent and blocked is not None:
                await self._postpone(sink_name, entries[done:], blocked)
            return len(entries)
        return len(entries)

    async def _attempt(self, sink: Notifier, entry: OutboxEntry) -> DeliveryError | None:
        try:
            async with asyncio.timeout(self._policy.send_timeout.total_seconds()):
                await sink.send(entry.notification)
        except DeliveryError as error:
            return error
        except TimeoutError:
            return DeliveryError(f"{entry.sink}: no answer in time")
        except Exception as error:
            # A bug in one sink must not stop the others; keep the row and retry it.
            log.exception("outbox: sink %s raised unexpectedly", entry.sink)
            return DeliveryError(f"{entry.sink}: {error!r}")
        return None

    async def _failed(self, entry: OutboxEntry, error: DeliveryError) -> bool:
        """Record a failed try; True when only this message was given up (the sink is fine)."""
        if error.permanent:
            await self._disable(entry, str(error))
            return False
        if error.rejected and entry.attempts + 1 >= REJECTED_ATTEMPTS:
            await self._give_up(entry, str(error))
            return True
        # The back-off follows the sink's run of failures, not the row's attempt count: rows
        # that only waited behind a failed one did not make the sink any less healthy.
        failures = self._failures.get(entry.sink, 0) + 1
        self._failures[entry.sink] = failures
        wait = self._policy.delay(failures, error.retry_after)
        next_attempt = self._clock.now() + wait
        self._blocked_until[entry.sink] = next_attempt
        self._last_error[entry.sink] = str(error)
        await self._store.mark_failed(entry.id, next_attempt, str(error))
        log.warning(
            "outbox: %s failed (%d in a row), retrying in %s: %s",
            entry.sink,
            failures,
            wait,
            error,
        )
        return False

    async def _postpone(self, sink: str, entries: Sequence[OutboxEntry], until: datetime) -> None:
        """Rows that wait for their failing sink; not an attempt (`alerts` counts real tries)."""
        reason = self._last_error.get(sink, "")
        await self._store.postpone(
            [entry.id for entry in entries], until, f"not tried: {sink} is failing ({reason})"
        )

    async def _disable(self, entry: OutboxEntry, reason: str) -> None:
        self.disabled[entry.sink] = reason
        await self._store.mark_dead(entry.id, reason)
        log.error("outbox: sink %s disabled until restart: %s", entry.sink, reason)
        await self._tell_others(
            entry.sink,
            "sink_disabled",
            f"Alerts to {entry.sink} stopped: the sink failed permanently",
            f"portfolio-monitor could not deliver to {entry.sink} and will not try again "
            f"until it is restarted. Reason: {reason}. Fix the sink's configuration, then "
            "restart the service; alerts keep going to the other sinks.",
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

    async def _tell_others(self, sink: str, rule: str, title: str, text: str) -> None:
        """A critical notice about `sink` to every other working sink (none: the log has it)."""
        others = [name for name in self._sinks if name not in self.disabled and name != sink]
        if not others:
            return
        now = self._clock.now()
        notice = Notification(
            id=f"system:{rule}:{sink}:{now.timestamp():.6f}",
            account=SYSTEM_ACCOUNT,
            rule=rule,
            kind=NotificationKind.SYSTEM,
            severity=Severity.CRITICAL,
            title=title,
            text=text,
            created_at=now,
            facts={"sink": sink},
        )
        await self._store.enqueue([notice], others)
        self.wake()
