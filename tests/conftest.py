"""Fixtures shared by every test module."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from monitor.simulator.server import SimulatorServer
from tests.support.mosquitto import Mosquitto, mosquitto_binary
from tests.support.simulator import running_simulator
from tests.support.tools import tool_missing

# Each command registers on `monitor.cli.app` when its module is imported, as `monitor.cli.main`
# does for the console script: imported once here for every test that invokes the CLI.
importlib.import_module("monitor.cli.commands")


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's own PORTFOLIO_MONITOR_* settings or systemd variables."""
    import os

    for name in list(os.environ):
        if name.startswith(("PORTFOLIO_MONITOR_", "NOTIFY_SOCKET", "WATCHDOG_", "JOURNAL_STREAM")):
            monkeypatch.delenv(name)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    return


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A running broker for one test; skipped with a reason when mosquitto is not installed."""
    if mosquitto_binary() is None:
        tool_missing("mosquitto binary not installed (apt-get install mosquitto, or run .ci/run)")
    with Mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatorServer]:
    """The simulator's built-in test scenario on a manual clock."""
    async with running_simulator("test") as server:
        yield server
