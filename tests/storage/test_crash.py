"""kill -9 in the middle of writing: every stored snapshot is complete, none half-written."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from monitor.storage.migrate import prepare_database
from monitor.storage.models import AccountSnapshot, AlertState, Outbox, PositionSnapshot
from tests.storage.crash_writer import POSITIONS

ROOT = Path(__file__).resolve().parents[2]


def run_and_kill(url: str, seed: int) -> int:
    """Start the writer, let it commit a few cycles, SIGKILL it at a random moment."""
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.crash_writer", url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    first = writer.stdout.readline()
    assert first.strip().isdigit(), writer.stderr.read() if writer.stderr else first
    time.sleep(random.Random(seed).uniform(0.05, 0.4))
    writer.send_signal(signal.SIGKILL)
    out, _ = writer.communicate(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    lines = [first, *out.splitlines()]
    return int(lines[-1])


async def test_killed_writer_leaves_whole_cycles_only(db_url: str) -> None:
    runs, confirmed, stored, longest_run = 2, 0, 0, 0
    for seed in range(runs):
        confirmed += run_and_kill(db_url, seed)
        store = await prepare_database(db_url, auto_migrate=True)
        try:
            async with store.reading("verify") as conn:
                per_snapshot = (
                    await conn.execute(
                        select(AccountSnapshot.id, func.count(PositionSnapshot.ordinal))
                        .outerjoin(
                            PositionSnapshot, PositionSnapshot.snapshot_id == AccountSnapshot.id
                        )
                        .group_by(AccountSnapshot.id)
                    )
                ).all()
                outbox_rows = await conn.scalar(select(func.count()).select_from(Outbox))
                state = await conn.scalar(select(AlertState.state))
                if store.is_sqlite:
                    integrity = await conn.exec_driver_sql("PRAGMA integrity_check")
                    assert integrity.scalar() == "ok"
        finally:
            await store.close()
        assert all(positions == POSITIONS for _, positions in per_snapshot), per_snapshot
        # Every cycle a writer saw committed is there; at most the one in flight per run too.
        assert confirmed <= len(per_snapshot) <= confirmed + seed + 1
        # The alert state and the queued notification were written with each snapshot, in the same
        # transaction: the state is the last whole cycle's, and every cycle queued its one row (a
        # notification replayed by the next run has the same id and is queued once).
        this_run = len(per_snapshot) - stored
        stored, longest_run = len(per_snapshot), max(longest_run, this_run)
        assert state == {"cycle": this_run - 1}
        assert outbox_rows == longest_run
    assert confirmed > 0
