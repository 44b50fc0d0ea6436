"""Waiting for something to happen: poll a condition until it holds, fail at a deadline.

A test that sleeps a fixed time to let something happen is either slow (the sleep is long enough
for a loaded CI machine) or flaky (it is not). Wait for the condition instead::

    await wait_until(lambda: publisher.connected, 10, "the reconnect")

A fixed sleep stays only where letting time pass IS the behaviour under test (proving that
nothing happens within some time), with a comment saying so.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable


async def wait_until(
    predicate: Callable[[], object],
    within: float,
    what: str,
    log: Callable[[], str] | None = None,
    *,
    every: float = 0.1,
) -> None:
    """Poll `predicate()` (a value, or an awaitable such as a database query) every `every` s
    until it is truthy; AssertionError naming `what` (and `log()`, say a daemon's log) after
    `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        holds = predicate()
        if inspect.isawaitable(holds):
            holds = await holds
        if holds:
            return
        if loop.time() >= deadline:
            break
        await asyncio.sleep(every)
    detail = f"\n--- log ---\n{log()}" if log is not None else ""
    raise AssertionError(f"timed out after {within}s waiting for {what}{detail}")
