"""Pure parts: message wording, the console sink, HA discovery payloads and the state document."""

from __future__ import annotations

import logging

import pytest

from monitor.domain.notification import NotificationKind, Severity
from monitor.notify.base import fact_lines, plain_text, truncate
from monitor.notify.console import ConsoleSink
from monitor.notify.ha_discovery import SENSORS, discovery_configs, state_document, topic_name
from tests.notify.factories import notification, snapshot


def test_fact_lines_use_both_ratio_conventions_and_plain_words() -> None:
    assert fact_lines(notification()) == [
        "Margin ratio (equity / maintenance margin): 142 %, liquidation at 100 %; "
        "the exchange shows 70.4 % (100 % = liquidation)",
        "Nearest liquidation: BTCUSDT at 51,234.5, 11.8 % away from the mark price",
        "The whole account is liquidated if all prices fall 7.7 % together",
        "Equity: 1,234.5 USDT",
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
    assert "Nearest liquidation: BTCUSDT" in record.getMessage()


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
    assert "Nearest liquidation: BTCUSDT at 2,345,678.90, 0.0 % away from the mark price" in lines
