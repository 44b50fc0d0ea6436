"""`status` says which positions have no effective stop, from the stops stored with each
position snapshot (a real SQLite file, migrated to head)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from monitor.cli.app import app
from monitor.domain.codec import state_from_json
from monitor.domain.margin import assess
from monitor.domain.model import Snapshot
from monitor.storage import queries
from monitor.storage.migrate import prepare_database
from tests.support.vectors import VECTOR_DIR, load

CASES = load(VECTOR_DIR / "stops" / "binance_usdm_cross_two_longs.json")["cases"]


def test_status_names_positions_without_an_effective_stop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stops.db'}"
    # Case 1: BTC has no stop; ETH's trailing stop (1 150) lies beyond its liquidation price.
    state = state_from_json(CASES[1]["state"])

    async def seed() -> queries.StoredSnapshot | None:
        store = await prepare_database(url)
        try:
            async with store.cycle() as cycle:
                await cycle.add_snapshot(Snapshot("main", datetime.now(UTC), state, assess(state)))
            return await queries.latest_snapshot(store, "main")
        finally:
            await store.close()

    stored = asyncio.run(seed())
    assert stored is not None
    assert [(p.stop_status, p.stop_price) for p in stored.positions] == [
        ("none", None),
        ("beyond_liquidation", 1150.0),
    ]
    result = CliRunner().invoke(app, ["status", "--database", url, "--format", "json"])
    assert result.exit_code == 0, result.stdout
    (row,) = json.loads(result.stdout)
    assert row["stops"] == {
        "counts": {"none": 1, "beyond_liquidation": 1},
        "without_effective_stop": ["BTCUSDT long", "ETHUSDT long"],
    }
    table = CliRunner().invoke(
        app, ["status", "--database", url, "--format", "table"], env={"COLUMNS": "200"}
    )
    assert "1 without stop, 1 beyond liq." in table.stdout
