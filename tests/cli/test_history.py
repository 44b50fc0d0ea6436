"""The database commands against real SQLite files: history, status, plot, backup, migrate, prune."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import resource
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli.app import app
from monitor.cli.history import sparkline
from monitor.domain.model import PoolModel
from monitor.storage.migrate import prepare_database
from tests.storage.factories import snapshot

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
async def db(tmp_path: Path) -> str:
    """Two accounts: `main` polled every 20 s up to now (with a dip), `old` silent for a day."""
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    now = datetime.now(UTC)
    store = await prepare_database(url)
    try:
        await store.register_account(
            "main", venue="binance-usdm", asset="USDT", poll_interval=60, now=now
        )
        await store.register_account(
            "old", venue="bybit-linear", asset="USDT", poll_interval=10, now=now
        )
        start = now - timedelta(seconds=20 * 89)
        for i in range(90):
            async with store.cycle() as cycle:
                await cycle.add_snapshot(
                    snapshot(
                        "main",
                        start + timedelta(seconds=20 * i),
                        margin_ratio=1.4 if i == 50 else 3.0 + i / 1000,
                    )
                )
        async with store.cycle() as cycle:
            await cycle.add_snapshot(snapshot("old", now - timedelta(days=1)))
            await cycle.save_alert_states("main", {"margin_ratio": {"severity": "warning"}})
    finally:
        await store.close()
    return url


def test_sparkline_spans_lowest_to_highest() -> None:
    assert sparkline([1.0, 2.0, None, 3.0]) == "▁▅ █"
    assert sparkline([2.0, 2.0]) == "▁▁"
    assert sparkline([]) == ""


def test_history_json_raw_rows(db: str) -> None:
    code, out, _ = invoke("history", "--database", db, "--account", "main", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 90
    assert rows[0]["samples"] == 1
    assert min(r["margin_ratio"] for r in rows) == 1.4


def test_history_every_keeps_worst_ratio_per_bucket(db: str) -> None:
    code, out, _ = invoke(
        "history", "--database", db, "--account", "main", "--every", "1h", "--format", "json"
    )
    assert code == 0
    rows = json.loads(out)
    assert sum(r["samples"] for r in rows) == 90
    assert min(r["margin_ratio_min"] for r in rows) == 1.4
    # Every other bucket never dipped; the dip's own bucket ends on it only if the hour turned
    # within the 20 s after it, so its last value is not asserted.
    assert all(r["margin_ratio"] > 3.0 for r in rows if r["margin_ratio_min"] > 3.0)
    assert sum(r["margin_ratio_min"] == 1.4 for r in rows) == 1


def test_history_csv_and_table(db: str) -> None:
    code, out, _ = invoke(
        "history", "--database", db, "--since", "2d", "--every", "5m", "--format", "csv"
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("account,at,samples,equity")
    assert any(line.startswith("old,") for line in lines[1:])
    code, out, _ = invoke(
        "history", "--database", db, "--account", "main", "--every", "5m", "--format", "table"
    )
    assert code == 0
    assert "margin ratio" in out
    assert "lowest 140 %" in out


def test_position_history(db: str) -> None:
    code, out, _ = invoke(
        "history", "--database", db, "--account", "main", "--symbol", "ETHUSDT", "--format", "json"
    )
    assert code == 0
    rows = json.loads(out)
    assert {r["side"] for r in rows} == {"short"}
    assert rows[0]["distance_to_liquidation"] == pytest.approx((29_000 - 20_500) / 29_000)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account", "nope"], "unknown account 'nope'"),
        (["--since", "2999-01-01T00:00:00"], "in the future"),
        (["--since", "yesterday-ish"], "neither a duration"),
        (["--format", "xml"], "--format: 'xml'"),
        (["--every", "90s"], "whole number of minutes"),
        (["--since", "1h", "--until", "2h"], "must be before"),
        (["--symbol", "DOGEUSDT"], "DOGEUSDT"),
    ],
)
def test_history_bad_input_exits_2(db: str, args: list[str], message: str) -> None:
    code, out, err = invoke("history", "--database", db, *args)
    assert code == 2
    assert message in err
    assert out == ""


def test_history_empty_result_says_so(db: str) -> None:
    code, out, err = invoke(
        "history", "--database", db, "--account", "main", "--since", "3d", "--until", "2d"
    )
    assert code == 0
    assert "no snapshots between" in err
    assert json.loads(out) == []


def test_missing_database_file_is_a_runtime_failure(tmp_path: Path) -> None:
    code, _, err = invoke("history", "--database", f"sqlite:///{tmp_path / 'none.db'}")
    assert code == 1
    assert "no database at" in err


def test_status_reports_stale_account_and_firing_alert(db: str) -> None:
    code, out, _ = invoke("status", "--database", db, "--format", "json")
    assert code == 1  # `old` has not been polled for a day
    rows = {row["account"]: row for row in json.loads(out)}
    assert rows["old"]["stale"] is True
    assert rows["main"]["stale"] is False
    assert rows["main"]["firing"][0]["rule"] == "margin_ratio"
    nearest = rows["main"]["nearest_liquidation"]
    assert nearest["symbol"] == "BTCUSDT"
    assert nearest["distance"] == pytest.approx((58_000 - 41_000) / 58_000)


@pytest.mark.parametrize(("interval", "stale"), [("1h", True), ("1d", False)])
def test_status_uses_the_configured_poll_interval_and_skips_removed_accounts(
    db: str, tmp_path: Path, interval: str, stale: bool
) -> None:
    # `old` was stored with a 10 s interval and is a day old; `main` is no longer configured.
    config = tmp_path / "config.toml"
    config.write_text(
        f'state_dir = "{tmp_path}"\n'
        f'[database]\nurl = "{db}"\n'
        '[accounts.old]\nvenue = "bybit-linear"\napi_key = "k"\napi_secret = "s"\n'
        f'poll_interval = "{interval}"\n'
    )
    code, out, _ = invoke("status", "--config", str(config), "--format", "json")
    rows = {row["account"]: row for row in json.loads(out)}
    assert rows["old"]["stale"] is stale
    assert rows["old"]["configured"] is True
    assert rows["main"]["configured"] is False
    assert code == (1 if stale else 0), out
    table = runner.invoke(
        app, ["status", "--config", str(config), "--format", "table"], env={"COLUMNS": "200"}
    )
    assert "(removed)" in table.stdout


def test_status_fresh_accounts_exit_0(tmp_path: Path, db: str) -> None:
    code, out, _ = invoke("status", "--database", db, "--format", "table")
    assert code == 1
    assert "STALE" in out
    code, out, err = invoke("status", "--database", db, "--format", "csv")
    assert code == 1, err
    rows = {row["account"]: row for row in csv.DictReader(io.StringIO(out))}
    assert set(rows) == {"main", "old"}
    assert rows["old"]["stale"] == "True"
    assert rows["main"]["firing"] == "margin_ratio:warning"
    assert rows["main"]["nearest_symbol"] == "BTCUSDT"
    assert float(rows["main"]["nearest_distance"]) == pytest.approx((58_000 - 41_000) / 58_000)
    assert float(rows["main"]["margin_ratio"]) == pytest.approx(3.089)
    code, _, err = invoke("status", "--database", db, "--format", "xml")
    assert code == 2
    assert "--format" in err


def test_status_exit_0_when_all_fresh(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"

    async def seed() -> None:
        store = await prepare_database(url)
        async with store.cycle() as cycle:
            await cycle.add_snapshot(snapshot("main", datetime.now(UTC)))
        await store.close()

    asyncio.run(seed())
    result = runner.invoke(app, ["status", "--database", url, "--format", "json"])
    assert result.exit_code == 0, result.stdout


def test_backup_is_a_consistent_copy(db: str, tmp_path: Path) -> None:
    source = Path(db.removeprefix("sqlite:///"))
    # A reader holding a transaction open must not block or corrupt the copy.
    with closing(sqlite3.connect(source)) as live:
        live.execute("BEGIN")
        live.execute("SELECT count(*) FROM account_snapshot").fetchone()
        code, out, _ = invoke("backup", "--database", db, str(tmp_path / "copy.db"))
    assert code == 0, out
    with closing(sqlite3.connect(tmp_path / "copy.db")) as copy:
        assert copy.execute("SELECT count(*) FROM account_snapshot").fetchone() == (91,)
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    code, _, err = invoke("backup", "--database", db, str(tmp_path / "copy.db"))
    assert code == 2
    assert "already exists" in err


def _no_file_over_16_kib() -> None:
    # As on a full disk: writes past the limit fail (EFBIG) instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))


def test_a_failed_backup_leaves_no_partial_copy(db: str, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    command = [sys.executable, "-m", "monitor", "backup", "--database", db, str(copy)]
    failed = subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_no_file_over_16_kib,
    )
    assert failed.returncode == 1, failed.stderr
    assert str(copy) in failed.stderr
    # Not a truncated file that looks like a backup and makes the retry say "already exists".
    assert not copy.exists()
    code, out, _ = invoke("backup", "--database", db, str(copy))
    assert code == 0, out


def test_backup_refuses_postgresql() -> None:
    code, _, err = invoke("backup", "--database", "postgresql://u@127.0.0.1/db", "x.db")
    assert code == 2
    assert "pg_dump" in err


def test_migrate_and_prune(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    code, out, _ = invoke("migrate", "--database", url)
    assert code == 0
    assert "upgraded from (empty)" in out
    code, out, _ = invoke("migrate", "--database", url)
    assert "already at" in out
    code, out, _ = invoke("prune", "--database", url)
    assert code == 0
    assert json.loads(out)["snapshots_rolled_up"] == 0


@pytest.mark.parametrize("command", ["migrate", "prune", "backup"])
def test_upkeep_with_an_unusable_url_exits_2(command: str, tmp_path: Path) -> None:
    extra = [str(tmp_path / "copy.db")] if command == "backup" else []
    code, _, err = invoke(command, "--database", "foo://x", *extra)
    assert code == 2
    assert "unsupported database 'foo'" in err


def test_prune_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    code, _, err = invoke("prune", "--database", f"sqlite:///{missing}")
    assert code == 1
    assert "no database at" in err
    assert not missing.exists()


def test_plot_writes_a_png(db: str, tmp_path: Path) -> None:
    output = tmp_path / "ratio.png"
    code, _, err = invoke("plot", "--database", db, "--since", "2d", "--output", str(output))
    assert code == 0, err
    assert output.read_bytes().startswith(b"\x89PNG")
    code, _, err = invoke("plot", "--database", db, "--output", str(tmp_path / "x.jpg"))
    assert code == 2
    assert ".png" in err
    missing = tmp_path / "no-such-dir" / "ratio.png"
    code, _, err = invoke("plot", "--database", db, "--output", str(missing))
    assert code == 2
    assert f"directory {missing.parent} does not exist" in err
    assert "Traceback" not in err


def test_plot_without_matplotlib_says_how_to_install(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "monitor.cli.chart", raising=False)
    code, _, err = invoke("plot", "--database", db, "--output", str(tmp_path / "x.png"))
    assert code == 1
    assert "portfolio-monitor[plot]" in err
    assert not (tmp_path / "x.png").exists()


def test_since_further_back_than_the_calendar_means_everything(db: str) -> None:
    # 9999999 days reach before year 1; that is "all of it", not an OverflowError traceback.
    code, everything, err = invoke(
        "history", "--database", db, "--since", "9999999d", "--format", "json"
    )
    assert code == 0, err
    _, two_days, _ = invoke("history", "--database", db, "--since", "2d", "--format", "json")
    assert len(json.loads(everything)) >= len(json.loads(two_days)) > 0


def test_silence_remove_of_an_id_beyond_64_bits_is_bad_input(db: str) -> None:
    code, _, err = invoke("silence", "--database", db, "--remove", str(2**64))
    assert code == 2
    assert f"no silence with id {2**64}" in err


def test_silence_prints_the_format_asked_for(db: str) -> None:
    code, out, _ = invoke("silence", "main", "--for", "1h", "--database", db, "--format", "csv")
    assert code == 0
    header, row = out.splitlines()
    assert header == "id,account,until,remaining,created_at,reason"
    assert row.startswith("1,main,")


def test_status_names_a_pooled_accounts_currency_and_model(tmp_path: Path) -> None:
    # Configured as USDT, but the venue pools it: its figures are USD, and status says so.
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    now = datetime.now(UTC)

    async def fill() -> None:
        store = await prepare_database(url)
        try:
            await store.register_account(
                "uta", venue="bybit-linear", asset="USDT", poll_interval=60, now=now
            )
            single = snapshot("uta", now - timedelta(seconds=30))
            pooled = snapshot("uta", now)
            pooled = replace(
                pooled, state=replace(pooled.state, asset="USD", model=PoolModel.UNIFIED)
            )
            for item in (single, pooled):
                async with store.cycle() as cycle:
                    await cycle.add_snapshot(item)
        finally:
            await store.close()

    asyncio.run(fill())
    code, out, _ = invoke("status", "--database", url, "--format", "json")
    assert code == 0, out
    [row] = json.loads(out)
    assert (row["asset"], row["model"]) == ("USD", "unified")
    table = runner.invoke(
        app, ["status", "--database", url, "--format", "table"], env={"COLUMNS": "200"}
    )
    assert "USD (unified)" in table.stdout
