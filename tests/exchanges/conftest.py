"""A running simulator with the adapters' scenario, and clients for its accounts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from monitor.exchanges import ExchangeHub, VenueClient
from monitor.retry import RetryPolicy
from monitor.simulator.server import SimulatorServer
from tests.exchanges.scenario import SCENARIO
from tests.support.simulator import account_settings, running_simulator

# Short waits so fault tests finish quickly; the logic is the same as production's.
TEST_RETRY = RetryPolicy(
    initial=timedelta(seconds=0.05),
    maximum=timedelta(seconds=0.1),
    attempts=3,
    max_wait=timedelta(seconds=1),
)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with running_simulator(SCENARIO) as server:
        yield server


@pytest.fixture
async def hub() -> AsyncIterator[ExchangeHub]:
    # ccxt's pacing (tens of ms per request) only slows a loopback test down.
    async with ExchangeHub(retry=TEST_RETRY, timeout=1.0, rate_limit=False) as exchange_hub:
        yield exchange_hub


ClientFactory = Callable[..., VenueClient]


@pytest.fixture
def client_for(sim: SimulatorServer, hub: ExchangeHub) -> ClientFactory:
    def make(account: str, venue: str = "", asset: str = "", **overrides: object) -> VenueClient:
        fields = {**overrides, **({"asset": asset} if asset else {})}
        settings = account_settings(sim, account, venue or None, **fields)
        return hub.client_for(account, settings)

    return make
