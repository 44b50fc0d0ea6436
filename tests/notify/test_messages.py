"""Pure parts: message wording, the console sink, HA discovery payloads and the state document."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from monitor.cli.test_notify import sample_notification
from monitor.domain.notification import NotificationKind, Severity
from monitor.notify.base import fact_lines, plain_text, truncate
from monitor.notify.console.transport import ConsoleSink, log_line
from monitor.notify.mqtt.ha_discovery import SENSORS, discovery_configs, state_document, topic_name
from tests.domain.alerts import builders
from tests.domain.alerts.builders import at, margin_rule, observe, rules, run
from tests.notify.factories import notification, snapshot


def test_fact_lines_use_both_ratio_conventions_and_plain_words() -> None:
    assert fact_lines(notification()) == [
        "Margin ratio (equity / maintenance margin): 142 %, liquidation at 100 %; "
        "the exchange shows 70.4 % (100 % = liquidation)",
        "Nearest liquidation: BTCUSDT at 51,234.5, 11.8 % away from the mark price",
        "The whole account is liquidated if all prices fall 7.7 % together",
        "Equity: 1,234.50 USDT",
    ]


def test_short_account_move_reads_as_a_rise() -> None:
    lines = fact_lines(notification(account_liquidation_move=0.05))
    assert "The whole account is liquidated if all prices rise 5 % together" in lines


def test_missing_facts_are_left_out() -> None:
    bare = notification(
        margin_ratio=None,
        exchange_margin_ratio=None,
        nearest_liquidation_price=None,
        account_liquidation_move=None,
        equity=None,
    )
    assert fact_lines(bare) == []
    assert plain_text(bare) == f"{bare.title}\n\n{bare.text}"


def test_truncate_marks_the_cut() -> None:
    assert truncate("abcdef", 4) == "abc…"
    assert truncate("abc", 4) == "abc"


@pytest.mark.parametrize(
    ("severity", "level"),
    [(Severity.WARNING, logging.WARNING), (Severity.EMERGENCY, logging.CRITICAL)],
)
async def test_console_sink_logs_at_the_severity(
    caplog: pytest.LogCaptureFixture, severity: Severity, level: int
) -> None:
    with caplog.at_level(logging.INFO, logger="monitor.alerts"):
        await ConsoleSink().send(notification(severity=severity, kind=NotificationKind.FIRING))
    (record,) = caplog.records
    assert record.levelno == level
    assert "main: margin ratio 142 %" in record.getMessage()
    assert "ratio 142 % (exchange 70.4 %)" in record.getMessage()


async def test_console_lines_from_the_alert_machine_are_short_and_name_the_account_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Real notifications (fired, escalated, resolved) as the daemon makes them, near liquidation.
    series = [(0, 4.0), (10, 2.34), (20, 1.303), (30, 4.0)]
    results, _ = run(
        rules(margin_rule()),
        [
            (t, observe(builders.snapshot(r, taken_at=at(t), move=-0.0084, liq=57500)))
            for t, r in series
        ],
    )
    notes = [note for result in results for note in result.notifications]
    assert [note.kind.value for note in notes] == ["firing", "firing", "resolved"]
    with caplog.at_level(logging.INFO, logger="monitor.alerts"):
        for note in notes:
            await ConsoleSink().send(note)
    lines = [record.getMessage() for record in caplog.records]
    for line in lines:
        assert len(line) <= 200, line
        assert line.count("main") == 1, line
    assert lines[0] == (
        "[WARNING] firing main: margin ratio WARNING | margin ratio 234 % (exchange: 42.7 %), "
        "fell below warning 300 % (exchange: 33.3 %) | liq BTCUSDT 57,500 (0.86 % away), "
        "account move -0.84 %"
    )
    assert lines[1].startswith("[CRITICAL] firing main: margin ratio CRITICAL (escalated) | ")
    assert "margin ratio 130.3 % (exchange: 76.7 %), fell below critical 150 %" in lines[1]
    assert lines[2].startswith(
        "[CRITICAL] resolved main: margin ratio resolved | margin ratio 400 %"
    )


def test_a_test_notification_logs_without_an_account() -> None:
    note = sample_notification(datetime(2026, 12, 5, tzinfo=UTC))
    assert log_line(note) == (
        "[INFO] test Test notification from portfolio-monitor | If you can read this, alerts "
        "from portfolio-monitor reach this sink"
    )


def test_long_console_lines_drop_whole_figures_never_digits() -> None:
    note = notification(
        nearest_liquidation_symbol="1000000BABYDOGE/USDT:USDT", equity=123456789.123
    )
    note = replace(
        note,
        title="main: margin ratio CRITICAL (escalated)",
        text="Account main: margin ratio 142 % (exchange: 70.4 %), fell below critical 150 % "
        "(exchange: 66.7 %). Nearest liquidation: …",
    )
    line = log_line(note)
    assert len(line) <= 200
    # The equity (last, least essential) goes first; the liquidation stays whole.
    assert "equity" not in line
    assert "liq 1000000BABYDOGE/USDT:USDT 51,234.5 (11.8 % away)" in line


async def test_console_sink_logs_a_resolved_notice_as_information(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="monitor.alerts"):
        await ConsoleSink().send(
            notification(severity=Severity.EMERGENCY, kind=NotificationKind.RESOLVED)
        )
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert "[EMERGENCY] resolved main" in record.getMessage()


def test_discovery_configs() -> None:
    configs = discovery_configs(
        account="sub-2",
        poll_interval=7.5,
        topic_prefix="pm",
        discovery_prefix="ha",
        version="9.9",
        asset="BTC",
        venue="bybit-inverse",
    )
    assert len(configs) == len(SENSORS)
    topics = [topic for topic, _ in configs]
    assert "ha/sensor/portfolio_monitor_sub_2_margin_ratio/config" in topics
    by_key = {
        config["unique_id"].removeprefix("portfolio_monitor_sub_2_"): config
        for _, config in configs
    }
    equity = by_key["equity"]
    assert equity["unit_of_measurement"] == "BTC"
    assert "device_class" not in equity
    assert by_key["margin_ratio"]["unit_of_measurement"] == "%"
    assert by_key["margin_ratio"]["expire_after"] == 23  # ceil(3 x 7.5 s)
    assert by_key["margin_ratio"]["state_topic"] == "pm/sub-2/state"
    assert by_key["margin_ratio"]["device"]["name"] == "Portfolio monitor (bybit-inverse:sub-2)"
    assert all(c["default_entity_id"] == f"sensor.{c['unique_id']}" for _, c in configs)
    assert len({c["unique_id"] for _, c in configs}) == len(configs)


def test_state_document_without_positions_or_ratio() -> None:
    document = state_document(snapshot(margin_ratio=None))
    assert document["margin_ratio"] is None
    assert document["exchange_margin_ratio"] is None
    assert document["nearest_liquidation_symbol"] == "BTCUSDT"


def test_topic_name_has_no_wildcards() -> None:
    assert topic_name("a/b+c#") == "a_b_c_"


def test_figures_near_liquidation_keep_their_digits() -> None:
    lines = fact_lines(
        notification(
            distance_to_liquidation=0.0028,
            account_liquidation_move=-0.0004,
            nearest_liquidation_price=0.00001234,
            nearest_liquidation_symbol="PEPEUSDT",
        )
    )
    assert "Nearest liquidation: PEPEUSDT at 0.00001234, 0.28 % away from the mark price" in lines
    assert "The whole account is liquidated if all prices fall 0.040 % together" in lines


def test_large_prices_and_zero_distance() -> None:
    lines = fact_lines(
        notification(nearest_liquidation_price=2_345_678.9, distance_to_liquidation=0)
    )
    assert "Nearest liquidation: BTCUSDT at 2,345,678.9, 0.0 % away from the mark price" in lines
