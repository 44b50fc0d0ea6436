"""Writes poll cycles forever (run as a subprocess and killed with SIGKILL by test_crash)."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from monitor.storage.migrate import prepare_database
from tests.storage.factories import T0, notification, snapshot

POSITIONS = 300


async def main(url: str) -> None:
    store = await prepare_database(url, auto_migrate=True)
    cycle_number = 0
    while True:
        async with store.cycle() as cycle:
            taken_at = T0 + timedelta(seconds=10 * cycle_number)
            await cycle.add_snapshot(snapshot(taken_at=taken_at, positions=POSITIONS))
            await cycle.save_alert_states("main", {"margin": {"cycle": cycle_number}})
            await cycle.enqueue([notification(cycle_number, taken_at)], ["console"])
        cycle_number += 1
        sys.stdout.write(f"{cycle_number}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
