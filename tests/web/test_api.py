"""The JSON API on a real SQLite file: the same rows `history --format json` and
`alerts --format json` print, the latest figures per account, and 400 naming a bad parameter."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from typer.testing import CliRunner, Result

from monitor.cli.app import app
from monitor.config import Settings
from monitor.storage.migrate import prepare_database
from monitor.storage.repository import SqlStore
from monitor.web.server import WebServer
from tests.storage.factories import Event, snapshot

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    """`main`: a snapshot every 20 s for half an hour, one warning firing; `quiet`: nothing."""
    store = await prepare_database(f"sqlite:///{tmp_path / 'monitor.db'}")
    try:
        await store.register_account(
            "main", venue="binance-usdm", asset="USDT", poll_interval=20, now=NOW
        )
        start = NOW - timedelta(minutes=30)
        for i in range(90):
            async with store.cycle() as cycle:
                await cycle.add_snapshot(
                    snapshot("main", start + timedelta(seconds=20 * i), margin_ratio=2.5 + i / 100)
                )
        async with store.cycle() as cycle:
            await cycle.add_alert_events(
                "main", [Event("margin_ratio", "warning", "firing", NOW - timedelta(minutes=5))]
            )
            await cycle.save_alert_states(
                "main",
                {"margin_ratio": {"severity": "warning", "started_at": NOW.isoformat()}},
            )
        yield store
    finally:
        await store.close()


@pytest.fixture
async def client(store: SqlStore, tmp_path: Path) -> AsyncIterator[TestClient[object, object]]:
    settings = Settings(state_dir=tmp_path)
    server = WebServer(store, lambda: settings)
    async with TestClient(TestServer(server.app())) as client:
        yield client


async def _cli(*args: str) -> object:
    # The CLI runs its own event loop: off this test's loop.
    result = await asyncio.to_thread(_invoke, *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


async def test_accounts_gives_both_ratios_the_move_firing_rules_and_age(
    client: TestClient[object, object],
) -> None:
    response = await client.get("/api/accounts")
    assert response.status == 200
    (main,) = await response.json()
    assert main["name"] == "main"
    assert main["margin_ratio"] == pytest.approx(2.5 + 89 / 100)
    assert main["exchange_margin_ratio"] is not None
    assert "account_liquidation_move" in main
    assert main["firing"] == [{"rule": "margin_ratio", "severity": "warning"}]
    # The newest snapshot was taken at NOW (module import, maybe minutes before this test ran).
    since_now = (datetime.now(UTC) - NOW).total_seconds()
    assert 0 <= main["age_seconds"] - since_now < 60


async def test_history_and_alerts_are_the_rows_the_cli_prints(
    client: TestClient[object, object], tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'monitor.db'}"
    response = await client.get("/api/accounts/main/history?since=1h")
    assert response.status == 200
    rows = await response.json()
    assert len(rows) == 90
    assert rows == await _cli(
        "history", "--account", "main", "--since", "1h", "--database", database, "--format", "json"
    )
    response = await client.get("/api/accounts/main/history?since=1h&every=10m")
    assert len(await response.json()) in (3, 4)

    response = await client.get("/api/alerts?since=1d")
    assert response.status == 200
    alerts = await response.json()
    assert [(a["rule"], a["kind"]) for a in alerts] == [("margin_ratio", "firing")]
    assert alerts == await _cli(
        "alerts", "--since", "1d", "--database", database, "--format", "json"
    )


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/alerts?since=yesterday", "since"),
        ("/api/accounts/main/history?since=-1h", "since"),
        ("/api/accounts/main/history?every=90s", "every"),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(
    client: TestClient[object, object], path: str, parameter: str
) -> None:
    response = await client.get(path)
    assert response.status == 400
    assert (await response.json())["error"].startswith(f"{parameter}: ")


async def test_an_unknown_account_is_404_naming_the_stored_ones(
    client: TestClient[object, object],
) -> None:
    response = await client.get("/api/accounts/nope/history")
    assert response.status == 404
    assert "main" in (await response.json())["error"]
