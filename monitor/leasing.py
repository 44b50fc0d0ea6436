"""Several daemons on one PostgreSQL: this daemon polls only the accounts whose lease it holds.

Every `renew_every` (a sixth of `[database] takeover`) one round renews this daemon's heartbeat
and leases and takes free or expired ones up to its fair share (`storage.leases`); the daemon
then starts polling what it gained, stops what it lost, and hands back what it holds beyond its
share once it stopped polling it (so a daemon that joins later gets accounts from the others: a
simple even split, rounded up, not a perfect balance). When the database cannot be reached for
longer than a lease lasts, every account is stopped: another daemon may hold them by then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from typing import Any

from monitor.domain.errors import MonitorError
from monitor.storage.leases import LeaseBoard, LeaseRound

log = logging.getLogger(__name__)

# How many accounts gained in one round are started at once.
START_CONCURRENCY = 8

Start = Callable[[str], Awaitable[None]]
Stop = Callable[[Collection[str]], Awaitable[None]]


class LeaseKeeper:
    """Keeps this daemon's set of polled accounts equal to the leases it holds."""

    def __init__(
        self,
        board: LeaseBoard,
        accounts: Callable[[], Sequence[str]],
        start: Start,
        stop: Stop,
    ) -> None:
        self.board = board
        self._accounts = accounts
        self._start = start
        self._stop = stop
        self.held: set[str] = set()
        # Accounts being stopped in the background (their poll in flight may take a while):
        # renewals must not wait for it, or this daemon's other leases would lapse meanwhile.
        self._dropping: dict[str, asyncio.Task[None]] = {}
        # Accounts being started in the background (many at once when a daemon dies or joins):
        # likewise, renewals must not wait for them.
        self._starting: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Monotonic time the last successful round began: our leases run until then + ttl.
        self._renewed: float | None = None
        self.last: LeaseRound | None = None

    async def run(self) -> None:
        """A round every `renew_every` forever (until cancelled); the first after one period
        (the daemon runs the first itself, before it says it is ready)."""
        every = self.board.terms.renew_every.total_seconds()
        started = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))
            started = time.monotonic()
            try:
                await self.round()
            except Exception:
                # A bug in starting one account must not end the renewals of all the others.
                log.exception("lease round failed")

    async def round(self) -> None:
        """One round: renew, take, and start or stop polling to match."""
        started = time.monotonic()
        try:
            result = await self.board.round(self._accounts())
        except MonitorError as exc:
            await self._renewal_failed(started, exc)
            return
        self._renewed = started
        self.last = result
        lost = self.held - result.held
        if lost:
            log.warning(
                "leases of %s were taken by another daemon; this one stops polling them",
                ", ".join(sorted(lost)),
            )
            self._drop_soon(lost, release=False)
        # One being started is handed back at a later round, once it runs.
        busy = set(self._dropping) | self._starting
        excess = [name for name in result.excess if name not in busy]
        if excess:
            log.info(
                "handing %s to other daemons (%d live, %d accounts each at most)",
                ", ".join(excess),
                result.live_daemons,
                result.share,
            )
            self._drop_soon(excess, release=True)
        gained = sorted(result.held - self.held - set(result.excess) - busy)
        if gained:
            self._starting.update(gained)
            self._spawn(self._take_all(gained), f"take:{len(gained)}")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _take_all(self, names: Sequence[str]) -> None:
        # A few at a time: a takeover of a hundred accounts must not start them one by one
        # (each reads its alert state), nor all at once (the connection pool).
        gate = asyncio.Semaphore(START_CONCURRENCY)

        async def take(name: str) -> None:
            async with gate:
                try:
                    await self._take(name)
                except Exception:
                    log.exception("account=%s could not be started", name)
                finally:
                    self._starting.discard(name)

        await asyncio.gather(*(take(name) for name in names))

    async def _take(self, name: str) -> None:
        try:
            await self._start(name)
        except MonitorError as exc:
            # Held but not polled would leave the account blind: hand it back for another try.
            log.error("account=%s could not be started (%s); its lease is handed back", name, exc)
            await self._release([name])
            return
        self.held.add(name)
        log.info("account=%s polled by this daemon (%s) from now on", name, self.board.name)

    async def _drop(self, names: Collection[str]) -> None:
        await self._stop(names)
        self.held.difference_update(names)

    def _drop_soon(self, names: Collection[str], *, release: bool) -> None:
        """Stop polling `names` in the background (then hand their leases back if `release`)."""
        gone = sorted(names)
        self.held.difference_update(gone)

        async def drop() -> None:
            try:
                await self._stop(gone)
                if release:
                    await self._release(gone)
            finally:
                for name in gone:
                    self._dropping.pop(name, None)

        task = self._spawn(drop(), f"drop:{','.join(gone)}")
        for name in gone:
            self._dropping[name] = task

    async def stop_starting(self) -> None:
        """Shutdown: start no more accounts (before the scheduler stops)."""
        taking = [task for task in self._tasks if task.get_name().startswith("take:")]
        for task in taking:
            task.cancel()
        await asyncio.gather(*taking, return_exceptions=True)

    async def settle(self) -> None:
        """Wait for the accounts being started or stopped in the background."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _release(self, names: Sequence[str]) -> None:
        try:
            await self.board.release(names)
        except MonitorError as exc:
            log.warning("handing back %s failed (%s); the leases expire by themselves", names, exc)

    async def _renewal_failed(self, started: float, exc: MonitorError) -> None:
        ttl = self.board.terms.ttl.total_seconds()
        renewed = self._renewed
        # Our leases run until the start of the last round that renewed them plus the ttl; a
        # round's remaining time is margin for a database clock ahead of ours.
        lapsed = (
            renewed is None
            or started - renewed >= ttl - self.board.terms.renew_every.total_seconds()
        )
        log.error("renewing account leases failed: %s", exc)
        if lapsed and self.held:
            log.error(
                "leases not renewed for %.0fs: stopping every account (another daemon may hold "
                "them now); taken again when the database answers",
                ttl,
            )
            await self._drop(set(self.held))

    async def forget(self, names: Collection[str]) -> None:
        """Accounts removed from the configuration (already stopped): hand their leases back."""
        gone = sorted(self.held & set(names))
        self.held.difference_update(gone)
        await self._release(gone)

    async def leave(self) -> None:
        """Shutdown (the daemon has stopped polling): hand every lease back at once."""
        await self.stop_starting()
        await self.settle()
        self.held.clear()
        try:
            await self.board.leave()
        except MonitorError as exc:
            log.warning("handing back the leases failed (%s); they expire by themselves", exc)
