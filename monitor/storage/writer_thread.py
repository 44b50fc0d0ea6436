"""The SQLite store's single writer thread: runs one function per write, in submission order.

A ThreadPoolExecutor hop (`run_in_executor`) costs about twice as much as this: its concurrent
future, idle semaphore and future chaining add work on both threads for every poll cycle, and
a cycle's own SQLite work is only a few hundred microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


class WriterThread:
    """One thread that runs submitted functions one at a time and reports to the caller's loop.

    Like `run_in_executor`: a function whose caller was cancelled before the thread picked it up
    does not run; once started it runs to its end whatever happens to the caller.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._shut_down = False

    async def run(self, work: Callable[[], T]) -> T:
        """Run `work` in the writer thread and return its result (or raise its exception)."""
        if self._shut_down:
            raise RuntimeError(f"{self._name}: the writer thread has been shut down")
        self._ensure_started()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, work))
        return await future

    def shutdown(self) -> None:
        """Let the thread finish the work already submitted, then wait for it to end."""
        self._shut_down = True
        with self._start_lock:
            thread = self._thread
        if thread is not None:
            self._jobs.put(None)
            thread.join()

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                # A daemon thread: a store that is never closed must not keep the process alive;
                # an interrupted write is rolled back by SQLite like any crash.
                thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                thread.start()
                self._thread = thread

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, work = job
            if future.cancelled():
                continue
            try:
                result = work()
            except BaseException as exc:  # noqa: BLE001  (handed to the awaiting caller)
                _report(loop, _set_exception, future, exc)
            else:
                _report(loop, _set_result, future, result)
            # Drop references before blocking for the next job.
            del job, loop, future, work


def _report(loop: asyncio.AbstractEventLoop, setter: Callable[..., None], *args: Any) -> None:
    # A RuntimeError: the caller's loop has closed and nobody is waiting for the outcome.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(setter, *args)


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
