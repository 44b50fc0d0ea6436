"""What the daemon tests share: the simulator with the end-to-end scenario, a webhook receiver, an
SQLite store and an exchange hub that gives up fast."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.exchanges import ExchangeHub
from monitor.exchanges.resilience import FETCH_RETRY
from monitor.simulator.server import SimulatorServer
from monitor.storage.migrate import prepare_database
from monitor.storage.repository import SqlStore
from tests.daemon.e2e_support import SCENARIO
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(SCENARIO, port=0) as server:
        yield server


@pytest.fixture
async def hook() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    """A migrated SQLite file store."""
    opened = await prepare_database(f"sqlite:///{tmp_path / 'monitor.db'}")
    yield opened
    await opened.close()


@pytest.fixture
async def hub() -> AsyncIterator[ExchangeHub]:
    """One attempt per call, a short back-off: an outage shows within the test's few seconds."""
    async with ExchangeHub(
        retry=replace(FETCH_RETRY, attempts=1, initial=timedelta(seconds=0.05)), timeout=3
    ) as opened:
        yield opened
