"""`portfolio-monitor check-config` without network: what a person sees for good and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.cli import commands as _commands  # noqa: F401  (registers the commands)

SECRET = "very-secret-api-secret-0123"
CONFIG = f"""
[accounts.main]
venue = "bybit-linear"
api_key = "key-main"
api_secret = "{SECRET}"
poll_interval = "2s"
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_prints_effective_config_with_secrets_masked(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    code, out, err = run("check-config", "--config", str(path))
    assert code == 0, err
    assert SECRET not in out + err
    assert "key-main" not in out
    document, _, budget = out.partition("\nrequest budget: ")
    shown = json.loads(document)
    assert shown["accounts"]["main"]["api_secret"] == "**********"
    assert shown["accounts"]["main"]["poll_interval"] == "2s"
    assert "bybit: 1 account(s) use 10.0 requests per 5s of 600 per IP" in budget


def test_bad_key_exits_78_naming_the_key_without_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG + 'poll_intervl = "5s"\n')
    code, out, err = run("check-config", "--config", str(path))
    assert code == 78
    assert out == ""
    assert "accounts.main.poll_intervl: unknown key" in err
    assert SECRET not in err


def test_missing_file_exits_78(tmp_path: Path) -> None:
    code, _, err = run("check-config", "--config", str(tmp_path / "absent.toml"))
    assert code == 78
    assert "absent.toml: configuration file not found" in err


def test_heavy_polling_is_flagged(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    accounts = "".join(
        f'[accounts.a{i}]\nvenue = "binance-usdm"\napi_key = "k"\napi_secret = "s"\npoll_interval = "1s"\n'
        for i in range(3)
    )
    path.write_text(accounts)
    code, out, _ = run("check-config", "--config", str(path))
    assert code == 0
    assert "binance-fapi: 3 account(s) use 1800.0 weight per 60s of 2400 per IP (75.0%)" in out
    assert "warning: over half of the venue's per-IP limit" in out


def test_show_unknown_account_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    code, out, err = run("show", "--config", str(path), "--account", "nope")
    assert code == 2
    assert out == ""
    assert "unknown account 'nope' (configured: main)" in err


def test_show_bad_config_exits_78(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.replace("bybit-linear", "kraken"))
    code, _, err = run("show", "--config", str(path))
    assert code == 78
    assert "accounts.main.venue" in err


def test_database_password_is_masked(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG + '[database]\nurl = "postgresql://monitor:db-pass-123@db/pm"\n')
    code, out, err = run("check-config", "--config", str(path))
    assert code == 0, err
    assert "db-pass-123" not in out + err
    assert json.loads(out.partition("\nrequest budget: ")[0])["database"]["url"] == (
        "postgresql://monitor:***@db/pm"
    )


def test_webhook_header_values_are_masked(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        CONFIG + '[notify.webhooks.ops]\nkind = "json"\nurl = "https://ops.example/hook"\n'
        'headers = { Authorization = "Bearer header-token-987" }\n'
    )
    code, out, err = run("check-config", "--config", str(path))
    assert code == 0, err
    assert "header-token-987" not in out + err
    shown = json.loads(out.partition("\nrequest budget: ")[0])
    assert shown["notify"]["webhooks"]["ops"]["headers"] == {"Authorization": "**********"}


def test_ratio_level_without_percent_sign_exits_78_in_check_config_and_run(tmp_path: Path) -> None:
    # "300" would be 30,000 %: a warning that fires forever instead of at 300 %.
    path = tmp_path / "config.toml"
    path.write_text('[alerts.margin_ratio]\nwarning_below = "300"\n' + CONFIG)
    expected = 'alerts.margin_ratio.warning_below: "300" needs a % sign ("300%")'
    for command in ("check-config", "run"):
        code, out, err = run(command, "--config", str(path))
        assert code == 78, command
        assert expected in err, command
        assert out == ""


WEBHOOK = '[notify.webhooks.phone]\nkind = "ntfy"\ntopic = "my-alerts"\n'
NO_SINK = "WARNING: no alert sink besides the log is configured: alerts will only be logged"


@pytest.mark.parametrize(
    ("notify", "warned"),
    [
        ("", True),
        ("[notify.console]\n", True),
        ("[notify.mqtt]\nalerts = false\n", True),
        ("[notify.mqtt]\n", False),
        (WEBHOOK, False),
    ],
)
def test_check_config_warns_when_alerts_would_only_be_logged(
    tmp_path: Path, notify: str, warned: bool
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG + notify)
    code, out, err = run("check-config", "--config", str(path))
    assert code == 0, err
    if warned:
        assert len(err.splitlines()) == 1
        assert err.startswith(NO_SINK)
    else:
        assert err == ""
    assert "no alert sink" not in out


def test_run_warns_once_when_alerts_would_only_be_logged(tmp_path: Path) -> None:
    # A state_dir that cannot be created stops the daemon right after the start-up checks.
    blocker = tmp_path / "file"
    blocker.write_text("")
    path = tmp_path / "config.toml"
    path.write_text(f'state_dir = "{blocker / "state"}"\n' + CONFIG)
    code, _, err = run("run", "--config", str(path))
    assert code == 1
    assert err.count("no alert sink besides the log is configured") == 1
    assert "WARNING" in err.splitlines()[0]
    path.write_text(f'state_dir = "{blocker / "state"}"\n' + CONFIG + WEBHOOK)
    code, _, err = run("run", "--config", str(path))
    assert code == 1
    assert "no alert sink" not in err
