"""When things run: one poll job per account and a daily retention job (APScheduler 3, B.3).

This is the only module that imports APScheduler, so replacing it with a plain asyncio loop (or
APScheduler 4 once it is stable) touches nothing else. Jobs never overlap (`max_instances=1`), a
stall is caught up with one run, not many (`coalesce`), and a run more than one interval late is
dropped because the next one is due anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class Scheduler:
    """Runs async jobs on intervals and daily; tracks the in-flight runs so shutdown can drain them."""

    def __init__(self) -> None:
        self._scheduler = AsyncIOScheduler(
            timezone=UTC, job_defaults={"max_instances": 1, "coalesce": True}
        )
        # Each run in flight and the id of its job.
        self._running: dict[asyncio.Task[None], str] = {}
        # Runs cancelled on purpose (settle, drain); APScheduler would log them as job errors.
        self._cancelled: set[asyncio.Task[None]] = set()
        self._intervals: dict[str, float] = {}
        self.skipped_runs = 0
        self._draining = False
        self._scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
        self._scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)

    def _on_skipped(self, event: JobExecutionEvent) -> None:
        self.skipped_runs += 1
        log.warning("job=%s still running at its next due time; that run was skipped", event.job_id)

    def _on_missed(self, event: JobExecutionEvent) -> None:
        # After a stall (suspend, GC pause) a run more than one interval late is dropped on
        # purpose: the next one is due anyway.
        log.info("job=%s ran too late after a stall; that run was dropped", event.job_id)

    def _tracked(self, job_id: str, job: Job) -> Job:
        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running[task] = job_id
            try:
                await job()
            except asyncio.CancelledError:
                if not self._draining and task not in self._cancelled:
                    raise
                log.debug("job=%s run cancelled on purpose", job_id)
            finally:
                self._running.pop(task, None)
                self._cancelled.discard(task)

        return run

    def start(self) -> None:
        """Start firing jobs; must be called from inside the running event loop."""
        self._scheduler.start()

    def every(self, job_id: str, interval: float, job: Job, *, first_in: float = 0.0) -> None:
        """Run `job` every `interval` seconds, the first time after `first_in` seconds.

        Re-adding an id with a different interval reschedules it; with the same one it keeps its
        timing (a config reload must not shift or restart healthy polls).
        """
        if self._intervals.get(job_id) == interval and self._scheduler.get_job(job_id):
            self._scheduler.modify_job(job_id, func=self._tracked(job_id, job))
            return
        self._intervals[job_id] = interval
        # Jitter spreads many accounts on one interval over time (rate limits), but never more
        # than a tenth of the interval so a poll is never late by a large fraction.
        self._scheduler.add_job(
            self._tracked(job_id, job),
            "interval",
            seconds=interval,
            id=job_id,
            replace_existing=True,
            next_run_time=datetime.now(UTC) + timedelta(seconds=first_in),
            jitter=min(5.0, interval / 10),
            misfire_grace_time=max(1, round(interval)),
        )

    def daily(self, job_id: str, job: Job, *, hour: int = 3) -> None:
        """Run `job` once a day at `hour`:00 UTC."""
        self._scheduler.add_job(
            self._tracked(job_id, job),
            "cron",
            hour=hour,
            id=job_id,
            replace_existing=True,
            misfire_grace_time=3600,
        )

    def remove(self, job_id: str) -> None:
        """Stop scheduling `job_id` (a run in flight finishes)."""
        self._intervals.pop(job_id, None)
        if self._scheduler.get_job(job_id):
            self._scheduler.remove_job(job_id)

    def job_ids(self) -> set[str]:
        """Ids of every scheduled job."""
        return {job.id for job in self._scheduler.get_jobs()}

    @property
    def in_flight(self) -> int:
        """How many job runs are executing right now."""
        return len(self._running)

    async def settle(self, job_ids: Iterable[str], grace: float) -> None:
        """Wait up to `grace` s for the runs of `job_ids` in flight now, then cancel the rest.

        A config reload calls this before it closes what those runs use (an exchange client) or
        forgets what they would report on (a removed account).
        """
        wanted = set(job_ids)
        pending = [task for task, job_id in self._running.items() if job_id in wanted]
        if not pending:
            return
        _, still = await asyncio.wait(pending, timeout=grace)
        for task in still:
            log.warning("job=%s still running after %.0fs; cancelled", self._running[task], grace)
            self._cancelled.add(task)
            task.cancel()
        await asyncio.gather(*still, return_exceptions=True)

    async def drain(self, grace: float) -> bool:
        """Stop scheduling, wait up to `grace` s for running jobs, cancel the rest.

        Returns True when every run finished on its own. Cancelled runs are awaited, so nothing
        is still writing when this returns.
        """
        self._draining = True
        if self._scheduler.running:
            self._scheduler.pause()
        pending = set(self._running)
        finished = True
        if pending:
            _, still = await asyncio.wait(pending, timeout=grace)
            if still:
                finished = False
                log.warning("cancelling %d job run(s) still in flight at shutdown", len(still))
                for task in still:
                    task.cancel()
                await asyncio.gather(*still, return_exceptions=True)
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        return finished
