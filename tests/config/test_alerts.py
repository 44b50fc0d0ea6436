"""The `[alerts.*]` section and per-account overrides: defaults, merging, both ratio conventions,
and errors that name the key path."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from monitor.config import Settings, load_settings
from monitor.config.alerts import AlertsSettings, account_rules
from monitor.domain.alerts import Rule, RuleKey
from monitor.domain.notification import Severity
from monitor.errors import ConfigError

ACCOUNT = """
[accounts.{name}]
venue = "binance-usdm"
api_key = "k"
api_secret = "s"
"""


def load(tmp_path: Path, text: str, *accounts: str) -> Settings:
    body = text + "".join(ACCOUNT.format(name=name) for name in accounts or ("main",))
    path = tmp_path / "config.toml"
    path.write_text(body)
    return load_settings(path)


def rules_of(tmp_path: Path, text: str, name: str = "main", *others: str) -> dict[RuleKey, Rule]:
    settings = load(tmp_path, text, name, *others)
    account = settings.accounts[name]
    rules = account_rules(settings.alerts, account.alerts, name)
    return {rule.key: rule for rule in rules.rules}


def test_defaults_cover_every_rule() -> None:
    rules = {rule.key: rule for rule in AlertsSettings().to_rules().rules}
    # Off unless enabled: move_in_sigma (it needs the venue's klines and a chosen horizon) and
    # stop-loss coverage (off until the trader asks for it, issue 11).
    assert set(rules) == set(RuleKey) - {RuleKey.MOVE_IN_SIGMA, RuleKey.STOP_LOSS}
    margin = rules[RuleKey.MARGIN_RATIO]
    assert margin.levels == (
        (Severity.WARNING, 3.0),
        (Severity.CRITICAL, 1.5),
        (Severity.EMERGENCY, 1.2),
    )
    assert margin.clear_band == pytest.approx(0.2)
    assert margin.clear_level(Severity.WARNING) == pytest.approx(3.6)
    # Warnings wait 10 s; the emergency level fires on the first mark below it.
    assert margin.debounce == timedelta(seconds=10)
    assert margin.debounce_of(Severity.WARNING) == timedelta(seconds=10)
    assert margin.debounce_of(Severity.EMERGENCY) == timedelta(0)
    assert margin.repeat == timedelta(hours=1)
    distance = rules[RuleKey.LIQUIDATION_DISTANCE]
    assert distance.levels == ((Severity.WARNING, 0.10), (Severity.CRITICAL, 0.05))
    assert rules[RuleKey.STALE].levels == ((Severity.CRITICAL, 3.0),)
    chasing = rules[RuleKey.MARGIN_CHASING]
    assert chasing.levels == ((Severity.WARNING, 3.0),)
    assert chasing.window == timedelta(hours=24)


def test_file_values_replace_defaults(tmp_path: Path) -> None:
    rules = rules_of(
        tmp_path,
        """
[alerts.margin_ratio]
warning_below = "250%"
emergency_below = "off"
for = "1m"
repeat = "0s"
[alerts.tier_change]
enabled = false
""",
    )
    margin = rules[RuleKey.MARGIN_RATIO]
    assert margin.levels == ((Severity.WARNING, 2.5), (Severity.CRITICAL, 1.5))
    assert margin.debounce == timedelta(minutes=1)
    assert margin.repeat is None
    assert RuleKey.TIER_CHANGE not in rules


def test_exchange_convention_thresholds(tmp_path: Path) -> None:
    rules = rules_of(
        tmp_path,
        """
[alerts.margin_ratio]
warning_exchange_above = "50%"
critical_exchange_above = "80%"
""",
    )
    levels = dict(rules[RuleKey.MARGIN_RATIO].levels)
    assert levels[Severity.WARNING] == pytest.approx(2.0)
    assert levels[Severity.CRITICAL] == pytest.approx(1.25)
    assert levels[Severity.EMERGENCY] == pytest.approx(1.2)


def test_account_overrides_merge_per_key(tmp_path: Path) -> None:
    text = """
[alerts.margin_ratio]
warning_below = "400%"
repeat = "2h"
[accounts.risky.alerts.margin_ratio]
critical_below = "200%"
[accounts.risky.alerts.stale]
enabled = false
"""
    risky = rules_of(tmp_path, text, "risky", "main")
    margin = risky[RuleKey.MARGIN_RATIO]
    assert dict(margin.levels) == {
        Severity.WARNING: 4.0,
        Severity.CRITICAL: 2.0,
        Severity.EMERGENCY: 1.2,
    }
    assert margin.repeat == timedelta(hours=2)
    assert RuleKey.STALE not in risky
    main = rules_of(tmp_path, text, "main", "risky")
    assert dict(main[RuleKey.MARGIN_RATIO].levels)[Severity.CRITICAL] == 1.5
    assert RuleKey.STALE in main


def test_account_override_in_the_other_convention_replaces_the_default_level(
    tmp_path: Path,
) -> None:
    rules = rules_of(
        tmp_path,
        """
[alerts.margin_ratio]
critical_below = "160%"
[accounts.main.alerts.margin_ratio]
critical_exchange_above = "80%"
""",
    )
    assert dict(rules[RuleKey.MARGIN_RATIO].levels)[Severity.CRITICAL] == pytest.approx(1.25)


def test_override_may_rely_on_changed_defaults(tmp_path: Path) -> None:
    # 400 % is above the built-in warning level, but below this file's default of 500 %.
    rules = rules_of(
        tmp_path,
        """
[alerts.margin_ratio]
warning_below = "500%"
[accounts.main.alerts.margin_ratio]
critical_below = "400%"
""",
    )
    assert dict(rules[RuleKey.MARGIN_RATIO].levels)[Severity.CRITICAL] == 4.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[alerts.margin_ratio]\ncritical_below = "400%"\n',
            "alerts.margin_ratio: critical_below (400%) must be below warning_below (300%)",
        ),
        (
            '[alerts.margin_ratio]\nclear_band = "-5%"\n',
            "alerts.margin_ratio: clear_band (-5%) must be from 0% to 100%",
        ),
        # Numbers written without their % sign: each would never fire or never resolve.
        (
            "[alerts.margin_ratio]\nwarning_below = 300\n",
            'alerts.margin_ratio.warning_below: 300 needs a % sign ("300%"): a number without % '
            "is a fraction (3 means 300%)",
        ),
        (
            '[alerts.margin_ratio]\nwarning_below = "300"\n',
            'alerts.margin_ratio.warning_below: "300" needs a % sign ("300%")',
        ),
        (
            '[alerts.margin_ratio]\ncritical_below = "90"\n',
            'alerts.margin_ratio.critical_below: "90" needs a % sign ("90%")',
        ),
        (
            "[accounts.main.alerts.margin_ratio]\nemergency_below = 120\n",
            'accounts.main.alerts.margin_ratio.emergency_below: 120 needs a % sign ("120%")',
        ),
        (
            "[alerts.margin_ratio]\nclear_band = 20\n",
            'alerts.margin_ratio.clear_band: 20 needs a % sign ("20%"): a number without % is a '
            "fraction (0.2 means 20%)",
        ),
        (
            "[alerts.margin_ratio]\ncritical_exchange_above = 80\n",
            'alerts.margin_ratio.critical_exchange_above: 80 needs a % sign ("80%")',
        ),
        (
            "[accounts.main.alerts.liquidation_distance]\nwarning_below = 10\n",
            'accounts.main.alerts.liquidation_distance.warning_below: 10 needs a % sign ("10%")',
        ),
        # "1" would be 100 %: a distance alert that fires for every long position.
        (
            '[alerts.account_move]\ncritical_below = "1"\n',
            'alerts.account_move.critical_below: "1" needs a % sign ("1%")',
        ),
        (
            "[alerts.liquidation_mismatch]\ntolerance = 2\n",
            'alerts.liquidation_mismatch.tolerance: 2 needs a % sign ("2%")',
        ),
        (
            "[accounts.main.alerts.margin_chasing]\nmin_increase = 5\n",
            'accounts.main.alerts.margin_chasing.min_increase: 5 needs a % sign ("5%")',
        ),
        (
            "[alerts.move_in_sigma]\nclear_band = 20\n",
            'alerts.move_in_sigma.clear_band: 20 needs a % sign ("20%")',
        ),
        (
            '[accounts.main.alerts.liquidation_distance]\nwarning_below = "2000%"\n',
            "accounts.main.alerts.liquidation_distance: warning_below (2000%) must be at most 100%",
        ),
        (
            '[alerts.liquidation_distance]\nwarning_below = "lots"\n',
            "alerts.liquidation_distance.warning_below: 'lots' is not a percentage",
        ),
        ("[alerts.stale]\nafter = 0.5\n", "alerts.stale: after (0.5) must be at least 1"),
        ("[alerts.stale]\nafter = nan\n", "alerts.stale.after: Input should be a finite number"),
        (
            "[accounts.main.alerts.stale]\nafter = inf\n",
            "accounts.main.alerts.stale.after: Input should be",
        ),
        ('[alerts.auth]\nseverity = "loud"\n', "alerts.auth.severity: Input should be"),
        (
            '[alerts.margin_ratio]\nwarn_below = "300%"\n',
            "alerts.margin_ratio.warn_below: unknown key",
        ),
        (
            '[alerts.margin_ratio]\ncritical_below = "130%"\ncritical_exchange_above = "80%"\n',
            "alerts.margin_ratio: give critical_below or critical_exchange_above, not both",
        ),
        (
            '[alerts.margin_ratio]\nwarning_below = "nan%"\n',
            "alerts.margin_ratio.warning_below: 'nan%' is not a percentage",
        ),
        (
            '[alerts.margin_chasing]\nwindow = "1e400s"\n',
            "alerts.margin_chasing.window: '1e400s' is not a duration",
        ),
        (
            '[alerts.margin_chasing]\nwindow = "99999999999d"\n',
            "alerts.margin_chasing.window: '99999999999d': too long a duration",
        ),
        (
            '[alerts.margin_chasing]\nwindow = "soon"\n',
            "alerts.margin_chasing.window: 'soon' is not a duration",
        ),
        (
            '[accounts.main.alerts.margin_ratio]\ncritical_below = "350%"\n',
            "accounts.main.alerts.margin_ratio: critical_below (350%) must be below warning_below (300%)",
        ),
        (
            '[accounts.main.alerts.account_move]\nclear_band = "x"\n',
            "accounts.main.alerts.account_move.clear_band: 'x' is not a percentage",
        ),
    ],
)
def test_bad_values_name_the_key_path(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert expected in str(caught.value)


def test_levels_with_their_sign_or_as_fractions_are_accepted(tmp_path: Path) -> None:
    # The % check sees only numbers as written: parsed fractions of 100 % or more (a merged
    # override re-validates them) and plain fractions stay valid.
    text = (
        '[alerts.margin_ratio]\nwarning_below = "1500%"\ncritical_below = 2.5\nclear_band = "100%"\n'
        '[alerts.liquidation_distance]\nwarning_below = "100%"\ncritical_below = 0.5\n'
        "[alerts.move_in_sigma]\nenabled = true\nbelow = 20\n"
        '[accounts.main.alerts.margin_ratio]\nemergency_below = "120%"\n'
        '[accounts.main.alerts.liquidation_distance]\nemergency_below = "10%"\n'
    )
    rules = rules_of(tmp_path, text)
    assert rules[RuleKey.MARGIN_RATIO].levels == (
        (Severity.WARNING, 15.0),
        (Severity.CRITICAL, 2.5),
        (Severity.EMERGENCY, 1.2),
    )
    assert rules[RuleKey.MARGIN_RATIO].clear_band == pytest.approx(1.0)
    assert rules[RuleKey.LIQUIDATION_DISTANCE].levels == (
        (Severity.WARNING, 1.0),
        (Severity.CRITICAL, 0.5),
        (Severity.EMERGENCY, 0.1),
    )
    # Sigmas are counts, not percentages: no % sign needed.
    assert rules[RuleKey.MOVE_IN_SIGMA].levels[0][1] == 20.0


def test_environment_overrides_a_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTFOLIO_MONITOR_ALERTS__MARGIN_RATIO__WARNING_BELOW", "350%")
    settings = load(tmp_path, "")
    assert settings.alerts.margin_ratio.warning_below == pytest.approx(3.5)


def test_example_config_documents_every_alert_key_with_its_default() -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    text = example.read_text()
    documented = tomllib.loads(text)["alerts"]
    assert AlertsSettings.model_validate(documented) == AlertsSettings()
    for section in AlertsSettings.model_fields:
        model: BaseModel = getattr(AlertsSettings(), section)
        for name, field in type(model).model_fields.items():
            key = field.alias or name
            if key == "enabled":
                continue
            assert f"\n{key} = " in text or f"\n# {key} = " in text, f"alerts.{section}.{key}"
