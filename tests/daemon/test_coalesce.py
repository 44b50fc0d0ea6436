"""The coalescer behind live recomputes: each account at most once per gap, asks folded, a stuck
job holding up only its worker."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from monitor.coalesce import Coalescer


class Jobs:
    """Records when each key's job started; a key in `blocked` waits for `release`."""

    def __init__(self) -> None:
        self.started: list[tuple[str, float]] = []
        self.blocked: set[str] = set()
        self.release = asyncio.Event()
        self.failing: set[str] = set()

    async def run(self, key: str) -> None:
        self.started.append((key, time.monotonic()))
        if key in self.failing:
            raise RuntimeError(f"{key} broke")
        if key in self.blocked:
            await self.release.wait()

    def runs(self, key: str) -> list[float]:
        return [at for name, at in self.started if name == key]


async def test_asks_within_the_gap_fold_into_one_run_and_the_first_runs_at_once() -> None:
    jobs = Jobs()
    queue = Coalescer(jobs.run, min_gap=0.3, workers=2, name="test")
    try:
        asked = time.monotonic()
        queue.ask("a")
        await asyncio.sleep(0.05)
        assert len(jobs.runs("a")) == 1
        assert jobs.runs("a")[0] - asked < 0.05  # no wait for the first
        for _ in range(10):  # a burst of marks within the gap
            queue.ask("a")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        runs = jobs.runs("a")
        assert len(runs) == 2  # the burst made one more run, not ten
        assert runs[1] - runs[0] >= 0.3 - 0.01  # and not before the gap
    finally:
        await queue.close()


async def test_an_ask_while_the_job_runs_makes_it_run_once_more_after_the_gap() -> None:
    jobs = Jobs()
    jobs.blocked.add("a")
    queue = Coalescer(jobs.run, min_gap=0.2, workers=2, name="test")
    try:
        queue.ask("a")
        await asyncio.sleep(0.05)
        queue.ask("a")
        queue.ask("a")
        await asyncio.sleep(0.3)
        assert len(jobs.runs("a")) == 1  # never two runs of one key at once
        jobs.blocked.clear()
        jobs.release.set()
        await asyncio.sleep(0.4)
        runs = jobs.runs("a")
        assert len(runs) == 2  # the asks during the run made one more, and only one
        assert runs[1] - runs[0] >= 0.2 - 0.01
    finally:
        await queue.close()


async def test_a_job_stuck_on_a_write_holds_up_only_its_worker() -> None:
    jobs = Jobs()
    jobs.blocked.add("stuck")
    queue = Coalescer(jobs.run, min_gap=0.1, workers=2, name="test")
    try:
        queue.ask("stuck")
        await asyncio.sleep(0.02)
        for key in ("b", "c", "d"):
            queue.ask(key)
        await asyncio.sleep(0.1)
        assert {key for key, _ in jobs.started} == {"stuck", "b", "c", "d"}
    finally:
        jobs.release.set()
        await queue.close()


async def test_a_forgotten_key_runs_no_more_and_a_failing_job_does_not_stop_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs = Jobs()
    jobs.failing.add("broken")
    queue = Coalescer(jobs.run, min_gap=0.1, workers=1, name="test")
    try:
        with caplog.at_level(logging.ERROR, logger="monitor.coalesce"):
            queue.ask("broken")
            queue.ask("gone")
            queue.forget("gone")
            queue.ask("fine")
            await asyncio.sleep(0.1)
        assert [key for key, _ in jobs.started] == ["broken", "fine"]
        assert "test: the job for broken failed" in caplog.text
        queue.ask("broken")  # the worker still takes work
        await asyncio.sleep(0.2)
        assert len(jobs.runs("broken")) == 2
    finally:
        await queue.close()
