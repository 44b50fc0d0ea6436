"""`alerts` and `silence` against a real SQLite file written the way the daemon writes it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from monitor.cli.app import app
from monitor.domain.alerts import Observation, evaluate
from monitor.storage.migrate import prepare_database
from tests.domain.alerts.builders import POLL, margin_rule, observe, rules, snapshot

runner = CliRunner()
NOW = datetime.now(UTC).replace(microsecond=0)


async def _seed(url: str) -> None:
    store = await prepare_database(url, auto_migrate=True)
    try:
        alert_rules = rules(margin_rule())
        cycles: list[tuple[str, datetime, float]] = [
            ("other", NOW - timedelta(days=8), 2.5),
            ("main", NOW - timedelta(hours=3), 2.5),
            ("main", NOW - timedelta(hours=2), 1.4),
            ("main", NOW - timedelta(hours=1), 4.0),
        ]
        states: dict[str, dict[str, Any]] = {}
        for account, moment, ratio in cycles:
            snap = snapshot(ratio, taken_at=moment)
            snap = type(snap)(account, snap.taken_at, snap.state, snap.risk)
            result = evaluate(
                alert_rules,
                states.get(account, {}),
                Observation(account=account, poll_interval=POLL, snapshot=snap),
                moment,
            )
            states[account] = result.states
            async with store.cycle() as cycle:
                await cycle.add_snapshot(snap)
                await cycle.save_alert_states(account, result.states)
                await cycle.add_alert_events(account, result.events)
                await cycle.enqueue(result.notifications, ["console", "telegram"])
        for entry in await store.due(NOW, 100):
            if entry.sink == "console":
                await store.mark_delivered(entry.id, NOW)
            elif entry.notification.kind.value == "resolved":
                await store.mark_dead(entry.id, "HTTP 401: bot token revoked")
            else:
                await store.mark_failed(entry.id, NOW + timedelta(minutes=5), "timeout")
    finally:
        await store.close()


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    asyncio.run(_seed(url))
    return url


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


class TestAlertsHistory:
    def test_json_lists_events_with_their_deliveries(self, database: str) -> None:
        result = invoke("alerts", "--database", database, "--account", "main", "--format", "json")
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout)
        assert [(r["kind"], r["severity"]) for r in rows] == [
            ("firing", "warning"),
            ("escalated", "critical"),
            ("resolved", "critical"),
        ]
        assert rows[1]["title"] == "main: margin ratio CRITICAL (escalated)"
        assert "fell below critical 150 %" in rows[1]["text"]
        deliveries = {d["sink"]: d for d in rows[0]["deliveries"]}
        assert deliveries["console"]["state"] == "delivered"
        assert deliveries["telegram"]["state"] == "pending"
        assert deliveries["telegram"]["attempts"] == 1
        assert deliveries["telegram"]["last_error"] == "timeout"
        dead = {d["sink"]: d for d in rows[2]["deliveries"]}["telegram"]
        assert (dead["state"], dead["last_error"]) == ("dead", "HTTP 401: bot token revoked")

    def test_since_and_account_filter(self, database: str) -> None:
        recent = json.loads(invoke("alerts", "--database", database, "--format", "json").stdout)
        assert {r["account"] for r in recent} == {"main"}
        older = invoke("alerts", "--database", database, "--since", "30d", "--format", "json")
        assert {r["account"] for r in json.loads(older.stdout)} == {"main", "other"}
        since = (NOW - timedelta(minutes=90)).isoformat()
        last = json.loads(
            invoke("alerts", "--database", database, "--since", since, "--format", "json").stdout
        )
        assert [r["kind"] for r in last] == ["resolved"]

    def test_csv_and_table(self, database: str) -> None:
        result = invoke("alerts", "--database", database, "--format", "csv")
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert [r["kind"] for r in rows] == ["firing", "escalated", "resolved"]
        assert rows[2]["deliveries"] == "console: delivered, telegram: dead (1 tries)"
        table = runner.invoke(
            app, ["alerts", "--database", database, "--format", "table"], env={"COLUMNS": "250"}
        )
        assert table.exit_code == 0
        assert "margin ratio resolved" in table.stdout

    def test_empty_result_says_so(self, database: str) -> None:
        result = invoke("alerts", "--database", database, "--since", "10m", "--format", "table")
        assert result.exit_code == 0
        assert "no alert events since" in result.stderr

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--account", "nobody"], "no stored data for account 'nobody'"),
            (["--since", "yesterday"], "--since: 'yesterday' is neither a duration"),
            (["--since", "2999-01-01T00:00:00"], "is in the future"),
            (["--format", "xml"], "xml"),
        ],
    )
    def test_bad_input_exits_2(self, database: str, args: list[str], message: str) -> None:
        result = invoke("alerts", "--database", database, *args)
        assert result.exit_code == 2
        assert message in result.stderr

    def test_missing_database_is_a_runtime_failure(self, tmp_path: Path) -> None:
        result = invoke("alerts", "--database", f"sqlite:///{tmp_path / 'none.db'}")
        assert result.exit_code == 1
        assert "no database at" in result.stderr

    def test_bad_configuration_exits_78(self, tmp_path: Path) -> None:
        path = tmp_path / "config.toml"
        path.write_text('[alerts.margin_ratio]\ncritical_below = "400%"\n')
        result = invoke("alerts", "--config", str(path))
        assert result.exit_code == 78
        assert "alerts.margin_ratio: critical_below (400%)" in result.stderr


class TestSilence:
    def test_add_list_remove(self, database: str) -> None:
        # The module's NOW is from collection time, minutes ago in a long run.
        asked_at = datetime.now(UTC)
        added = invoke(
            "silence",
            "main",
            "--for",
            "2h",
            "--reason",
            "rebalancing",
            "--database",
            database,
            "--format",
            "json",
        )
        assert added.exit_code == 0, added.output
        silence = json.loads(added.stdout)
        until = datetime.fromisoformat(silence["until"])
        assert (
            timedelta(hours=2) - timedelta(minutes=1)
            < until - asked_at
            < timedelta(hours=2, minutes=1)
        )
        listed = json.loads(
            invoke("silence", "--list", "--database", database, "--format", "json").stdout
        )
        assert [(s["id"], s["account"], s["reason"]) for s in listed] == [
            (silence["id"], "main", "rebalancing")
        ]
        assert (
            invoke(
                "silence", "--list", "other", "--database", database, "--format", "json"
            ).stdout.strip()
            == "[]"
        )
        removed = invoke("silence", "--remove", str(silence["id"]), "--database", database)
        assert removed.exit_code == 0
        assert (
            json.loads(
                invoke("silence", "--list", "--database", database, "--format", "json").stdout
            )
            == []
        )
        again = invoke("silence", "--remove", str(silence["id"]), "--database", database)
        assert again.exit_code == 2
        assert "no silence with id" in again.stderr

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["main"], "give exactly one of"),
            (["main", "--for", "2h", "--list"], "give exactly one of"),
            (["main", "--for", "soon"], "--for: 'soon' is not a duration"),
            (["main", "--for", "0s"], "must last longer than 0s"),
            (["main", "--for", "9999999d"], "--for: '9999999d' ends after the year 9999"),
            (["--for", "1h"], "which ACCOUNT"),
            (["nobody", "--for", "1h"], "unknown account 'nobody'"),
        ],
    )
    def test_bad_input_exits_2(self, database: str, args: list[str], message: str) -> None:
        result = invoke("silence", *args, "--database", database)
        assert result.exit_code == 2, result.output
        assert message in result.stderr

    def test_configured_account_without_data_can_be_silenced(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'fresh.db'}"

        async def migrate() -> None:
            store = await prepare_database(url, auto_migrate=True)
            await store.close()

        asyncio.run(migrate())
        path = tmp_path / "config.toml"
        path.write_text(
            f'[database]\nurl = "{url}"\n[accounts.main]\nvenue = "bybit-linear"\napi_key = "k"\napi_secret = "s"\n'
        )
        result = invoke(
            "silence", "main", "--for", "30m", "--config", str(path), "--format", "json"
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["account"] == "main"

    def test_a_stored_silence_holds_back_notifications(self, database: str) -> None:
        invoke("silence", "main", "--for", "1h", "--database", database)

        async def active() -> datetime | None:
            store = await prepare_database(database)
            try:
                silences = await store.active_silences(datetime.now(UTC), "main")
            finally:
                await store.close()
            return max((s.until for s in silences), default=None)

        until = asyncio.run(active())
        assert until is not None
        now = datetime.now(UTC)
        muted = evaluate(
            rules(margin_rule()), {}, observe(snapshot(1.4), silenced_until=until), now
        )
        assert muted.notifications == ()
        assert muted.events[0].facts["suppressed"] == "silence"
        after = evaluate(
            rules(margin_rule()), muted.states, observe(snapshot(1.4), silenced_until=until), until
        )
        assert [n.kind.value for n in after.notifications] == ["firing"]
