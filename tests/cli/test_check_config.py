"""`portfolio-monitor check-config` without network: what a person sees for good and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app

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
    assert "bybit: 1 account(s) use 15.0 requests per 5s of 600 per IP" in budget


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
    assert "binance-fapi: 3 account(s) use 2160.0 weight per 60s of 2400 per IP (90 %)" in out
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
    # Only the keys of its kind: no Telegram or Pushover keys on a JSON hook.
    assert list(shown["notify"]["webhooks"]["ops"]) == [
        "kind",
        "url",
        "secret",
        "headers",
        "timeout",
    ]


def _binance_accounts(
    count: int, interval: str, base_url: str | None = None, first: int = 0
) -> str:
    where = f'base_url = "{base_url}"\n' if base_url else ""
    return "".join(
        f'[accounts.a{i}]\nvenue = "binance-usdm"\napi_key = "k{i}"\napi_secret = "s"\n'
        f'poll_interval = "{interval}"\n{where}'
        for i in range(first, first + count)
    )


def test_polls_over_the_per_ip_limit_exit_1_saying_what_to_change(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    # 100 accounts every 2 s: 12 weight (10 + 2 for the protective orders of one symbol) x 30 polls
    # a minute x 100 = 36,000 of Binance's 2,400.
    path.write_text(_binance_accounts(100, "2s"))
    code, out, err = run("check-config", "--config", str(path))
    assert code == 1
    assert "binance-fapi: 100 account(s) use 36000.0 weight per 60s of 2400 per IP (1,500 %)" in out
    assert "error: binance-fapi is over the venue's per-IP limit (1,500 % of it)" in err
    assert "lengthen poll_interval at least 15.00-fold" in err
    assert "at most 6 of these 100 accounts on one address" in err
    # While marks stream, REST only reconciles once a minute; the exit still goes by the fallback.
    assert (
        "request budget while marks stream (REST every 1m): binance-fapi: 100 account(s) use "
        "1200.0 weight per 60s of 2400 per IP (50 %)"
    ) in out


def test_the_limit_is_per_address_and_100_percent_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    # 10 accounts every 3 s use exactly 2,400 weight a minute (12 a poll) on each address.
    path.write_text(
        _binance_accounts(10, "3s") + _binance_accounts(10, "3s", "http://10.0.0.7:8900", first=10)
    )
    code, out, err = run("check-config", "--config", str(path))
    assert code == 0, err
    assert "binance-fapi: 10 account(s) use 2400.0 weight per 60s of 2400 per IP (100 %)" in out
    assert "binance-fapi at http://10.0.0.7:8900: 10 account(s) use 2400.0 weight per 60s" in out
    assert "error" not in err
    path.write_text(
        _binance_accounts(10, "3s") + _binance_accounts(11, "3s", "http://10.0.0.7:8900", first=10)
    )
    code, out, err = run("check-config", "--config", str(path))
    assert code == 1
    assert "error: binance-fapi at http://10.0.0.7:8900 is over" in err
    assert "error: binance-fapi is over" not in err


def test_bybit_over_its_per_ip_limit_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    # A bybit-linear poll is 6 requests (4 + 2 for protective orders): 200 accounts every 1 s make
    # 6,000 of 600 per 5 s.
    path.write_text(
        "".join(
            f'[accounts.b{i}]\nvenue = "bybit-linear"\napi_key = "k{i}"\napi_secret = "s"\n'
            'poll_interval = "1s"\n'
            for i in range(200)
        )
    )
    code, out, err = run("check-config", "--config", str(path))
    assert code == 1
    assert "bybit: 200 account(s) use 6000.0 requests per 5s of 600 per IP (1,000 %)" in out
    assert "error: bybit is over the venue's per-IP limit (1,000 % of it)" in err
    assert "at most 20 of these 200 accounts" in err


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
