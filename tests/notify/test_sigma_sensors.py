"""MQTT state document and Home Assistant sensors of the sigma figures (pure builders)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.domain.codec import state_from_json
from monitor.domain.model import Snapshot
from monitor.notify.mqtt.ha_discovery import discovery_configs, state_document
from tests.support.vectors import snapshot_of, two_longs_in_sigmas

KEYS = (
    "account_move_sigmas_hourly",
    "account_move_sigmas_daily",
    "nearest_sigmas_hourly",
    "nearest_sigmas_daily",
)


def _snapshot(*, volatility: bool = True) -> Snapshot:
    state = state_from_json(two_longs_in_sigmas(None if volatility else {}))
    return snapshot_of(state, datetime(2026, 12, 5, tzinfo=UTC))


def test_state_document_carries_the_account_move_and_the_nearest_distance_in_sigmas() -> None:
    document = state_document(_snapshot())
    assert document["account_move_sigmas_daily"] == pytest.approx(2.2337, rel=1e-4)
    assert document["account_move_sigmas_hourly"] == pytest.approx(6.1962, rel=1e-4)
    # ETH is the nearer in daily sigmas (3.66 against BTC's 6.48), hourly too (9.76 / 19.45).
    assert document["nearest_sigmas_daily"] == pytest.approx(3.6618, rel=1e-4)
    assert document["nearest_sigmas_hourly"] == pytest.approx(9.7649, rel=1e-4)


def test_without_volatility_the_sigma_keys_are_null() -> None:
    document = state_document(_snapshot(volatility=False))
    assert all(document[key] is None for key in KEYS)


def test_a_sensor_per_sigma_figure_in_sigma_units() -> None:
    configs = discovery_configs(
        account="main", poll_interval=10, topic_prefix="pm", discovery_prefix="ha", version="1"
    )
    by_key = {c["unique_id"].removeprefix("portfolio_monitor_main_"): c for _, c in configs}
    for key in KEYS:
        config = by_key[key]
        assert config["unit_of_measurement"] == "\u03c3"
        assert key in config["value_template"]
        assert "json_attributes_topic" not in config
