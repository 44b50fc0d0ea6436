"""The scheduler runs async jobs on time, never overlaps them, and drains or cancels at shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest

from monitor.scheduling import Scheduler
from tests.support.waiting import wait_until


async def test_interval_job_runs_now_and_repeats() -> None:
    runs: list[float] = []

    async def job() -> None:
        runs.append(time.monotonic())

    scheduler = Scheduler()
    scheduler.every("poll:a", 0.3, job)
    started = time.monotonic()
    scheduler.start()
    await asyncio.sleep(1.0)  # letting time pass is the point: the runs in one second are counted
    assert await scheduler.drain(1)
    assert 3 <= len(runs) <= 5
    assert runs[0] - started < 0.2


async def test_slow_job_is_skipped_not_stacked() -> None:
    running = 0
    peak = 0

    async def slow() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.7)
        running -= 1

    scheduler = Scheduler()
    scheduler.every("poll:slow", 0.2, slow)
    scheduler.start()
    await asyncio.sleep(1.2)  # letting time pass is the point: six due runs, never two at once
    assert await scheduler.drain(2)
    assert peak == 1
    assert scheduler.skipped_runs >= 1


async def test_drain_waits_for_a_cycle_in_flight() -> None:
    finished = asyncio.Event()

    async def job() -> None:
        await asyncio.sleep(0.3)
        finished.set()

    scheduler = Scheduler()
    scheduler.every("poll:a", 10, job)
    scheduler.start()
    await wait_until(lambda: scheduler.in_flight == 1, 5, "the job to start")
    assert await scheduler.drain(2) is True
    assert finished.is_set()


async def test_drain_cancels_after_the_grace_period(caplog: pytest.LogCaptureFixture) -> None:
    cancelled = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    scheduler = Scheduler()
    scheduler.every("poll:stuck", 10, stuck)
    scheduler.start()
    await wait_until(lambda: scheduler.in_flight == 1, 5, "the job to start")
    started = time.monotonic()
    assert await scheduler.drain(0.3) is False
    assert time.monotonic() - started < 2
    assert cancelled.is_set()
    assert scheduler.in_flight == 0
    await asyncio.sleep(0.05)  # the cancelled job's callbacks run: an error would be logged by now
    # A deliberate cancellation at shutdown is not a job error.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_reschedule_and_remove() -> None:
    calls: list[tuple[str, float]] = []

    async def a() -> None:
        calls.append(("a", time.monotonic()))

    async def b() -> None:
        calls.append(("b", time.monotonic()))

    scheduler = Scheduler()
    scheduler.every("poll:a", 0.6, a)
    scheduler.daily("retention", a)
    scheduler.start()
    await wait_until(lambda: len(calls) == 1, 5, "the first run")
    # Re-added mid-interval with the same interval: the job keeps its timing (the next run is
    # one interval after the last, not now) but runs the new function.
    await asyncio.sleep(0.2)
    scheduler.every("poll:a", 0.6, b)
    await wait_until(lambda: len(calls) == 2, 5, "the rescheduled run")
    (_, first), (name, second) = calls
    assert name == "b"
    assert 0.5 < second - first < 0.9
    scheduler.remove("poll:a")
    assert scheduler.job_ids() == {"retention"}
    # Letting more than an interval pass is the point: a removed job never runs again.
    await asyncio.sleep(0.9)
    assert len(calls) == 2
    await scheduler.drain(1)


async def test_settle_waits_for_one_job_and_cancels_it_quietly_after_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ends: dict[str, str] = {}

    def job(name: str, seconds: float) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            try:
                await asyncio.sleep(seconds)
            except asyncio.CancelledError:
                ends[name] = "cancelled"
                raise
            ends[name] = "finished"

        return run

    scheduler = Scheduler()
    scheduler.every("poll:quick", 10, job("quick", 0.2))
    scheduler.every("poll:stuck", 10, job("stuck", 60))
    scheduler.every("poll:other", 10, job("other", 1.5))
    scheduler.start()
    await wait_until(lambda: scheduler.in_flight == 3, 5, "the three jobs to start")
    started = time.monotonic()
    await scheduler.settle(["poll:quick", "poll:stuck"], 0.5)
    assert 0.4 < time.monotonic() - started < 1.5
    assert ends == {"quick": "finished", "stuck": "cancelled"}
    # Another account's cycle is left alone.
    assert scheduler.in_flight == 1
    assert await scheduler.drain(3)
    assert ends["other"] == "finished"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
