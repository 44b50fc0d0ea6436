"""Home Assistant: one sensor per account counts the positions without an effective stop."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from monitor.domain.codec import state_from_json
from monitor.domain.margin import assess
from monitor.domain.model import Snapshot
from monitor.notify.mqtt.ha_discovery import discovery_configs, state_document
from tests.support.vectors import VECTOR_DIR, load

CASES = load(VECTOR_DIR / "stops" / "binance_usdm_cross_two_longs.json")["cases"]


def _document(case: int, *, orders: bool = True) -> dict[str, object]:
    data = copy.deepcopy(CASES[case]["state"])
    if not orders:
        del data["protective_orders"]
    state = state_from_json(data)
    taken = datetime(2026, 12, 5, tzinfo=UTC)
    return state_document(Snapshot("main", taken, state, assess(state)))


def test_state_counts_positions_without_an_effective_stop() -> None:
    # Case 1: BTC has no stop, ETH's stop lies beyond its liquidation price: both unprotected.
    document = _document(1)
    assert document["positions_without_stop"] == 2
    assert document["stops_beyond_liquidation"] == 1
    assert document["unprotected_positions"] == "BTCUSDT long, ETHUSDT long"
    # Case 0: BTC fully stopped, ETH partly: both have a stop that fires.
    assert _document(0)["positions_without_stop"] == 0
    # Orders not read: unknown, not "all fine".
    assert _document(0, orders=False)["positions_without_stop"] is None


def test_the_sensor_is_discovered_with_the_unprotected_positions_as_attributes() -> None:
    configs = dict(
        discovery_configs(
            account="main",
            poll_interval=10,
            topic_prefix="portfolio_monitor",
            discovery_prefix="homeassistant",
            version="1",
        )
    )
    config = configs["homeassistant/sensor/portfolio_monitor_main_positions_without_stop/config"]
    assert config["name"] == "Positions without effective stop"
    assert "unit_of_measurement" not in config
    assert "unprotected_positions" in config["json_attributes_template"]
