"""What the daemon tests share: the simulator with the end-to-end scenario, and a webhook receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from monitor.simulator.server import SimulatorServer
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
