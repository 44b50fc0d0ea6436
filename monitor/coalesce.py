"""Run a job per key at most once per `min_gap`, however often it is asked for.

Live marks ask for a recompute of every account holding a symbol whenever its mark comes, about
once a second per account; account events ask for a REST refresh. An ask while the key's job
waits is folded into it (the job reads the latest data when it runs); an ask while it runs makes
it run once more, `min_gap` after the start of this run.

A few workers take the due keys in order: no task and no timer per ask (a thousand accounts
asking every second made the event loop's timer heap a tenth of the daemon's CPU), and a job that
waits (a write to the database) holds up only its worker.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class _Key:
    __slots__ = ("again", "last", "queued", "running")

    def __init__(self) -> None:
        self.last = -float("inf")  # monotonic start of the last run
        self.queued = False  # waiting to run
        self.running = False
        self.again = False  # asked for while running: run once more


class Coalescer:
    """Runs `job(key)` for the keys asked for, each at most once per `min_gap` seconds, on
    `workers` workers. The job handles its own errors; one that escapes is logged."""

    def __init__(
        self,
        job: Callable[[str], Awaitable[None]],
        *,
        min_gap: float,
        workers: int,
        name: str,
    ) -> None:
        self._job = job
        self._min_gap = min_gap
        self._workers = workers
        self._name = name
        self._keys: dict[str, _Key] = {}
        self._ready: deque[tuple[str, _Key]] = deque()
        # (due, tie-breaker, key, state) of the keys waiting out their gap
        self._waiting: list[tuple[float, int, str, _Key]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def ask(self, key: str) -> None:
        """Run the job for `key` as soon as its gap allows (now, if it has passed)."""
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key()
        if state.queued:
            return
        if state.running:
            state.again = True
            return
        state.queued = True
        due = state.last + self._min_gap
        if due <= time.monotonic():
            self._ready.append((key, state))
            self._wake.set()
        else:
            if not self._waiting or due < self._waiting[0][0]:
                self._wake.set()  # sooner than any worker means to wake
            heapq.heappush(self._waiting, (due, next(self._order), key, state))
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._work(), name=f"{self._name}:{number}")
                for number in range(self._workers)
            ]

    def forget(self, key: str) -> None:
        """Run nothing more for `key` (a run under way finishes)."""
        self._keys.pop(key, None)

    async def close(self) -> None:
        """Stop the workers (a run under way is cancelled)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._keys.clear()
        self._ready.clear()
        self._waiting.clear()

    def _take(self) -> tuple[str, _Key] | None:
        """The next key due, or None."""
        waiting, ready = self._waiting, self._ready
        if waiting:
            now = time.monotonic()
            while waiting and waiting[0][0] <= now:
                _, _, key, state = heapq.heappop(waiting)
                ready.append((key, state))
        while ready:
            key, state = ready.popleft()
            if self._keys.get(key) is state and state.queued:
                return key, state
        return None

    async def _idle(self) -> None:
        """Wait for an ask, or for the first waiting key's gap to pass."""
        self._wake.clear()
        delay = self._waiting[0][0] - time.monotonic() if self._waiting else None
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _work(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                await self._idle()
                continue
            key, state = taken
            state.queued, state.running = False, True
            state.last = time.monotonic()
            try:
                await self._job(key)
            except Exception:
                log.exception("%s: the job for %s failed", self._name, key)
            finally:
                state.running = False
            if state.again and self._keys.get(key) is state:
                state.again = False
                self.ask(key)
            # Let the streams and the other tasks in between two runs.
            await asyncio.sleep(0)
