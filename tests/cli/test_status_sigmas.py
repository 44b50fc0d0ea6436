"""`status` shows the latest account move in sigmas, stored with each snapshot (real SQLite file)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli.app import app
from monitor.domain.codec import state_from_json
from monitor.storage.migrate import prepare_database
from tests.support.vectors import snapshot_of, two_longs_in_sigmas


@pytest.fixture
async def database(tmp_path: Path) -> str:
    """`main` stored with the vector's volatility, `blind` without any."""
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    now = datetime.now(UTC)
    state = state_from_json(two_longs_in_sigmas())
    blind = state_from_json(two_longs_in_sigmas({}))
    store = await prepare_database(url)
    try:
        for name, held in (("main", state), ("blind", blind)):
            await store.register_account(
                name, venue="binance-usdm", asset="USDT", poll_interval=60, now=now
            )
            async with store.cycle() as cycle:
                await cycle.add_snapshot(snapshot_of(held, now, name))
    finally:
        await store.close()
    return url


def test_status_shows_the_account_move_in_sigmas(database: str) -> None:
    url = database
    runner = CliRunner()
    result = runner.invoke(app, ["status", "--database", url, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["account"]: row for row in json.loads(result.stdout)}
    assert rows["main"]["account_move_sigmas"]["daily"] == pytest.approx(2.2337, rel=1e-4)
    assert rows["main"]["account_move_sigmas"]["hourly"] == pytest.approx(6.1962, rel=1e-4)
    assert rows["blind"]["account_move_sigmas"] == {"hourly": None, "daily": None}
    table = runner.invoke(
        app, ["status", "--database", url, "--format", "table"], env={"COLUMNS": "200"}
    )
    assert "-7.7 % = 2.2 \u03c3 1 d, 6.2 \u03c3 1 h" in table.stdout
