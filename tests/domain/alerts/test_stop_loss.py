"""The `stop_loss` rule: a position without an effective stop past the grace period, a stop
beyond the (dynamic) liquidation price, and a loss at the stop above `max_loss`."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from monitor.config.alerts import AccountAlerts, AlertsSettings, account_rules
from monitor.domain.alerts import Rule, RuleKey
from monitor.domain.codec import state_from_json
from monitor.domain.margin import assess
from monitor.domain.model import Snapshot
from monitor.errors import ConfigError
from tests.domain.alerts.builders import at, observe, rules, run, sent
from tests.support.vectors import VECTOR_DIR, load

CASES = load(VECTOR_DIR / "stops" / "binance_usdm_cross_two_longs.json")["cases"]


def _snap(case: int, seconds: float = 0.0, orders: list[dict[str, Any]] | None = None) -> Snapshot:
    document = copy.deepcopy(CASES[case]["state"])
    if orders is not None:
        document["protective_orders"] = orders
    state = state_from_json(document)
    return Snapshot(account="main", taken_at=at(seconds), state=state, risk=assess(state))


def _rule(**settings: Any) -> Rule:
    return (
        AlertsSettings.model_validate({"stop_loss": {"enabled": True, **settings}})
        .to_rules()
        .rules[-1]
    )


def test_the_rule_is_off_until_one_line_enables_it() -> None:
    assert all(rule.key is not RuleKey.STOP_LOSS for rule in AlertsSettings().to_rules().rules)
    rule = _rule()
    assert rule.key is RuleKey.STOP_LOSS
    assert rule.grace == timedelta(minutes=5)
    assert rule.max_loss is None


def test_max_loss_is_checked_with_its_key_path() -> None:
    with pytest.raises(ValueError, match="max_loss"):
        _rule(max_loss="150%")
    override = AccountAlerts.model_validate({"stop_loss": {"max_loss": "0%"}})
    with pytest.raises(ConfigError, match=r"accounts\.main\.alerts\.stop_loss: max_loss"):
        account_rules(AlertsSettings(), override, "main")


def test_a_position_without_a_stop_fires_after_the_grace_period_and_resolves_with_one() -> None:
    # Case 1: BTC has no stop (ETH's is beyond liquidation: dropped here to test the grace alone).
    eth_ok = [
        {
            "symbol": "ETHUSDT",
            "side": "sell",
            "kind": "stop",
            "trigger_price": 1300,
            "reduce_only": True,
        }
    ]
    btc_too = [
        *eth_ok,
        {
            "symbol": "BTCUSDT",
            "side": "sell",
            "kind": "stop",
            "trigger_price": 30000,
            "reduce_only": True,
        },
    ]
    steps = [
        (0, observe(_snap(1, 0, eth_ok))),
        (240, observe(_snap(1, 240, eth_ok))),  # 4 min: still in grace
        (300, observe(_snap(1, 300, eth_ok))),  # 5 min: fires
        (360, observe(_snap(1, 360, btc_too))),  # a stop is placed: resolves
    ]
    results, _ = run(rules(_rule()), steps)
    assert sent(results) == [
        ("stop_loss", "firing", "warning"),
        ("stop_loss", "resolved", "warning"),
    ]
    assert "BTCUSDT long: no stop-loss for 5m" in results[2].notifications[0].text


def test_a_stop_beyond_the_dynamic_liquidation_price_is_critical_at_once() -> None:
    # Case 2 -> 3: BTC's stop at 27 000 is fine until ETH falls to 1 250 (ETH's own stop at
    # 1 100 is beyond its liquidation price throughout, so give ETH a fine one here).
    orders = [
        {
            "symbol": "BTCUSDT",
            "side": "sell",
            "kind": "stop",
            "trigger_price": 27000,
            "reduce_only": True,
        },
        {
            "symbol": "ETHUSDT",
            "side": "sell",
            "kind": "stop",
            "trigger_price": 1200,
            "reduce_only": True,
        },
    ]
    results, _ = run(
        rules(_rule()), [(0, observe(_snap(2, 0, orders))), (10, observe(_snap(3, 10, orders)))]
    )
    assert sent(results) == [("stop_loss", "firing", "critical")]
    text = results[1].notifications[0].text
    assert "BTCUSDT long: stop 27,000" in text
    assert "beyond its liquidation price 28,962.51" in text


def test_a_loss_at_the_stop_above_max_loss_warns() -> None:
    # Case 0: BTC's stop loses 109.488 x 2 481.98 = 271 747.03 = 26.4 % of equity; ETH's partial stop 156 840 = 15.2 %.
    results, _ = run(rules(_rule(max_loss="20%")), [(0, observe(_snap(0)))])
    assert sent(results) == [("stop_loss", "firing", "warning")]
    text = results[0].notifications[0].text
    assert "BTCUSDT long: the stop at 30,000 loses 271,747.03 USDT" in text
    assert "= 26.4 % of equity (at most 20 %)" in text
    assert "ETHUSDT" not in text
    quiet, _ = run(rules(_rule(max_loss="30%")), [(0, observe(_snap(0)))])
    assert sent(quiet) == []


def test_unknown_stops_are_not_judged() -> None:
    document = copy.deepcopy(CASES[1]["state"])
    del document["protective_orders"]
    state = state_from_json(document)
    snap = Snapshot(account="main", taken_at=at(0), state=state, risk=assess(state))
    results, _ = run(rules(_rule(grace="0s")), [(0, observe(snap)), (600, observe(snap))])
    assert sent(results) == []


def test_liquidation_alerts_name_the_positions_without_an_effective_stop() -> None:
    from monitor.domain.alerts import Rule as AlertRule
    from monitor.domain.notification import Severity

    margin = AlertRule(RuleKey.MARGIN_RATIO, ((Severity.WARNING, 3.0),))
    results, _ = run(rules(margin), [(0, observe(_snap(1)))])
    (notification,) = results[0].notifications
    assert (
        "Stops: no stop-loss on BTCUSDT long; ETHUSDT long's stop 1,150 lies beyond its "
        "liquidation price 1,153.26."
    ) in notification.text
