"""The poll cycle of one account: fetch -> compute -> evaluate alerts -> store -> publish.

Only the domain and the ports are used here; the daemon plugs in the adapters. One cycle writes
its snapshot, alert state, alert events and outbox rows in one transaction, so a crash or a
cancellation at any point leaves either all of it or none. The in-memory alert state is replaced
only after that transaction commits: a failed write is re-evaluated next cycle from the old state,
so an alert is neither repeated nor forgotten.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from monitor.domain.alerts import AlertEvent, AlertRules, Observation, evaluate
from monitor.domain.errors import (
    ExchangeAuthError,
    MonitorError,
    RetryableError,
    StorageError,
    VenuePaused,
)
from monitor.domain.margin import assess
from monitor.domain.model import Snapshot
from monitor.domain.notification import Notification, NotificationKind, Severity
from monitor.ports import Clock, ExchangeClient, SnapshotStore

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What one finished cycle did; `error_kind` is None when it stored a snapshot."""

    account: str
    started_at: datetime
    seconds: float
    snapshot: Snapshot | None
    error_kind: str | None
    error: str | None
    notifications: tuple[Notification, ...]


class CycleObserver(Protocol):
    """Told about every finished cycle after its transaction (MQTT state, metrics, live views)."""

    def cycle_finished(self, report: CycleReport) -> None:
        """Must not block: queue or set values and return."""
        ...


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


def error_kind(exc: BaseException) -> str:
    """A short label for why a fetch failed (metrics label, logs, status line)."""
    if isinstance(exc, ExchangeAuthError):
        return "auth"
    if isinstance(exc, VenuePaused):
        return "paused"  # the venue banned the address: every account there waits
    if isinstance(exc, RetryableError | TimeoutError):
        return "unavailable"
    if isinstance(exc, MonitorError):
        return "data"
    return "internal"


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
    ) -> None:
        self._store = store
        self._clock = clock
        self.sinks = tuple(sinks)
        self._observers = tuple(observers)
        self._fetch_timeout = fetch_timeout
        self._accounts: dict[str, _AccountRuntime] = {}
        # Monotonic time the last cycle of any account finished (the systemd watchdog reads it).
        self.last_cycle_finished: float | None = None

    @property
    def accounts(self) -> dict[str, WatchedAccount]:
        """The watched accounts by name."""
        return {name: runtime.account for name, runtime in self._accounts.items()}

    async def watch(self, account: WatchedAccount) -> None:
        """Start (or keep) watching an account; its alert state is loaded from the store once."""
        runtime = self._accounts.get(account.name)
        if runtime is not None:
            # A reload changes rules, interval or client but never forgets what is firing.
            runtime.account = account
            return
        states = await self._store.load_alert_states(account.name)
        last = await self._store.last_snapshot_at(account.name)
        self._accounts[account.name] = _AccountRuntime(account, states, last)

    def unwatch(self, name: str) -> WatchedAccount | None:
        """Stop watching an account; returns it so the caller can close its client."""
        runtime = self._accounts.pop(name, None)
        return runtime.account if runtime else None

    async def poll(self, name: str) -> CycleReport:
        """One full cycle for one account; never raises for exchange or storage trouble."""
        runtime = self._accounts[name]
        account = runtime.account
        started = time.monotonic()
        now = self._clock.now()
        snapshot: Snapshot | None = None
        changed_tiers: tuple[str, ...] = ()
        fetch_error: MonitorError | None = None
        kind: str | None = None
        message: str | None = None
        try:
            async with asyncio.timeout(self._fetch_timeout):
                state = await account.client.fetch_account()
            snapshot = Snapshot(account.name, now, state, assess(state))
            # A first sight of a table is not news; only a change of the exchange's rules is.
            changed_tiers = tuple(
                sorted({c.symbol for c in account.client.drain_tier_changes() if c.is_change})
            )
        except (MonitorError, TimeoutError) as exc:
            kind, message = error_kind(exc), str(exc) or type(exc).__name__
            fetch_error = exc if isinstance(exc, MonitorError) else RetryableError(message)
        except Exception as exc:
            # A bug in one adapter or in the engine must not stop the other accounts.
            log.exception("account=%s cycle failed unexpectedly", name)
            kind, message = "internal", f"{type(exc).__name__}: {exc}"
            fetch_error = MonitorError(message)

        try:
            silenced_until = await self._store.silenced_until(account.name, now)
        except StorageError as exc:
            log.warning("account=%s cannot read silences: %s", name, exc)
            silenced_until = None
        observation = Observation(
            account=account.name,
            poll_interval=account.poll_interval,
            snapshot=snapshot,
            fetch_error=fetch_error,
            last_success_at=runtime.last_success_at,
            changed_tier_symbols=changed_tiers,
            silenced_until=silenced_until,
            venue=account.venue_key,
            venue_accounts=self._venue_peers(account.venue_key),
        )
        events: tuple[AlertEvent, ...] = ()
        notifications: tuple[Notification, ...] = ()
        try:
            outcome = evaluate(account.rules, runtime.alert_states, observation, now)
        except Exception as exc:
            # A bug or an unreadable stored state must not cost the snapshot, nor loop: keep the
            # old alert state, store the data, and tell the trader once that alerts are blind.
            log.exception("account=%s alert rules could not be evaluated", name)
            kind, message = "alerts", f"{type(exc).__name__}: {exc}"
            new_states = runtime.alert_states
            if not runtime.alerts_broken:
                notifications = (_blind_alerts(name, now, message),)
        else:
            new_states, events = outcome.states, outcome.events
            notifications = outcome.notifications
        try:
            async with self._store.cycle() as cycle:
                if snapshot is not None:
                    await cycle.add_snapshot(snapshot)
                await cycle.save_alert_states(account.name, new_states)
                await cycle.add_alert_events(account.name, events)
                await cycle.enqueue(notifications, self.sinks)
        except StorageError as exc:
            log.error("account=%s could not store this cycle: %s", name, exc)
            kind, message = "storage", str(exc)
            notifications = ()
        else:
            runtime.alerts_broken = kind == "alerts"
            runtime.alert_states = new_states
            if snapshot is not None:
                runtime.last_success_at = snapshot.taken_at
            for event in events:
                log.info(
                    "account=%s alert %s %s: %s", name, event.kind, event.severity, event.title
                )

        report = CycleReport(
            account=name,
            started_at=now,
            seconds=time.monotonic() - started,
            snapshot=snapshot if kind != "storage" else None,
            error_kind=kind,
            error=message,
            notifications=tuple(notifications),
        )
        self._record(runtime, report)
        return report

    def _venue_peers(self, venue_key: str | None) -> tuple[str, ...]:
        """Every watched account on `venue_key`, sorted: the first carries its pause alert."""
        if venue_key is None:
            return ()
        return tuple(
            sorted(n for n, r in self._accounts.items() if r.account.venue_key == venue_key)
        )

    def _record(self, runtime: _AccountRuntime, report: CycleReport) -> None:
        name = report.account
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
            log.debug(
                "account=%s cycle %.3fs equity=%.2f margin_ratio=%s positions=%d notifications=%d",
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
            parts.append(f"lowest margin ratio {min(ratios) * 100:.0f}%")
        if failing:
            parts.append("failing: " + ", ".join(sorted(failing)[:5]))
        return "; ".join(parts)
