"""The poll cycle while the database refuses writes: the data is still judged and published, the
snapshots wait in a bounded memory queue (beyond it the oldest are dropped and counted) and are
written in order once writes work."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from monitor.domain.notification import Notification
from monitor.errors import StorageUnavailable
from monitor.exchanges import ExchangeHub
from monitor.exchanges.resilience import FETCH_RETRY
from monitor.outage import StorageOutage
from monitor.ports import SystemClock
from monitor.service import PollService
from monitor.simulator.server import SimulatorServer
from monitor.storage.migrate import prepare_database
from monitor.storage.repository import Cycle, SqlStore
from tests.daemon.e2e_support import Recorder, snapshot_counts
from tests.daemon.test_service import _watch


class RefusingStore:
    """The real store, whose poll-cycle transactions fail like a full disk while `broken`."""

    def __init__(self, inner: SqlStore) -> None:
        self._inner = inner
        self.broken = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @asynccontextmanager
    async def cycle(self) -> AsyncIterator[Cycle]:
        async with self._inner.cycle() as writer:
            yield writer
            if self.broken:
                raise StorageUnavailable("storing the poll cycle: database or disk is full")


async def test_held_snapshots_are_bounded_counted_and_written_in_order_when_storage_returns(
    tmp_path: Path, sim: SimulatorServer
) -> None:
    store = await prepare_database(f"sqlite:///{tmp_path / 'monitor.db'}")
    refusing = RefusingStore(store)
    outage = StorageOutage(SystemClock(), probe_every=3600)  # the test plays the probe
    sent: list[Notification] = []
    outage.deliver_from_memory = sent.append
    recorder = Recorder()
    service = PollService(
        refusing,  # type: ignore[arg-type]
        SystemClock(),
        ["hook"],
        [recorder],
        outage=outage,
        max_held=3,
    )
    async with ExchangeHub(
        retry=replace(FETCH_RETRY, attempts=1, initial=timedelta(seconds=0.05)), timeout=3
    ) as hub:
        try:
            await _watch(service, store, hub, sim, "main")
            await service.poll("main")
            stored = snapshot_counts(tmp_path)["main"]
            refusing.broken = True
            for _ in range(5):
                await service.poll("main")
            assert outage.failing
            assert outage.cause == "disk full"
            assert [n.rule for n in sent] == ["storage_failing"]
            # Judged and published as usual: only the write waits.
            assert all(r.snapshot is not None and r.error_kind is None for r in recorder.reports)
            assert snapshot_counts(tmp_path)["main"] == stored
            assert outage.held() == (3, 2)  # the bound kept, the two oldest dropped and counted
            assert "2 dropped" in outage.status_text()

            refusing.broken = False
            await service.store_held()
            outage.succeeded()
            assert snapshot_counts(tmp_path)["main"] == stored + 3
            assert service.held_at_exit() == 0
            resolved = sent[-1]
            assert resolved.kind == "resolved"
            assert resolved.facts["dropped_snapshots"] == 2
            await service.poll("main")  # written directly again
            assert snapshot_counts(tmp_path)["main"] == stored + 4
            with contextlib.closing(sqlite3.connect(tmp_path / "monitor.db")) as conn:
                taken = [
                    row[0]
                    for row in conn.execute("SELECT taken_at FROM account_snapshot ORDER BY id")
                ]
            assert taken == sorted(taken)  # the held ones in the order they were taken
        finally:
            await service.close()
            await store.close()
