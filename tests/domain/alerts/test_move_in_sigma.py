"""The `move_in_sigma` rule on the engine's own figures: fires, escalates nothing it should not,
resolves past its clear level, keeps its state while the volatility is unknown; its config."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from monitor.config import load_settings
from monitor.config.alerts import AlertsSettings, account_rules
from monitor.domain.alerts import Rule, RuleKey
from monitor.domain.codec import state_from_json
from monitor.domain.margin import assess
from monitor.domain.model import MarginMode, Snapshot
from monitor.domain.notification import Severity
from monitor.domain.volatility import Horizon, SymbolVolatility
from monitor.errors import ConfigError
from tests.domain.alerts.builders import at, observe, rules, run, sent
from tests.support.vectors import snapshot_of, two_longs_in_sigmas


def _snapshot(seconds: float, volatility: dict[str, Any] | None = None) -> Snapshot:
    """The Binance FAQ two longs (account move -7.69 %), sigmas as in the vector unless given."""
    return snapshot_of(state_from_json(two_longs_in_sigmas(volatility)), at(seconds))


def _rule(horizon: Horizon, below: float = 3.0) -> Rule:
    return Rule(
        RuleKey.MOVE_IN_SIGMA, ((Severity.WARNING, below),), clear_band=0.2, horizon=horizon
    )


def test_an_account_move_of_a_few_daily_sigmas_fires_with_the_figures_in_words() -> None:
    # -7.69 % is 2.23 typical days of this book (daily sigma 3.58 %): likely within days.
    results, _ = run(rules(_rule(Horizon.DAILY)), [(0, observe(_snapshot(0)))])
    assert sent(results) == [("move_in_sigma", "firing", "warning")]
    notification = results[0].notifications[0]
    assert "account move -7.7 % = 2.2 \u03c3 daily" in notification.text
    assert "3 \u03c3 daily" in notification.text
    assert notification.facts["value"] == pytest.approx(2.2337, rel=1e-4)
    assert notification.facts["horizon"] == "daily"


def test_the_same_account_is_far_in_hourly_sigmas() -> None:
    # 6.2 typical hours for the account, 9.8 and 19.5 for the positions: no alert at 3 sigma.
    results, states = run(rules(_rule(Horizon.HOURLY)), [(0, observe(_snapshot(0)))])
    assert sent(results) == []
    assert states["move_in_sigma"]["severity"] is None


def test_a_position_nearer_in_sigmas_than_the_account_is_named() -> None:
    # ETH isolated with thin margin and very volatile: its own distance is the nearest in sigmas.
    snap = _snapshot(0, {"BTCUSDT": {"daily": "0.03"}, "ETHUSDT": {"daily": "0.2"}})
    eth = replace(
        snap.state.positions[1], margin_mode=MarginMode.ISOLATED, isolated_margin=500_000.0
    )
    state = replace(snap.state, positions=(snap.state.positions[0], eth))
    results, _ = run(
        rules(_rule(Horizon.DAILY)), [(0, observe(Snapshot("main", at(0), state, assess(state))))]
    )
    notification = results[0].notifications[0]
    assert re.search(
        r"ETHUSDT long [0-9.]+ % from its liquidation price [0-9,.]+ = 0\.[0-9] \u03c3 daily",
        notification.text,
    )
    assert notification.facts["symbol"] == "ETHUSDT"


def test_resolves_only_past_the_clear_level() -> None:
    calm = {"BTCUSDT": {"daily": "0.022"}, "ETHUSDT": {"daily": "0.022"}}  # move 3.64 sigma
    almost = {"BTCUSDT": {"daily": "0.0235"}, "ETHUSDT": {"daily": "0.0235"}}  # 3.41 sigma
    steps = [
        (0, observe(_snapshot(0))),
        (10, observe(_snapshot(10, almost))),
        (20, observe(_snapshot(20, calm))),
    ]
    results, _ = run(rules(_rule(Horizon.DAILY)), steps)
    # Above 3 sigma but inside the 20 % band (3.6): still firing; past it: resolved.
    assert sent(results) == [
        ("move_in_sigma", "firing", "warning"),
        ("move_in_sigma", "resolved", "warning"),
    ]
    assert results[2].notifications[0].kind.value == "resolved"


def test_unknown_volatility_keeps_the_alert_as_it_is() -> None:
    unknown = _snapshot(10)
    blind = replace(
        unknown.state,
        volatility=tuple(SymbolVolatility(entry.symbol) for entry in unknown.state.volatility),
    )
    steps = [
        (0, observe(_snapshot(0))),
        (10, observe(Snapshot("main", at(10), blind, assess(blind)))),
    ]
    results, states = run(rules(_rule(Horizon.DAILY)), steps)
    assert sent(results) == [("move_in_sigma", "firing", "warning")]
    assert states["move_in_sigma"]["severity"] == "warning"


def test_every_alert_about_the_account_states_its_move_in_sigmas() -> None:
    margin = Rule(RuleKey.MARGIN_RATIO, ((Severity.WARNING, 3.0),))
    results, _ = run(rules(margin), [(0, observe(_snapshot(0)))])
    notification = results[0].notifications[0]
    assert "(= 2.2 \u03c3 daily, 6.2 \u03c3 hourly)" in notification.text
    assert notification.facts["account_move_sigmas_daily"] == pytest.approx(2.2337, rel=1e-4)


def _load(tmp_path: Path, alerts: str) -> AlertsSettings:
    path = tmp_path / "config.toml"
    path.write_text(
        '[accounts.main]\nvenue = "binance-usdm"\napi_key = "k"\napi_secret = "s"\n' + alerts
    )
    return load_settings(path).alerts


def test_off_by_default_and_one_line_turns_it_on(tmp_path: Path) -> None:
    assert RuleKey.MOVE_IN_SIGMA not in {r.key for r in AlertsSettings().to_rules().rules}
    settings = _load(tmp_path, "[alerts.move_in_sigma]\nenabled = true\n")
    rule = next(r for r in settings.to_rules().rules if r.key is RuleKey.MOVE_IN_SIGMA)
    assert rule.levels == ((Severity.WARNING, 3.0),)
    assert rule.horizon is Horizon.HOURLY
    assert rule.clear_level(Severity.WARNING) == pytest.approx(3.6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('horizon = "weekly"', "alerts.move_in_sigma.horizon"),
        ("below = 0", "alerts.move_in_sigma: below (0) must be above 0 sigma"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        _load(tmp_path, f"[alerts.move_in_sigma]\nenabled = true\n{text}\n")


def test_an_account_may_choose_its_own_horizon(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[alerts.move_in_sigma]\nenabled = true\n[accounts.main]\nvenue = "binance-usdm"\n'
        'api_key = "k"\napi_secret = "s"\n[accounts.main.alerts.move_in_sigma]\nhorizon = "daily"\n'
    )
    settings = load_settings(path)
    merged = account_rules(settings.alerts, settings.accounts["main"].alerts, "main")
    rule = next(r for r in merged.rules if r.key is RuleKey.MOVE_IN_SIGMA)
    assert rule.horizon is Horizon.DAILY


def test_a_higher_liquidation_alert_holds_it_back() -> None:
    # Margin ratio 241 % is critical at 250 %: one message at the highest severity.
    margin = Rule(RuleKey.MARGIN_RATIO, ((Severity.WARNING, 3.0), (Severity.CRITICAL, 2.5)))
    results, states = run(
        rules(margin, _rule(Horizon.DAILY)),
        [(0, observe(_snapshot(0))), (10, observe(_snapshot(10)))],
    )
    assert sent(results) == [("margin_ratio", "firing", "critical")]
    # It fires (tracked) without a message of its own.
    assert states["move_in_sigma"]["severity"] == "warning"
    assert states["move_in_sigma"]["notified"] is None
