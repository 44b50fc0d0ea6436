"""Composition root of `portfolio-monitor run`: config -> adapters -> poll service -> scheduler.

Also the process's life cycle under systemd: READY once config, database and scheduler are up
(not after the first exchange call, so an exchange outage cannot fail the boot), WATCHDOG only
while poll cycles keep finishing, STATUS with a one-line summary, STOPPING on the way out.
SIGTERM/SIGINT stop cleanly; SIGHUP reloads the configuration and keeps every alert state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from monitor import sdnotify
from monitor.config import Settings, load_settings
from monitor.config.database import without_password
from monitor.config.streams import STREAM_STATUS_FILE
from monitor.domain.errors import MonitorError
from monitor.errors import ConfigError, DatabaseInUse, StorageError
from monitor.heap import StartupHeapFreeze
from monitor.leasing import LeaseKeeper
from monitor.live import LiveMarks, is_live
from monitor.metrics import Metrics
from monitor.ports import ExchangeClient, SystemClock
from monitor.scheduling import Scheduler
from monitor.service import CycleObserver, CycleReport, PollService, WatchedAccount
from monitor.web.server import WebServer
from monitor.wiring import Adapters

log = logging.getLogger(__name__)

# How long shutdown waits for an in-flight cycle; with the outbox flush ([notify.delivery]
# flush_timeout, 5 s by default) it stays well inside systemd's TimeoutStopSec=30s.
STOP_GRACE_SECONDS = 8.0
# The cap of one fetch's overall deadline (its poll interval, at least 10 s: service.fetch_deadline).
FETCH_TIMEOUT_SECONDS = 60.0
# How long a reload lets the poll cycle in flight of a removed or changed account finish before
# cancelling it (a cancelled cycle stores nothing).
RELOAD_GRACE_SECONDS = 5.0
RELOAD_RETRY_SECONDS = 30.0
# How long handing an account to another daemon lets its poll in flight finish: short, as the
# account goes unpolled meanwhile (a cancelled cycle stores nothing; the new holder polls at once).
HANDOVER_GRACE_SECONDS = 1.0


class _MetricsObserver:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def cycle_finished(self, report: CycleReport) -> None:
        if report.by_clock:  # a stale check by the clock is not a poll
            return
        if not report.live:  # nor is a recompute at live marks (its figures are gauges)
            self._metrics.observe_poll(report.account, report.seconds, report.error_kind)
        if report.snapshot is not None:
            self._metrics.observe_snapshot(report.snapshot)


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    """Knobs the CLI and the demo turn; the configuration file holds everything else."""

    config_path: Path | None = None
    stop_grace: float = STOP_GRACE_SECONDS
    fetch_timeout: float = FETCH_TIMEOUT_SECONDS
    handle_signals: bool = True
    reload_retry: float = RELOAD_RETRY_SECONDS


class Daemon:
    """One running monitor. `run()` returns the process exit status."""

    def __init__(self, options: DaemonOptions, observers: Sequence[CycleObserver] = ()) -> None:
        self.options = options
        self._extra_observers = list(observers)
        self._stop = asyncio.Event()
        self._settings: Settings | None = None
        self._scheduler = Scheduler()
        self._service: PollService | None = None
        self._metrics = Metrics()
        self._started = time.monotonic()
        self._reloading: asyncio.Task[None] | None = None
        # A SIGHUP not yet acted on: during start-up, or while a reload runs (the file may have
        # changed again since that reload read it).
        self._reload_wanted = False
        self._reload_retry: asyncio.TimerHandle | None = None
        self._up = False  # accounts registered and scheduled: a reload may run
        # PostgreSQL: polls only the accounts whose lease this daemon holds.
        self._keeper: LeaseKeeper | None = None
        self._live: LiveMarks | None = None  # the mark streams, unless [streams] enabled = false
        self._board: StreamBoard | None = None

    def stop(self) -> None:
        """Ask the daemon to shut down cleanly (what SIGTERM does)."""
        self._stop.set()

    async def run(self, settings: Settings | None = None) -> int:
        """Start everything, run until stopped, shut down cleanly; raises ConfigError on bad config.

        `settings` is what the caller already loaded from `options.config_path` (SIGHUP re-reads
        that file); None loads it here.
        """
        if settings is None:
            settings = load_settings(self.options.config_path)
        self._settings = settings
        # Installed before the slow start-up, so an early SIGTERM still shuts down cleanly.
        self._install_signals()
        try:
            await self._serve(settings)
        finally:
            self._remove_signals()
        log.info("stopped")
        return 0

    async def _serve(self, settings: Settings) -> None:
        async with self._runtime(settings) as service:
            self._service = service
            await self._start_accounts(settings)
            self._scheduler.daily("retention", self._prune)
            self._scheduler.start()
            sdnotify.notify("READY=1", f"STATUS={service.status_line()}")
            log.info(
                "monitoring %d account(s); database %s",
                len(settings.accounts),
                without_password(settings.database_url()),
            )
            self._up = True
            if self._reload_wanted:
                self.request_reload()
            watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
            leasing = None
            if self._keeper is not None:
                leasing = asyncio.create_task(self._keeper.run(), name="leases")
            try:
                await self._stop.wait()
            finally:
                if leasing is not None:
                    leasing.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await leasing
                if self._keeper is not None:
                    await self._keeper.stop_starting()
                sdnotify.notify("STOPPING=1", "STATUS=stopping")
                if self._reload_retry is not None:
                    self._reload_retry.cancel()
                log.info("stopping: finishing the poll cycle in flight")
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
                if self._reloading is not None:
                    await asyncio.gather(self._reloading, return_exceptions=True)
                if self._live is not None:
                    await self._live.close()
                    if self._board is not None:
                        self._board.stopped()
                await service.close()
                finished = await self._scheduler.drain(self.options.stop_grace)
                if not finished:
                    log.warning(
                        "a poll cycle was cancelled at shutdown; stored whole or not at all"
                    )
                if self._keeper is not None:
                    # Polls have stopped: the other daemons may take every account now.
                    await self._keeper.leave()

    @contextlib.asynccontextmanager
    async def _runtime(self, settings: Settings) -> AsyncIterator[PollService]:
        """Open every adapter; on exit flush the outbox, say offline, close in reverse order."""
        async with Adapters.open(settings) as adapters:
            self._adapters = adapters
            address = settings.metrics.address()
            if address is not None:
                self._metrics.serve(*address)
            observers: list[CycleObserver] = [
                _MetricsObserver(self._metrics),
                *adapters.observers(),
                *self._extra_observers,
            ]
            service = PollService(
                adapters.store,
                SystemClock(),
                adapters.sink_names,
                observers,
                fetch_timeout=self.options.fetch_timeout,
                outage=adapters.outage,
            )
            service.observe(StartupHeapFreeze(service.watched))
            if settings.streams.enabled:
                board = StreamBoard(settings.state_dir / STREAM_STATUS_FILE, self._metrics)
                self._board = board
                self._live = LiveMarks(
                    service,
                    SystemClock(),
                    reconcile=settings.streams.reconcile_interval,
                    stale_after=settings.streams.stale_after,
                    on_health=board.update,
                )
                service.observe(self._live)
                service.set_stream_health(self._live.account_health)
            dashboard = None
            try:
                dashboard = await self._open_dashboard(settings, adapters, service)
                yield service
            finally:
                if dashboard is not None:
                    await dashboard.stop()
                held = service.held_at_exit()
                if held:
                    log.error(
                        "storage still failing at shutdown: %d snapshot(s) held in memory are lost",
                        held,
                    )
                self._metrics.close()

    async def _open_dashboard(
        self, settings: Settings, adapters: Adapters, service: PollService
    ) -> WebServer | None:
        address = settings.web.address()
        if address is None:
            return None
        live = self._live
        dashboard = WebServer(
            adapters.store,
            self._current,
            stream_health=live.account_health if live is not None else lambda name: None,
            last_state=service.last_state,
            poll_trouble=service.poll_trouble,
            silences_changed=service.silences_changed,
        )
        await dashboard.start(*address)
        return dashboard

    async def _start_accounts(self, settings: Settings) -> None:
        board = self._adapters.leases
        if board is None:
            for name in settings.accounts:
                await self._start_account(settings, name)
            return
        # Several daemons may share this database: every configured account is recorded (a
        # lease names a stored account) and polled by whichever daemon holds its lease.
        for name, account in settings.accounts.items():
            await self._adapters.record_account(name, account)
        self._keeper = LeaseKeeper(
            board, lambda: sorted(self._current().accounts), self._take_account, self._drop_accounts
        )
        await self._keeper.round()

    def _current(self) -> Settings:
        assert self._settings is not None
        return self._settings

    async def _take_account(self, name: str) -> None:
        await self._start_account(self._current(), name)

    async def _drop_accounts(self, names: Collection[str]) -> None:
        """Stop polling accounts another daemon holds now (their MQTT entities stay: the account
        is still watched, by that daemon)."""
        assert self._service is not None
        jobs = [f"poll:{name}" for name in names]
        for job in jobs:
            self._scheduler.remove(job)
        await self._scheduler.settle(jobs, HANDOVER_GRACE_SECONDS)
        for name in names:
            removed = self._service.unwatch(name)
            if self._live is not None:
                self._live.detach(name)
            self._metrics.forget_account(name)
            if removed is not None:
                await self._adapters.close_client(name, removed.client)

    async def _start_account(self, settings: Settings, name: str) -> None:
        assert self._service is not None
        account_settings = settings.accounts[name]
        # The database first: when it refuses (locked), no client has been opened in vain.
        try:
            await self._adapters.register_account(name, account_settings)
        except StorageError as exc:
            if isinstance(exc, DatabaseInUse) or self._up:
                raise  # a reload retries by itself (RELOAD_RETRY_SECONDS)
            # At start, a full disk or a lock must not end the daemon (systemd would restart it
            # in a loop): the account is watched, its first stored snapshot records it, and
            # alerts go out from memory meanwhile.
            self._adapters.outage.failed(exc, f"registering account {name}")
        client = self._adapters.client_for(name, account_settings)
        watched = WatchedAccount(
            name=name,
            client=client,
            rules=self._adapters.rules_for(settings, name),
            poll_interval=account_settings.poll_interval,
            venue_key=self._adapters.venue_key(account_settings),
        )
        try:
            await self._service.watch(watched)
        except BaseException:
            await self._adapters.close_client(name, client)
            raise
        service = self._service
        live = self._live
        if live is not None:
            hub = self._adapters.hub
            heartbeat = settings.streams.heartbeat_timeout.total_seconds()
            live.attach(
                name,
                hub.mark_stream_key(account_settings),
                account_settings.poll_interval,
                lambda: hub.mark_stream(account_settings, heartbeat=heartbeat),
            )
            if settings.streams.account_events:
                # Fills, transfers, funding: the account is fetched at once, not at reconcile.
                live.attach_events(name, lambda: hub.account_stream(name, account_settings))

        async def poll() -> None:
            # While the marks stream, REST only reconciles positions and balances.
            if live is None or live.rest_due(name):
                await service.poll(name)

        self._scheduler.every(f"poll:{name}", account_settings.poll_interval.total_seconds(), poll)
        # Stale by the clock: the alert does not wait for a fetch that hangs.
        service.start_deadlines(name)

    def _forget_account(self, name: str) -> ExchangeClient | None:
        """Drop a removed account's runtime, metrics and MQTT entities; its client to close."""
        assert self._service is not None
        removed = self._service.unwatch(name)
        if self._live is not None:
            self._live.detach(name)
        self._metrics.forget_account(name)
        self._adapters.unregister_account(name)
        return removed.client if removed is not None else None

    async def _prune(self) -> None:
        try:
            await self._adapters.store.prune(datetime.now(UTC))
        except MonitorError as exc:
            log.error("retention prune failed: %s", exc)
        else:
            log.info("retention prune done")

    def _install_signals(self) -> None:
        if not self.options.handle_signals:
            return
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    def _remove_signals(self) -> None:
        if not self.options.handle_signals:
            return
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)

    def request_reload(self) -> None:
        """Re-read the configuration file soon (what SIGHUP does)."""
        self._reload_wanted = True
        if not self._up:
            log.info("SIGHUP during start-up: the configuration is read again once started")
            return
        if self._reloading is not None and not self._reloading.done():
            log.info("SIGHUP during a reload: the configuration is read again after it")
            return
        self._reloading = asyncio.create_task(self._reload_while_wanted(), name="reload")

    async def _reload_while_wanted(self) -> None:
        while self._reload_wanted and not self._stop.is_set():
            self._reload_wanted = False
            await self.reload()

    async def reload(self) -> None:
        """Re-read the configuration; a bad one is rejected and the running one kept."""
        assert self._settings is not None
        assert self._service is not None
        # A reload is also how an operator says "I fixed the sink": held alerts go out now.
        self._adapters.sender.retry_all()
        try:
            new = load_settings(self.options.config_path)
        except ConfigError as exc:
            log.error("reload rejected, keeping the running configuration:\n%s", exc)
            return
        sdnotify.notify("RELOADING=1", "STATUS=reloading configuration")
        try:
            await self._apply(self._settings, new)
        except MonitorError as exc:
            # Partly applied (e.g. the database was locked by a backup while registering a new
            # account): what is scheduled now keeps running, and the reload is retried by
            # itself, or a new account would stay unwatched until someone sends SIGHUP again.
            retry = self.options.reload_retry
            log.error("reload failed part-way: %s; retrying in %gs", exc, retry)
            if self._reload_retry is not None:
                self._reload_retry.cancel()
            self._reload_retry = asyncio.get_running_loop().call_later(retry, self.request_reload)
        else:
            self._settings = new
            log.info("configuration reloaded: %d account(s)", len(new.accounts))
        sdnotify.notify("READY=1", f"STATUS={self._service.status_line()}")

    async def _apply(self, old: Settings, new: Settings) -> None:
        assert self._service is not None
        for changed in _restart_needed(old, new):
            log.warning("reload: [%s] changed; it takes effect after a restart", changed)
        removed = sorted(set(old.accounts) - set(new.accounts))
        for name in removed:
            self._scheduler.remove(f"poll:{name}")
        retired: list[tuple[str, ExchangeClient]] = []
        try:
            for name in sorted(new.accounts):
                current = self._service.accounts.get(name)
                if self._keeper is not None and name not in self._keeper.held:
                    # Leased to another daemon, or free: recorded, so it can be leased.
                    await self._adapters.record_account(name, new.accounts[name])
                    continue
                if current is not None and old.accounts.get(name) == new.accounts[name]:
                    # Same account settings: only the [alerts] defaults may have changed.
                    rules = self._adapters.rules_for(new, name)
                    await self._service.watch(
                        WatchedAccount(
                            name, current.client, rules, current.poll_interval, current.venue_key
                        )
                    )
                    continue
                # Swap in the new client first so no new poll picks up the old one; alert
                # state stays.
                await self._start_account(new, name)
                if current is not None:
                    retired.append((name, current.client))
                log.info("reload: account=%s %s", name, "updated" if current else "added")
        finally:
            # A poll in flight keeps the client it started with, and reports when it ends:
            # closing that client under it fails the cycle (a stale alert for an account just
            # removed), and its report would bring back a removed account's metrics and MQTT
            # state. So let it end first.
            jobs = [f"poll:{name}" for name in [*removed, *(name for name, _ in retired)]]
            await self._scheduler.settle(jobs, RELOAD_GRACE_SECONDS)
            for name in removed:
                client = self._forget_account(name)
                if client is not None:
                    await self._adapters.close_client(name, client)
                log.info("reload: account=%s removed", name)
            if self._keeper is not None:
                await self._keeper.forget(removed)
            for name, client in retired:
                await self._adapters.close_client(name, client)

    async def _watchdog(self) -> None:
        assert self._service is not None
        interval = sdnotify.watchdog_interval()
        tick = min(interval, 5.0) if interval else 5.0
        alive = True
        while True:
            depth = await self._measure_outbox()
            status = self._service.status_line()
            if depth:
                status += f"; {depth} notification(s) waiting for delivery"
            sinks = self._observe_sinks()
            if sinks:
                status = f"{sinks}; {status}"
            storage = self._adapters.outage.status_text()
            self._metrics.storage_ok.set(0 if storage else 1)
            if storage:
                status = f"{storage}; {status}"
            if self._polls_alive():
                if not alive:
                    log.warning("poll cycles finish again; watchdog pings resumed")
                alive = True
                sdnotify.notify("WATCHDOG=1", f"STATUS={status}")
            else:
                if alive:
                    # systemd restarts us after WatchdogSec= without a ping: that is the point.
                    log.error("no poll cycle finished recently; withholding the watchdog ping")
                alive = False
                sdnotify.notify(f"STATUS=stalled: no poll cycle finished recently; {status}")
            await asyncio.sleep(tick)

    def _observe_sinks(self) -> str:
        """Each sink's up/down gauge; the STATUS= clause naming failing sinks ("" if none)."""
        sender = self._adapters.sender
        for name, health in sender.health().items():
            self._metrics.sink_up.labels(name).set(1 if health.ok else 0)
        return sender.status_text()

    async def _measure_outbox(self) -> int | None:
        try:
            depth = await self._adapters.store.depth()
        except MonitorError as exc:
            log.warning("cannot read the outbox depth: %s", exc)
            return None
        self._metrics.outbox_depth.set(depth)
        return depth

    def _polls_alive(self) -> bool:
        assert self._service is not None
        intervals = [a.poll_interval.total_seconds() for a in self._service.accounts.values()]
        last = self._service.last_cycle_finished or self._started
        return cycles_are_finishing(time.monotonic() - last, intervals, self.options.fetch_timeout)


class StreamBoard:
    """Where an account's stream health goes besides the log: the `stream_live` gauge and a
    small JSON file in the state directory that `portfolio-monitor status` reads."""

    # Seconds between two writes of the file per account it holds: 1 ms for one account (a
    # change shows at once), 1 s for a thousand (a write of 1,000 accounts costs ~1 ms).
    WRITE_GAP_PER_ACCOUNT = 0.001

    def __init__(self, path: Path, metrics: Metrics) -> None:
        self._path = path
        self._metrics = metrics
        self._health: dict[str, dict[str, str]] = {}
        self._pending: asyncio.TimerHandle | None = None
        self._written = -float("inf")  # monotonic time of the last write

    def update(self, account: str, health: str) -> None:
        """Record `account`'s health ("live" or "polling: <why>") as of now. The file is
        rewritten at once, or, within `WRITE_GAP_PER_ACCOUNT` seconds per account of its last
        write, once that gap is over (it holds every account: with a thousand of them, one write
        per change cost more than the changes)."""
        self._metrics.stream_live.labels(account).set(1 if is_live(health) else 0)
        self._health[account] = {"stream": health, "since": datetime.now(UTC).isoformat()}
        if self._pending is not None:
            return
        gap = self.WRITE_GAP_PER_ACCOUNT * len(self._health)
        wait = self._written + gap - time.monotonic()
        if wait <= 0:
            self._write()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write()
            return
        self._pending = loop.call_later(wait, self._flush)

    def stopped(self) -> None:
        """The daemon stops: no account's marks stream any more."""
        since = datetime.now(UTC).isoformat()
        self._health = {name: {"stream": "stopped", "since": since} for name in self._health}
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._write()

    def _flush(self) -> None:
        self._pending = None
        self._write()

    def _write(self) -> None:
        self._written = time.monotonic()
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self._path.with_suffix(".tmp")
            # Compact: an indent makes json fall back to its pure-Python encoder (10x the CPU).
            temporary.write_text(json.dumps(self._health, separators=(",", ":"), sort_keys=True))
            temporary.replace(self._path)
        except OSError as exc:
            log.warning("cannot write %s: %s", self._path, exc)


def cycles_are_finishing(
    since_last: float, poll_intervals: Sequence[float], fetch_timeout: float
) -> bool:
    """Whether the watchdog may be pinged: the last cycle finished within two of the longest
    poll intervals plus the fetch timeout (a slow exchange is not a hung daemon). With no
    account there is nothing that could hang."""
    if not poll_intervals:
        return True
    return since_last <= 2 * max(poll_intervals) + fetch_timeout


def _restart_needed(old: Settings, new: Settings) -> list[str]:
    sections = []
    for name in ("database", "metrics", "notify", "state_dir", "streams", "web"):
        if getattr(old, name, None) != getattr(new, name, None):
            sections.append(name)
    return sections
