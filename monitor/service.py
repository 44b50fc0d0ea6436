"""The poll cycle of one account: fetch -> compute -> evaluate alerts -> store -> publish.

Only the domain and the ports are used here; the daemon plugs in the adapters. One cycle writes
its snapshot, alert state, alert events and outbox rows in one transaction, so a crash or a
cancellation at any point leaves either all of it or none. The in-memory alert state is replaced
only after that transaction commits: a failed write is re-evaluated next cycle from the old state,
so an alert is neither repeated nor forgotten.

Staleness is judged by the clock, not when a fetch ends: a deadline task per account
(`start_deadlines`) wakes when the data reaches the stale rule's age and evaluates the rules with
no snapshot (only the rules that need none can change), through the same transaction and outbox
as a cycle, while a fetch may still hang. Evaluations of one account are serialised, so the clock
and a late-ending fetch never both announce the same transition.

When the database cannot be written (disk full, locked, read-only: see `monitor.outage`), the
outcome of a cycle is committed to memory instead: the alert state advances, the notifications
go to the sinks from memory (same ids), and the snapshot waits in a bounded queue
(`MAX_HELD_SNAPSHOTS`, the oldest dropped and counted beyond it) until a write works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, KeysView, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from monitor.domain.alerts import AlertEvent, AlertRules, Observation, RuleKey, evaluate
from monitor.domain.errors import (
    ExchangeAuthError,
    MonitorError,
    PermanentError,
    RetryableError,
    VenuePaused,
)
from monitor.domain.immutable import immutable
from monitor.domain.margin import assess
from monitor.domain.marks import with_marks
from monitor.domain.model import AccountState, Snapshot
from monitor.domain.notification import Notification, NotificationKind, Severity
from monitor.domain.units import format_duration, format_percent
from monitor.errors import LeaseLost, StorageError
from monitor.outage import StorageOutage
from monitor.ports import Clock, ExchangeClient, SnapshotStore

log = logging.getLogger(__name__)

# The overall deadline of one fetch (every request and retry of it) is its account's poll
# interval, but never under MIN_FETCH_SECONDS (a venue answering in a few seconds is slow, not
# hung, and one fetch is several requests) nor over the service's cap (60 s in the daemon). A
# longer fetch only delays the next attempt: the stale alert does not wait for it.
MIN_FETCH_SECONDS = 10.0
# Snapshots kept in memory while the database refuses writes (all accounts together): about 5 h
# of one account polled every 20 s. Beyond it the oldest is dropped, counted and logged.
MAX_HELD_SNAPSHOTS = 1000
# The clock check evaluates a hair after the deadline so the age is past the level, not on it.
_PAST_DEADLINE = timedelta(milliseconds=5)
# How old the silences a live recompute sees may be: a silence set from the command line mutes
# the live path within a second (a poll always reads its account's silences afresh).
LIVE_SILENCE_READ = timedelta(seconds=1)


def fetch_deadline(poll_interval: timedelta, cap: float) -> float:
    """Seconds one fetch of an account polled every `poll_interval` may take in all."""
    return min(cap, max(MIN_FETCH_SECONDS, poll_interval.total_seconds()))


@dataclass(frozen=True, slots=True)
class WatchedAccount:
    """One configured account: how to reach it, how often, and which alert rules apply."""

    name: str
    client: ExchangeClient
    rules: AlertRules
    poll_interval: timedelta
    # The venue and address its requests go to (one ban window there pauses every account on
    # it); None: not known, its pauses are its own.
    venue_key: str | None = None


class ErrorKind(StrEnum):
    """Why a cycle did not end well (None: it stored its snapshot): the metrics' label, the
    word in the status line and the log."""

    AUTH = "auth"  # the exchange rejected the API key
    PAUSED = "paused"  # the venue banned the address: every account there waits
    UNAVAILABLE = "unavailable"  # the exchange did not answer usably, or not in time
    DATA = "data"  # the exchange answered with data we cannot use
    INTERNAL = "internal"  # a bug in an adapter or the engine
    ALERTS = "alerts"  # the snapshot is stored, but the alert rules could not be evaluated
    STORAGE = "storage"  # the database refused the cycle (and no outage holds it in memory)
    LEASE = "lease"  # another daemon holds the account's lease now
    STALE = "stale"  # judged by the clock: no fresh data in time


@immutable
class CycleReport:
    """What one finished cycle did; `error_kind` is None when it stored a snapshot."""

    account: str
    started_at: datetime
    seconds: float
    snapshot: Snapshot | None
    error_kind: ErrorKind | None
    error: str | None
    notifications: tuple[Notification, ...]
    # An evaluation by the clock while no fresh data came (not a poll: metrics do not count it).
    by_clock: bool = False
    # A recompute of the last fetched state at live marks (not a poll either).
    live: bool = False
    # How the account's marks arrive ("live", "polling: <why>"); None without mark streams.
    stream: str | None = None


class CycleObserver(Protocol):
    """Told about every finished cycle after its transaction (MQTT state, metrics, live views)."""

    def cycle_finished(self, report: CycleReport) -> None:
        """Must not block: queue or set values and return."""
        ...


@immutable
class _Reading:
    """What an evaluation knows of the account: a fresh snapshot, or why there is none."""

    snapshot: Snapshot | None
    changed_tiers: tuple[str, ...] = ()  # symbols whose bracket table the exchange changed
    error: MonitorError | None = None
    kind: ErrorKind | None = None
    message: str | None = None


@immutable
class _Verdict:
    """The alert rules' verdict on a reading, before it is stored."""

    states: dict[str, dict[str, Any]]
    events: tuple[AlertEvent, ...]
    notifications: tuple[Notification, ...]
    kind: ErrorKind | None
    message: str | None


@immutable
class _Concluded:
    """How an evaluation ended: why not well (None: it did), what it queued, whether it committed."""

    kind: ErrorKind | None
    message: str | None
    notifications: tuple[Notification, ...] = ()
    stored: bool = False


@dataclass(slots=True)
class _AccountRuntime:
    account: WatchedAccount
    alert_states: dict[str, dict[str, Any]]
    last_success_at: datetime | None
    last_error: str | None = None
    failures: int = 0
    last_margin_ratio: float | None = None
    alerts_broken: bool = False  # the trader was told that alert evaluation fails
    model: str | None = None  # how the venue pools this account's margin, as last fetched
    watching_since: datetime | None = None
    # When the rules were last evaluated (by a cycle or the clock), and the lock that serialises
    # evaluations so each transition is announced once.
    evaluated_at: datetime | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    fetch_started: datetime | None = None  # a fetch in flight since then
    last_fetch_error: MonitorError | None = None
    deadlines: asyncio.Task[None] | None = None
    # The last state fetched in full, and when it was asked for: live marks re-run it.
    last_state: AccountState | None = None
    state_at: datetime | None = None
    # The worst live figures since the last stored snapshot: stored once its minute is over
    # (or with the next stored snapshot), so a dip between two reconciliations stays on record.
    worst: Snapshot | None = None
    last_stored: Snapshot | None = None


def _blind_alerts(account: str, now: datetime, error: str) -> Notification:
    return Notification(
        id=f"{account}:alert-evaluation:{int(now.timestamp())}",
        account=account,
        rule="alert_evaluation",
        kind=NotificationKind.SYSTEM,
        severity=Severity.CRITICAL,
        title=f"{account}: alerts cannot be evaluated",
        text=(
            f"Account {account}: snapshots are still stored, but no alert rule can be checked "
            f"until this is fixed, so you will not be warned of liquidation risk. Error: {error}. "
            "See the service log; `portfolio-monitor status` shows the latest figures."
        ),
        created_at=now,
        facts={"error": error},
    )


def _nearest(snapshot: Snapshot) -> float:
    distances = [p.distance_to_liquidation for p in snapshot.risk.positions]
    return min((d for d in distances if d is not None), default=float("inf"))


def _worse(a: Snapshot, b: Snapshot) -> bool:
    """`a` is closer to liquidation than `b`: a lower margin ratio, else a smaller distance."""
    if a.risk.margin_ratio is not None and b.risk.margin_ratio is not None:
        return a.risk.margin_ratio < b.risk.margin_ratio
    return _nearest(a) < _nearest(b)


def _pending_worst(
    runtime: _AccountRuntime, stored: Snapshot | None, now: datetime
) -> Snapshot | None:
    """The worst live snapshot to store now: with `stored` when it is worse than that, or on its
    own once its minute is over; None when nothing worse than what is on record waits."""
    worst = runtime.worst
    if worst is None or worst is stored:
        return None
    if stored is not None:
        return worst if _worse(worst, stored) else None
    minute = now.replace(second=0, microsecond=0)
    return worst if worst.taken_at < minute else None


def time_since(started: float) -> timedelta:
    """The monotonic time elapsed since `started`."""
    return timedelta(seconds=time.monotonic() - started)


def error_kind(exc: BaseException) -> ErrorKind:
    """Why a fetch failed, from its error."""
    if isinstance(exc, ExchangeAuthError):
        return ErrorKind.AUTH
    if isinstance(exc, VenuePaused):
        return ErrorKind.PAUSED
    if isinstance(exc, RetryableError | TimeoutError):
        return ErrorKind.UNAVAILABLE
    if isinstance(exc, MonitorError):
        return ErrorKind.DATA
    return ErrorKind.INTERNAL


class _SilenceEnds:
    """Every account's silence end for the live recomputes, read for all accounts at once and at
    most once per `LIVE_SILENCE_READ` (a poll reads its account's afresh). One read per account
    per mark drained the connection pool at 1,000 accounts and looked like a storage outage."""

    def __init__(self, store: SnapshotStore) -> None:
        self._store = store
        self._ends: dict[str, datetime] = {}
        self._read_at: datetime | None = None
        self._lock = asyncio.Lock()

    async def until(self, account: str, now: datetime) -> datetime | None:
        """When `account`'s silence ends as of the last read (None: not silenced)."""
        if self._stale(now):
            async with self._lock:
                if self._stale(now):  # another recompute may have read while this one waited
                    self._read_at = now
                    try:
                        self._ends = await self._store.silence_ends(now)
                    except StorageError as exc:
                        # The silences last read still hold; try again a period later.
                        log.warning("cannot read silences (keeping those last read): %s", exc)
        end = self._ends.get(account)
        return end if end is not None and end > now else None

    def forget(self) -> None:
        """Read again at the next live recompute (a silence was just made or removed here)."""
        self._read_at = None

    def _stale(self, now: datetime) -> bool:
        read_at = self._read_at
        return read_at is None or not read_at <= now < read_at + LIVE_SILENCE_READ


class PollService:
    """Runs poll cycles for the watched accounts; the scheduler decides when."""

    def __init__(
        self,
        store: SnapshotStore,
        clock: Clock,
        sinks: Sequence[str],
        observers: Sequence[CycleObserver] = (),
        *,
        fetch_timeout: float = 60.0,
        outage: StorageOutage | None = None,
        max_held: int = MAX_HELD_SNAPSHOTS,
        stream_health: Callable[[str], str | None] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self.sinks = tuple(sinks)
        self._observers = tuple(observers)
        self._fetch_timeout = fetch_timeout
        self._accounts: dict[str, _AccountRuntime] = {}
        # What the database refused, waiting in memory: snapshots in order (bounded), each
        # account's newest alert state and its alert events since the outage began.
        self._outage = outage
        self._max_held = max_held
        self._held: deque[Snapshot] = deque()
        self._held_states: dict[str, dict[str, dict[str, Any]]] = {}
        self._held_events: dict[str, list[AlertEvent]] = {}
        self._dropped = 0
        self._dropped_outage: datetime | None = None
        if outage is not None:
            outage.on_recovery(self.store_held)
            outage.held = lambda: (len(self._held), self._dropped)
        self._stream_health = stream_health
        self._silences = _SilenceEnds(store)
        # Each venue's watched accounts, sorted (every evaluation asks; watch/unwatch forget it).
        self._peers: dict[str, tuple[str, ...]] = {}
        # Monotonic time the last cycle of any account finished (the systemd watchdog reads it).
        self.last_cycle_finished: float | None = None

    def observe(self, observer: CycleObserver) -> None:
        """Tell `observer` about every cycle from now on too."""
        self._observers = (*self._observers, observer)

    def set_stream_health(self, health: Callable[[str], str | None]) -> None:
        """Where each report learns how its account's marks arrive."""
        self._stream_health = health

    def silences_changed(self) -> None:
        """A silence was made or removed in this process (the dashboard): the live path reads
        silences again at once instead of up to a second later."""
        self._silences.forget()

    def poll_trouble(self, name: str) -> str | None:
        """Why the account's polls fail ("3 failures: <error>"); None while they succeed."""
        runtime = self._accounts.get(name)
        if runtime is None or not runtime.failures:
            return None
        return f"{runtime.failures} failure(s): {runtime.last_error}"

    def last_state(self, name: str) -> AccountState | None:
        """The account's last fetched state (what-if shocks start from it); None before one."""
        runtime = self._accounts.get(name)
        return None if runtime is None else runtime.last_state

    @property
    def accounts(self) -> dict[str, WatchedAccount]:
        """The watched accounts by name."""
        return {name: runtime.account for name, runtime in self._accounts.items()}

    def watched(self) -> KeysView[str]:
        """The names of the watched accounts (a live view, no copy)."""
        return self._accounts.keys()

    async def watch(self, account: WatchedAccount) -> None:
        """Start (or keep) watching an account; its alert state is loaded from the store once."""
        runtime = self._accounts.get(account.name)
        if runtime is not None:
            # A reload changes rules, interval or client but never forgets what is firing.
            runtime.account = account
            self._peers.clear()
            return
        states = await self._store.load_alert_states(account.name)
        last = await self._store.last_snapshot_at(account.name)
        self._accounts[account.name] = _AccountRuntime(
            account, states, last, watching_since=self._clock.now()
        )
        self._peers.clear()

    def unwatch(self, name: str) -> WatchedAccount | None:
        """Stop watching an account; returns it so the caller can close its client."""
        runtime = self._accounts.pop(name, None)
        if runtime is None:
            return None
        self._peers.clear()
        if runtime.deadlines is not None:
            runtime.deadlines.cancel()
        return runtime.account

    def start_deadlines(self, name: str) -> None:
        """Judge this account's staleness by the clock from now on (idempotent); the task ends
        with `unwatch` or `close`."""
        runtime = self._accounts[name]
        if runtime.deadlines is None or runtime.deadlines.done():
            runtime.deadlines = asyncio.create_task(
                self._keep_deadlines(name), name=f"deadlines:{name}"
            )

    async def close(self) -> None:
        """Stop every deadline task (shutdown)."""
        tasks = [r.deadlines for r in self._accounts.values() if r.deadlines is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def poll(self, name: str) -> CycleReport:
        """One full cycle for one account: fetch, judge (evaluate the rules and store the
        outcome), report; never raises for exchange or storage trouble."""
        runtime = self._accounts[name]
        started = time.monotonic()
        now = self._clock.now()
        reading = await self._fetch(runtime, now, started)
        async with runtime.lock:
            snapshot = reading.snapshot
            concluded = await self._conclude(
                runtime,
                self._judged_at(runtime, reading, now),
                reading,
                worst=_pending_worst(runtime, snapshot, now) if snapshot is not None else None,
            )
            if concluded.stored and snapshot is not None:
                # A live recompute during the fetch may have judged later data already.
                runtime.last_success_at = max(
                    snapshot.taken_at, runtime.last_success_at or snapshot.taken_at
                )
                runtime.last_state, runtime.state_at = snapshot.state, snapshot.taken_at
        report = CycleReport(
            account=name,
            started_at=now,
            seconds=time.monotonic() - started,
            snapshot=snapshot if concluded.stored else None,
            error_kind=concluded.kind,
            error=concluded.message,
            notifications=concluded.notifications,
        )
        self._record(runtime, report)
        return report

    async def _fetch(self, runtime: _AccountRuntime, now: datetime, started: float) -> _Reading:
        """Ask the exchange for the account's state within the fetch deadline; a failure is read
        as its error, kind and message (a bug in one adapter must not stop the other accounts)."""
        account = runtime.account
        runtime.fetch_started = now
        try:
            async with asyncio.timeout(fetch_deadline(account.poll_interval, self._fetch_timeout)):
                state = await account.client.fetch_account()
            snapshot = Snapshot(account.name, now, state, assess(state))
            # A first sight of a table is not news; only a change of the exchange's rules is.
            changed = {c.symbol for c in account.client.drain_tier_changes() if c.is_change}
            reading = _Reading(snapshot, changed_tiers=tuple(sorted(changed)))
        except (MonitorError, TimeoutError) as exc:
            message = str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError) and not str(exc):
                message = f"no complete answer within {format_duration(time_since(started))}"
            error = exc if isinstance(exc, MonitorError) else RetryableError(message)
            reading = _Reading(None, error=error, kind=error_kind(exc), message=message)
        except Exception as exc:
            log.exception("account=%s cycle failed unexpectedly", account.name)
            message = f"{type(exc).__name__}: {exc}"
            reading = _Reading(
                None, error=PermanentError(message), kind=ErrorKind.INTERNAL, message=message
            )
        finally:
            if runtime.fetch_started == now:
                runtime.fetch_started = None
        runtime.last_fetch_error = reading.error
        return reading

    def _judged_at(
        self, runtime: _AccountRuntime, reading: _Reading, asked_at: datetime
    ) -> datetime:
        """When a fetch's outcome is judged; the caller holds the account's lock.

        Fresh data is judged as of when it was asked for (a slow first fetch is not stale data),
        and so is a venue-wide pause (the request was answered with a ban, so the pause explains
        the silence from the moment it was asked); any other failed fetch at the time of judging,
        so one that hung for a minute cannot make the data look a minute younger than the clock
        check already found it. Never before an earlier evaluation: debounce and repeat timers
        only move forward."""
        answered = reading.snapshot is not None or isinstance(reading.error, VenuePaused)
        judged = asked_at if answered else self._clock.now()
        if runtime.evaluated_at is not None:
            judged = max(judged, runtime.evaluated_at)
        return judged

    async def _conclude(
        self,
        runtime: _AccountRuntime,
        now: datetime,
        reading: _Reading,
        *,
        live: bool = False,
        worst: Snapshot | None = None,
    ) -> _Concluded:
        """Evaluate the rules and store the outcome in one transaction; the caller holds the
        account's lock. A `live` recompute stores its snapshot only with an alert transition (the
        REST reconciliation stores the rest), and nothing at all when nothing changed."""
        verdict = await self._evaluate(runtime, now, reading, live=live)
        quiet = not verdict.events and not verdict.notifications and worst is None
        if live and quiet and verdict.states == runtime.alert_states:
            runtime.evaluated_at = now
            return _Concluded(verdict.kind, verdict.message, stored=True)
        # The worst live figures since the last record, then this snapshot unless it is a live
        # recompute without an alert transition (the REST reconciliation stores those).
        snapshot = reading.snapshot
        written = snapshot if snapshot is not None and (verdict.events or not live) else None
        to_store = [worst] if worst is not None else []
        if written is not None:
            to_store.append(written)
        refused = await self._store_cycle(runtime.account.name, to_store, verdict)
        if refused is not None:
            return refused
        self._advance(runtime, now, verdict, worst=worst, written=written)
        return _Concluded(verdict.kind, verdict.message, verdict.notifications, stored=True)

    async def _evaluate(
        self, runtime: _AccountRuntime, now: datetime, reading: _Reading, *, live: bool
    ) -> _Verdict:
        """The rules' verdict on `reading` at `now`. A bug or an unreadable stored state must
        not cost the snapshot, nor loop: the old alert state is kept, the data is still stored,
        and the trader is told once that alerts are blind."""
        account = runtime.account
        name = account.name
        try:
            if live:
                silenced_until = await self._silences.until(name, now)
            else:
                silenced_until = await self._store.silenced_until(name, now)
        except StorageError as exc:
            log.warning("account=%s cannot read silences: %s", name, exc)
            silenced_until = None
        observation = Observation(
            account=name,
            poll_interval=account.poll_interval,
            snapshot=reading.snapshot,
            fetch_error=reading.error,
            last_success_at=runtime.last_success_at,
            changed_tier_symbols=reading.changed_tiers,
            silenced_until=silenced_until,
            venue=account.venue_key,
            venue_accounts=self._venue_peers(account.venue_key),
            watching_since=runtime.watching_since,
            live_marks=live,
        )
        try:
            outcome = evaluate(account.rules, runtime.alert_states, observation, now)
        except Exception as exc:
            log.exception("account=%s alert rules could not be evaluated", name)
            message = f"{type(exc).__name__}: {exc}"
            told = () if runtime.alerts_broken else (_blind_alerts(name, now, message),)
            return _Verdict(runtime.alert_states, (), told, ErrorKind.ALERTS, message)
        return _Verdict(
            outcome.states,
            tuple(outcome.events),
            tuple(outcome.notifications),
            reading.kind,
            reading.message,
        )

    async def _store_cycle(
        self, name: str, to_store: Sequence[Snapshot], verdict: _Verdict
    ) -> _Concluded | None:
        """Write the snapshots and the verdict in one transaction, or hold them in memory while
        storage fails; None when committed either way, else why the cycle was not stored."""
        outage = self._outage
        if outage is not None and outage.failing:
            # Known to fail: do not wait (a lock's busy timeout) for it; the probe retries.
            self._hold(name, to_store, verdict, outage)
            return None
        try:
            async with self._store.cycle() as cycle:
                for record in to_store:
                    await cycle.add_snapshot(record)
                await cycle.save_alert_states(name, verdict.states)
                await cycle.add_alert_events(name, verdict.events)
                await cycle.enqueue(verdict.notifications, self.sinks)
        except LeaseLost as exc:
            # Another daemon polls it now: its alerts are that daemon's to send.
            log.warning("account=%s cycle not stored: %s", name, exc)
            return _Concluded(ErrorKind.LEASE, str(exc))
        except StorageError as exc:
            if outage is None:
                log.error("account=%s could not store this cycle: %s", name, exc)
                return _Concluded(ErrorKind.STORAGE, str(exc))
            outage.failed(exc, f"storing a cycle of {name}")
            self._hold(name, to_store, verdict, outage)
        return None

    def _advance(
        self,
        runtime: _AccountRuntime,
        now: datetime,
        verdict: _Verdict,
        *,
        worst: Snapshot | None,
        written: Snapshot | None,
    ) -> None:
        """The committed verdict becomes the account's state in memory."""
        name = runtime.account.name
        runtime.alerts_broken = verdict.kind is ErrorKind.ALERTS
        runtime.alert_states = verdict.states
        if worst is not None:
            runtime.worst = None  # on record now
        if written is not None:
            runtime.last_stored = written
            if runtime.worst is not None and not _worse(runtime.worst, written):
                runtime.worst = None  # what was stored is at least as bad
        runtime.evaluated_at = now
        for event in verdict.events:
            title = event.title.removeprefix(f"{name}: ")  # the account is already named
            log.info("account=%s alert %s %s: %s", name, event.kind, event.severity, title)

    def _hold(
        self,
        name: str,
        snapshots: Sequence[Snapshot],
        verdict: _Verdict,
        outage: StorageOutage,
    ) -> None:
        """Commit a cycle's outcome to memory: the alerts go out now, the rest waits for storage."""
        for notification in verdict.notifications:
            outage.deliver_from_memory(notification)
        if self._dropped_outage != outage.since:
            self._dropped_outage, self._dropped = outage.since, 0
        for snapshot in snapshots:
            self._held.append(snapshot)
            while len(self._held) > self._max_held:
                lost = self._held.popleft()
                self._dropped += 1
                if self._dropped == 1 or self._dropped % self._max_held == 0:
                    log.warning(
                        "storage failing: more than %d snapshots held in memory; dropping the "
                        "oldest (%d dropped so far, this one of %s taken %s)",
                        self._max_held,
                        self._dropped,
                        lost.account,
                        f"{lost.taken_at:%Y-%m-%d %H:%M:%S}",
                    )
        self._held_states[name] = verdict.states
        self._held_events.setdefault(name, []).extend(verdict.events)

    async def store_held(self) -> None:
        """Write what waited in memory, oldest first (the storage probe calls it); raises
        StorageError, keeping the rest, when the database still refuses."""
        while self._held:
            snapshot = self._held[0]
            # An account another daemon took over meanwhile keeps that daemon's record.
            with contextlib.suppress(LeaseLost):
                async with self._store.cycle() as cycle:
                    await cycle.add_snapshot(snapshot)
            self._held.popleft()
        for name in list(self._held_states):
            with contextlib.suppress(LeaseLost):
                async with self._store.cycle() as cycle:
                    await cycle.save_alert_states(name, self._held_states[name])
                    await cycle.add_alert_events(name, self._held_events.get(name, ()))
            self._held_states.pop(name, None)
            self._held_events.pop(name, None)

    def held_at_exit(self) -> int:
        """Snapshots still only in memory (shutdown reports them as lost)."""
        return len(self._held)

    async def recompute(
        self,
        name: str,
        marks: Mapping[str, float],
        *,
        max_state_age: timedelta,
        stream: str | None = None,
    ) -> CycleReport | None:
        """Re-run the account's last fetched state at live `marks` (venue symbol -> price) and
        evaluate its rules on the result; None when there is nothing fit to re-run: no state
        fetched yet, the last fetch failed (the poll judges that), or the positions are older
        than `max_state_age` (a live mark on forgotten positions would look fresh). `stream` is
        how the marks arrive, as the report tells it (None: ask the stream health)."""
        runtime = self._accounts.get(name)
        if runtime is None or runtime.last_state is None or runtime.state_at is None:
            return None
        now = self._clock.now()
        if runtime.last_fetch_error is not None or now - runtime.state_at > max_state_age:
            return None
        started = time.monotonic()
        try:
            state = with_marks(runtime.last_state, marks)
            snapshot = Snapshot(name, now, state, assess(state))
        except Exception:
            log.exception("account=%s recompute at live marks failed", name)
            return None
        async with runtime.lock:
            # Only figures worse than what is on record are worth keeping for later.
            benchmark = runtime.worst or runtime.last_stored
            if benchmark is None or _worse(snapshot, benchmark):
                runtime.worst = snapshot
            evaluated_at = now if runtime.evaluated_at is None else max(now, runtime.evaluated_at)
            concluded = await self._conclude(
                runtime,
                evaluated_at,
                _Reading(snapshot),
                live=True,
                worst=_pending_worst(runtime, None, now),
            )
            if concluded.stored:
                runtime.last_success_at = max(now, runtime.last_success_at or now)
        report = CycleReport(
            account=name,
            started_at=now,
            seconds=time.monotonic() - started,
            snapshot=snapshot if concluded.kind is not ErrorKind.STORAGE else None,
            error_kind=concluded.kind,
            error=concluded.message,
            notifications=concluded.notifications,
            live=True,
            stream=stream,
        )
        self._record(runtime, report)
        return report

    def next_deadline(self, name: str) -> datetime | None:
        """When this account's data next reaches a level (or the end of a debounce) of its stale
        rule without a cycle having judged it since; None when nothing is due."""
        runtime = self._accounts[name]
        rule = next((r for r in runtime.account.rules.rules if r.key is RuleKey.STALE), None)
        if rule is None:
            return None
        last = runtime.last_success_at
        if last is None:
            stored = runtime.alert_states.get(RuleKey.STALE.value, {}).get("memory", {})
            first_seen = stored.get("first_seen") if isinstance(stored, dict) else None
            last = datetime.fromisoformat(first_seen) if first_seen else runtime.watching_since
        if last is None:
            return None
        interval = runtime.account.poll_interval
        due = [last + interval * level + _PAST_DEADLINE for _, level in rule.levels]
        due += [moment + rule.debounce for moment in due if rule.debounce]
        judged = runtime.evaluated_at
        return min((d for d in due if judged is None or d > judged), default=None)

    async def check_deadline(self, name: str) -> CycleReport | None:
        """Evaluate the rules by the clock if a stale deadline has passed with no evaluation since
        (a fetch hanging, or polls falling behind); None when nothing was due."""
        runtime = self._accounts[name]
        async with runtime.lock:
            due = self.next_deadline(name)
            now = self._clock.now()
            if due is None or now < due:
                return None
            fetch_error = runtime.last_fetch_error
            if runtime.fetch_started is not None:
                waited = format_duration(now - runtime.fetch_started)
                fetch_error = RetryableError(f"the exchange has not answered for {waited}")
            message = str(fetch_error) if fetch_error else "no fresh data"
            concluded = await self._conclude(
                runtime,
                now,
                _Reading(None, error=fetch_error, kind=ErrorKind.STALE, message=message),
            )
        report = CycleReport(
            account=name,
            started_at=now,
            seconds=0.0,
            snapshot=None,
            error_kind=concluded.kind,
            error=concluded.message,
            notifications=concluded.notifications,
            by_clock=True,
        )
        for observer in self._observers:
            try:
                observer.cycle_finished(report)
            except Exception:
                log.exception("observer %r failed", observer)
        return report

    def _venue_peers(self, venue_key: str | None) -> tuple[str, ...]:
        """Every watched account on `venue_key`, sorted: the first carries its pause alert."""
        if venue_key is None:
            return ()
        peers = self._peers.get(venue_key)
        if peers is None:
            peers = tuple(
                sorted(n for n, r in self._accounts.items() if r.account.venue_key == venue_key)
            )
            self._peers[venue_key] = peers
        return peers

    async def _keep_deadlines(self, name: str) -> None:
        while name in self._accounts:
            interval = self._accounts[name].account.poll_interval.total_seconds()
            due = self.next_deadline(name)
            # Re-read at least once an interval: a reload may shorten the rule.
            wait = interval
            if due is not None:
                wait = min(wait, (due - self._clock.now()).total_seconds())
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                report = await self.check_deadline(name)
            except Exception:
                log.exception("account=%s stale check by the clock failed", name)
                await asyncio.sleep(min(1.0, interval))
                continue
            if report is not None and report.error_kind is ErrorKind.STORAGE:
                # Nothing was judged (the database refused): try again soon, but do not spin.
                await asyncio.sleep(min(1.0, interval))

    def _record(self, runtime: _AccountRuntime, report: CycleReport) -> None:
        name = report.account
        if self._stream_health is not None and report.stream is None:
            report = replace(report, stream=self._stream_health(name))
        if report.error_kind is None:
            if runtime.failures:
                log.info(
                    "account=%s polling works again after %d failure(s)", name, runtime.failures
                )
            runtime.failures, runtime.last_error = 0, None
        else:
            if runtime.failures == 0:
                log.warning(
                    "account=%s poll failed (%s): %s", name, report.error_kind, report.error
                )
            runtime.failures += 1
            runtime.last_error = report.error_kind
        if report.snapshot is not None:
            risk = report.snapshot.risk
            runtime.last_margin_ratio = risk.margin_ratio
            state = report.snapshot.state
            if state.model.value != runtime.model:
                # Switching Multi-Assets mode or moving to a unified account changes what every
                # figure means (and its currency): worth a line in the log.
                log.info(
                    "account=%s margin model: %s (figures in %s)%s",
                    name,
                    state.model.value,
                    state.asset,
                    "" if runtime.model is None else f", was {runtime.model}",
                )
                runtime.model = state.model.value
            if log.isEnabledFor(logging.DEBUG):  # live marks come here every second per account
                log.debug(
                    "account=%s cycle %.3fs equity=%.2f margin_ratio=%s positions=%d "
                    "notifications=%d",
                    name,
                    report.seconds,
                    risk.equity,
                    "none" if risk.margin_ratio is None else f"{risk.margin_ratio:.4f}",
                    len(risk.positions),
                    len(report.notifications),
                )
        self.last_cycle_finished = time.monotonic()
        for observer in self._observers:
            try:
                observer.cycle_finished(report)
            except Exception:
                log.exception("observer %r failed", observer)

    def status_line(self) -> str:
        """One line for systemd's STATUS=: how many accounts are healthy, the worst ratio."""
        runtimes = list(self._accounts.values())
        failing = [f"{r.account.name} ({r.last_error})" for r in runtimes if r.failures]
        ratios = [r.last_margin_ratio for r in runtimes if r.last_margin_ratio is not None]
        parts = [f"{len(runtimes) - len(failing)}/{len(runtimes)} accounts ok"]
        if ratios:
            parts.append(f"lowest margin ratio {format_percent(min(ratios))}")
        if failing:
            parts.append("failing: " + ", ".join(sorted(failing)[:5]))
        return "; ".join(parts)
