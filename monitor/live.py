"""Live marks: the shared public mark streams drive recomputes between REST fetches.

Every account follows the mark stream of its venue and address (`MarkStream`, one per key for
all accounts there), subscribed to exactly the symbols the accounts hold as last fetched. A mark
update recomputes each account holding that symbol from its last fetched state (at most once per
account per `min_gap`, the first at once), and its alert rules are evaluated on the result.

While an account's stream is live, REST only reconciles (every `reconcile`); while it is down,
silent, or a held symbol has no fresh mark, the account is polled at its own interval again.
A mark older than `stale_after` is never used: the account then waits for its next poll.

Each account with a private stream (`AccountStream`: Binance's user-data stream, Bybit's private
topics) is refreshed over REST as soon as that stream tells of a change (a fill, a transfer,
funding, a margin change): at most one extra fetch per account per `min_gap`. A private stream
that is down only costs that speed: the account keeps its REST cadence, and its health says
"(account events: down)".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.coalesce import Coalescer
from monitor.domain.units import format_duration
from monitor.ports import AccountStream, Clock, MarkStream, MarkUpdate
from monitor.service import CycleReport, PollService

log = logging.getLogger(__name__)

LIVE = "live"
EVENTS_DOWN = "(account events: down)"
# Recomputes run on this many workers: enough that a few accounts waiting on a database write
# do not hold up the others' alerts, few enough that a round of marks is not a task per account.
RECOMPUTE_WORKERS = 4


def is_live(health: str | None) -> bool:
    """Whether a health text says the account's marks stream (its private stream may be down)."""
    return health is not None and (health == LIVE or health.startswith(f"{LIVE} "))


@dataclass(slots=True)
class _Stream:
    stream: MarkStream
    task: asyncio.Task[None] | None = None
    up: bool = False
    reason: str = "mark stream connecting"
    since: float = field(default_factory=time.monotonic)
    # venue symbol -> (price, venue time, monotonic time received)
    marks: dict[str, tuple[float, datetime, float]] = field(default_factory=dict)
    # venue symbol -> the accounts on this stream holding it, so that a mark finds its accounts
    # without a pass over every account of the daemon; None: holdings changed, rebuilt when
    # the next mark comes (a first round of fetches changes them once per account)
    holders: dict[str, tuple[str, ...]] | None = None


@dataclass(slots=True)
class _Follower:
    key: str
    poll_interval: timedelta
    symbols: frozenset[str] = frozenset()
    rest_at: datetime | None = None  # when the last full fetch that succeeded was asked
    health: str | None = None  # as last reported (a change is logged once)


@dataclass(slots=True)
class _Events:
    """One account's private stream and the REST refreshes its events ask for."""

    stream: AccountStream
    task: asyncio.Task[None] | None = None
    up: bool | None = None  # None: not connected yet
    refresh: asyncio.Task[None] | None = None
    last: float = -float("inf")  # monotonic time of the last refresh asked
    dirty: bool = False


class LiveMarks:
    """Runs the mark streams and the recomputes they cause; also a `CycleObserver` (it learns
    the held symbols from every fetch), the `MarkListener` of its mark streams and the
    `AccountEventListener` of the accounts' private streams (whose events refresh them)."""

    def __init__(
        self,
        service: PollService,
        clock: Clock,
        *,
        reconcile: timedelta,
        stale_after: timedelta,
        min_gap: float = 1.0,
        on_health: Callable[[str, str], None] | None = None,
    ) -> None:
        self._service = service
        self._clock = clock
        self.reconcile = reconcile
        self._stale_after = stale_after.total_seconds()
        self._min_gap = min_gap
        self._on_health = on_health
        self._streams: dict[str, _Stream] = {}
        self._followers: dict[str, _Follower] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._events: dict[str, _Events] = {}
        self._recomputes = Coalescer(
            self._recompute, min_gap=min_gap, workers=RECOMPUTE_WORKERS, name="recompute"
        )

    # --- accounts ----------------------------------------------------------------------------

    def attach(
        self,
        name: str,
        key: str,
        poll_interval: timedelta,
        open_stream: Callable[[], MarkStream],
    ) -> None:
        """Follow `name`'s marks on the stream `key` (opened with `open_stream` if new)."""
        previous = self._followers.get(name)
        if previous is not None and previous.key != key:
            self.detach(name)
            previous = None
        follower = previous or _Follower(key, poll_interval)
        follower.poll_interval = poll_interval
        self._followers[name] = follower
        if key not in self._streams:
            entry = _Stream(open_stream())
            self._streams[key] = entry
            entry.task = asyncio.create_task(entry.stream.run(self), name=f"marks:{key}")
        self._refollow(key)

    def detach(self, name: str) -> None:
        """Stop following `name`; a stream no account uses is closed."""
        self.detach_events(name)
        follower = self._followers.pop(name, None)
        if follower is None:
            return
        self._recomputes.forget(name)
        if any(f.key == follower.key for f in self._followers.values()):
            self._refollow(follower.key)
            return
        entry = self._streams.pop(follower.key, None)
        if entry is not None and entry.task is not None:
            entry.task.cancel()
            closing = asyncio.get_running_loop().create_task(entry.stream.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    def attach_events(self, name: str, open_stream: Callable[[], AccountStream]) -> None:
        """Follow `name`'s private stream (a new one, replacing any it had: its keys may have
        changed), refreshing the account when it tells of a change."""
        self.detach_events(name)
        events = _Events(open_stream())
        self._events[name] = events
        events.task = asyncio.create_task(events.stream.run(self), name=f"account:{name}")

    def detach_events(self, name: str) -> None:
        """Stop following `name`'s private stream."""
        events = self._events.pop(name, None)
        if events is None:
            return
        for task in (events.task, events.refresh):
            if task is not None:
                task.cancel()
        closing = asyncio.get_running_loop().create_task(events.stream.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Stop every stream and recompute (shutdown)."""
        for name in list(self._events):
            self.detach_events(name)
        await self._recomputes.close()
        tasks = [s.task for s in self._streams.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for entry in self._streams.values():
            await entry.stream.close()
        await asyncio.gather(*self._closing, return_exceptions=True)
        self._streams.clear()
        self._followers.clear()

    # --- what the poll schedule asks -----------------------------------------------------------

    def account_health(self, name: str) -> str | None:
        """ "live" while the account's marks stream fresh, else "polling: <why>", followed by
        "(account events: down)" while its private stream is down; None for an account not
        following any stream."""
        return self._with_events(name, self._mark_health(name))

    def _with_events(self, name: str, health: str | None) -> str | None:
        events = self._events.get(name)
        if health is not None and events is not None and events.up is False:
            return f"{health} {EVENTS_DOWN}"
        return health

    def _mark_health(self, name: str) -> str | None:
        follower = self._followers.get(name)
        if follower is None:
            return None
        entry = self._streams[follower.key]
        if not entry.up:
            return f"polling: {entry.reason}"
        if follower.rest_at is None:
            return "polling: waiting for the first full fetch"
        if self._fresh_marks(entry, follower.symbols) is None:
            stale = self._stale_symbols(entry, follower.symbols)
            return f"polling: no fresh mark for {', '.join(stale[:3])}"
        return LIVE

    def rest_due(self, name: str) -> bool:
        """Whether the account's REST fetch should run now: always while its marks do not
        stream, else once the reconciliation interval has passed since the last full fetch."""
        follower = self._followers.get(name)
        if follower is None or self._mark_health(name) != LIVE or follower.rest_at is None:
            return True
        # A poll tick may come a hair early: within half an interval of due counts as due.
        slack = follower.poll_interval / 2
        return self._clock.now() - follower.rest_at >= self.reconcile - slack

    # --- CycleObserver -------------------------------------------------------------------------

    def cycle_finished(self, report: CycleReport) -> None:
        """A full fetch tells which symbols the account holds now."""
        follower = self._followers.get(report.account)
        if follower is None or report.live or report.by_clock or report.snapshot is None:
            if follower is not None:
                # A live recompute carries the health it was made under: no second look.
                self._report_health(
                    report.account, follower, report.stream if report.live else None
                )
            return
        follower.rest_at = report.started_at
        symbols = frozenset(p.symbol for p in report.snapshot.state.positions)
        if symbols != follower.symbols:
            follower.symbols = symbols
            self._refollow(follower.key)
        self._report_health(report.account, follower)

    # --- MarkListener ---------------------------------------------------------------------------

    def marks(self, key: str, updates: Sequence[MarkUpdate]) -> None:
        """New marks: schedule a recompute of every account holding one of the symbols."""
        entry = self._streams.get(key)
        if entry is None:
            return
        received = time.monotonic()
        holders = entry.holders
        if holders is None:
            holders = entry.holders = self._holders(key)
        touched: dict[str, None] = {}
        for update in updates:
            entry.marks[update.symbol] = (update.price, update.at, received)
            touched.update(dict.fromkeys(holders.get(update.symbol, ())))
        for name in touched:
            follower = self._followers.get(name)
            if follower is not None and follower.key == key:
                self._recomputes.ask(name)

    def health(self, key: str, up: bool, reason: str) -> None:
        """A stream came up or went down: its accounts say so (and poll while it is down)."""
        entry = self._streams.get(key)
        if entry is None:
            return
        entry.up, entry.reason, entry.since = up, reason, time.monotonic()
        if not up:
            log.warning("mark stream %s down: %s", key, reason)
        for name, follower in list(self._followers.items()):
            if follower.key == key:
                self._report_health(name, follower)

    # --- AccountEventListener ------------------------------------------------------------------

    def account_event(self, account: str, what: str) -> None:
        """The account changed: refresh it over REST now (at most once per `min_gap`)."""
        events = self._events.get(account)
        if events is None:
            return
        log.debug("account=%s %s event: refreshing over REST", account, what)
        if events.refresh is not None and not events.refresh.done():
            events.dirty = True
            return
        wait = max(0.0, events.last + self._min_gap - time.monotonic())
        events.refresh = asyncio.create_task(self._refresh(account, events, wait))

    def account_stream(self, account: str, up: bool, reason: str) -> None:
        """The account's private stream came up or went down: said once, in the log and in
        the account's health."""
        events = self._events.get(account)
        if events is None or events.up is up:
            return
        previous, events.up = events.up, up
        if up:
            log.info("account=%s account events stream live: fills refresh it at once", account)
        elif previous is None:
            log.warning(
                "account=%s account events stream unavailable: %s; REST keeps its cadence",
                account,
                reason,
            )
        else:
            log.warning(
                "account=%s account events stream down: %s; REST keeps its cadence",
                account,
                reason,
            )
        follower = self._followers.get(account)
        if follower is not None:
            self._report_health(account, follower)

    async def _refresh(self, name: str, events: _Events, wait: float) -> None:
        if wait:
            await asyncio.sleep(wait)
        while True:
            events.dirty = False
            events.last = time.monotonic()
            try:
                await self._service.poll(name)
            except Exception:
                log.exception("account=%s refresh after an account event failed", name)
            if not events.dirty:
                return
            await asyncio.sleep(max(0.0, events.last + self._min_gap - time.monotonic()))

    # --- internals -------------------------------------------------------------------------------

    def _refollow(self, key: str) -> None:
        entry = self._streams.get(key)
        if entry is None:
            return
        entry.holders = None
        wanted = frozenset().union(*(f.symbols for f in self._followers.values() if f.key == key))
        entry.stream.follow(wanted)

    def _holders(self, key: str) -> dict[str, tuple[str, ...]]:
        holders: dict[str, list[str]] = {}
        for name, follower in self._followers.items():
            if follower.key == key:
                for symbol in follower.symbols:
                    holders.setdefault(symbol, []).append(name)
        return {symbol: tuple(names) for symbol, names in holders.items()}

    def _fresh_marks(self, entry: _Stream, symbols: frozenset[str]) -> dict[str, float] | None:
        """The live mark of every symbol in `symbols`, or None when any is missing or stale."""
        marks, received_before = entry.marks, time.monotonic() - self._stale_after
        fresh: dict[str, float] = {}
        for symbol in symbols:
            mark = marks.get(symbol)
            if mark is None or mark[2] < received_before:
                return None
            fresh[symbol] = mark[0]
        return fresh

    def _stale_symbols(self, entry: _Stream, symbols: frozenset[str]) -> list[str]:
        marks, received_before = entry.marks, time.monotonic() - self._stale_after
        return sorted(s for s in symbols if (m := marks.get(s)) is None or m[2] < received_before)

    async def _recompute(self, name: str) -> None:
        follower = self._followers.get(name)
        entry = None if follower is None else self._streams.get(follower.key)
        if follower is None or entry is None:
            return
        marks = self._fresh_marks(entry, follower.symbols) if entry.up else None
        if marks is None:
            return
        try:
            await self._service.recompute(
                name,
                marks,
                max_state_age=2 * self.reconcile + follower.poll_interval,
                stream=self._with_events(name, LIVE),
            )
        except Exception:
            log.exception("account=%s live recompute failed", name)

    def _report_health(self, name: str, follower: _Follower, health: str | None = None) -> None:
        if health is None:
            health = self.account_health(name)
        if health is None or health == follower.health:
            return
        previous, follower.health = follower.health, health
        # Starting up (connecting, first fetch) is not a fallback; leaving "live" is, once.
        starting = previous is None and ("connecting" in health or "waiting" in health)
        if is_live(health) and is_live(previous):
            pass  # only the private stream changed: account_stream said so
        elif is_live(health):
            log.info(
                "account=%s marks stream live: REST reconciles every %s",
                name,
                format_duration(self.reconcile),
            )
        elif is_live(previous) or (previous is None and not starting):
            log.warning(
                "account=%s %s; polling every %s until it recovers",
                name,
                health,
                format_duration(follower.poll_interval),
            )
        if self._on_health is not None:
            self._on_health(name, health)
