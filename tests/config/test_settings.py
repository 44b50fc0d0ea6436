"""Loading the configuration: TOML, environment and systemd credentials, and the errors people see."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import DEFAULT_CONFIG_PATH, Settings, config_path, load_settings
from monitor.domain.model import Venue
from monitor.errors import ConfigError

ACCOUNT = """
[accounts.main]
venue = "binance-usdm"
api_key = "file-key"
api_secret = "file-secret-value"
poll_interval = "15s"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_file_values_and_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, 'state_dir = "/srv/pm"\n' + ACCOUNT))
    account = settings.accounts["main"]
    assert account.venue is Venue.BINANCE_USDM
    assert account.poll_interval == timedelta(seconds=15)
    assert account.asset == "USDT"
    assert account.base_url is None
    assert account.testnet is False
    assert settings.database_url() == "sqlite:////srv/pm/monitor.db"
    assert settings.metrics.address() is None


@pytest.mark.parametrize(
    ("venue", "asset"),
    [("binance-coinm", "BTC"), ("bybit-inverse", "BTC"), ("bybit-linear", "USDT")],
)
def test_default_asset_follows_the_venue(tmp_path: Path, venue: str, asset: str) -> None:
    text = ACCOUNT.replace('"binance-usdm"', f'"{venue}"')
    assert load_settings(write(tmp_path, text)).accounts["main"].asset == asset


def test_explicit_asset_is_upper_cased(tmp_path: Path) -> None:
    text = ACCOUNT.replace('"binance-usdm"', '"bybit-linear"') + 'asset = "usdc"\n'
    assert load_settings(write(tmp_path, text)).accounts["main"].asset == "USDC"


@pytest.mark.parametrize(
    ("venue", "asset", "hint"),
    [
        ("binance-usdm", "BTC", "venue = 'binance-coinm'"),
        ("bybit-linear", "ETH", "venue = 'bybit-inverse'"),
        ("binance-coinm", "usdt", "venue = 'binance-usdm'"),
        ("bybit-inverse", "USDC", "venue = 'bybit-linear'"),
    ],
)
def test_an_asset_the_venue_cannot_margin_in_is_refused(
    tmp_path: Path, venue: str, asset: str, hint: str
) -> None:
    # It would otherwise show an empty, reassuring account.
    text = ACCOUNT.replace('"binance-usdm"', f'"{venue}"') + f'asset = "{asset}"\n'
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    message = str(caught.value)
    assert f"accounts.main.asset: {asset.upper()!r} is not a margin pool of {venue}" in message
    assert hint in message


def test_empty_file_is_a_valid_config_without_accounts(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))
    assert settings.accounts == {}
    assert settings.state_dir == Path("/var/lib/portfolio-monitor")


def test_state_directory_from_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/private/pm:/var/lib/other")
    settings = load_settings(write(tmp_path, ""))
    assert settings.state_dir == Path("/var/lib/private/pm")
    assert settings.database_url() == "sqlite:////var/lib/private/pm/monitor.db"


def test_env_overrides_credentials_which_override_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "accounts__main__api_secret").write_text("cred-secret\n")
    (credentials / "accounts__main__api_key").write_text("cred-key\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    monkeypatch.setenv("PORTFOLIO_MONITOR_ACCOUNTS__MAIN__API_KEY", "env-key")
    monkeypatch.setenv("PORTFOLIO_MONITOR_ACCOUNTS__MAIN__POLL_INTERVAL", "1m")
    monkeypatch.setenv("PORTFOLIO_MONITOR_DATABASE__URL", "postgresql+asyncpg://u@h/db")
    account_settings = load_settings(write(tmp_path, ACCOUNT))
    account = account_settings.accounts["main"]
    assert account.api_key.get_secret_value() == "env-key"
    assert account.api_secret.get_secret_value() == "cred-secret"
    assert account.poll_interval == timedelta(minutes=1)
    assert account.venue is Venue.BINANCE_USDM
    assert account_settings.database_url() == "postgresql+asyncpg://u@h/db"


def test_secrets_can_come_only_from_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "accounts__main__api_secret").write_text("only-in-credential")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    text = ACCOUNT.replace('api_secret = "file-secret-value"\n', "")
    account = load_settings(write(tmp_path, text)).accounts["main"]
    assert account.api_secret.get_secret_value() == "only-in-credential"


def test_config_path_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert config_path() == DEFAULT_CONFIG_PATH
    monkeypatch.setenv("PORTFOLIO_MONITOR_CONFIG", str(tmp_path / "env.toml"))
    assert config_path() == tmp_path / "env.toml"
    assert config_path(tmp_path / "arg.toml") == tmp_path / "arg.toml"


def test_config_path_from_environment_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTFOLIO_MONITOR_CONFIG", str(write(tmp_path, ACCOUNT)))
    assert set(load_settings().accounts) == {"main"}


def errors_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return str(caught.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    message = errors_of(tmp_path / "nope.toml")
    assert str(tmp_path / "nope.toml") in message
    assert "not found" in message


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    message = errors_of(write(tmp_path, "[accounts.main\n"))
    assert "config.toml: not valid TOML" in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("poll_intervl = '5s'\n", "accounts.main.poll_intervl: unknown key"),
        ("[accounts.main.nested]\nx = 1\n", "accounts.main.nested: unknown key"),
        ("poll_interval = 'soon'\n", "accounts.main.poll_interval: 'soon' is not a duration"),
        ("poll_interval = '0.2s'\n", "accounts.main.poll_interval: must be at least 1s"),
        ("base_url = 'ftp://x'\n", "accounts.main.base_url: 'ftp://x' is not an http(s) URL"),
        ("base_url = 'http://h/api'\n", "accounts.main.base_url: only scheme and host"),
    ],
)
def test_bad_account_keys_name_the_key_path(tmp_path: Path, extra: str, expected: str) -> None:
    text = ACCOUNT.replace('poll_interval = "15s"\n', "") + extra
    assert expected in errors_of(write(tmp_path, text))


def test_unknown_root_and_section_keys(tmp_path: Path) -> None:
    message = errors_of(write(tmp_path, "colour = 1\n[metrics]\nlisten = 'nohost'\nport = 1\n"))
    assert "  colour: unknown key" in message
    assert "  metrics.port: unknown key" in message
    assert "metrics.listen: 'nohost' is not host:port" in message


def test_unknown_venue(tmp_path: Path) -> None:
    text = ACCOUNT.replace('"binance-usdm"', '"kraken"')
    message = errors_of(write(tmp_path, text))
    assert "accounts.main.venue: Input should be 'binance-usdm'" in message


def test_account_names_must_be_lower_case(tmp_path: Path) -> None:
    message = errors_of(write(tmp_path, ACCOUNT.replace("accounts.main", "accounts.Main")))
    assert "accounts: account name 'Main': use lower-case letters" in message


def test_account_names_differing_only_in_dash_and_underscore_are_refused(tmp_path: Path) -> None:
    # They would share Home Assistant ids and overwrite each other's sensors.
    text = ACCOUNT.replace("accounts.main", "accounts.spot-main")
    text += ACCOUNT.replace("accounts.main", "accounts.spot_main")
    message = errors_of(write(tmp_path, text))
    assert "account names 'spot-main' and 'spot_main' differ only in '-' and '_'" in message


def test_non_ascii_account_names_are_refused(tmp_path: Path) -> None:
    message = errors_of(write(tmp_path, ACCOUNT.replace("accounts.main", 'accounts."maïn"')))
    assert "account name 'maïn': use lower-case letters" in message


def test_unknown_env_key_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTFOLIO_MONITOR_STATE_DIRR", "/x")
    assert "PORTFOLIO_MONITOR_STATE_DIRR: unknown key" in errors_of(write(tmp_path, ACCOUNT))
    monkeypatch.delenv("PORTFOLIO_MONITOR_STATE_DIRR")
    monkeypatch.setenv("PORTFOLIO_MONITOR_ACCOUNTS__MAIN__POLL_INTERVL", "5s")
    assert "accounts.main.poll_intervl: unknown key" in errors_of(write(tmp_path, ACCOUNT))


def test_missing_secret_says_where_to_put_it(tmp_path: Path) -> None:
    text = ACCOUNT.replace('api_secret = "file-secret-value"\n', "")
    message = errors_of(write(tmp_path, text))
    assert "accounts.main.api_secret: required key missing" in message
    assert "PORTFOLIO_MONITOR_ACCOUNTS__MAIN__API_SECRET" in message
    assert "credential accounts__main__api_secret" in message


def test_secrets_never_appear_in_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A secret given where a table is expected, and an account whose other keys are wrong.
    monkeypatch.setenv("PORTFOLIO_MONITOR_ACCOUNTS__MAIN__API_KEY", "env-secret-key-value")
    text = ACCOUNT.replace("15s", "never") + "[accounts.other]\nvenue = 1\napi_secret = 42\n"
    message = errors_of(write(tmp_path, text))
    assert "file-secret-value" not in message
    assert "env-secret-key-value" not in message
    assert "accounts.other.api_secret: Input should be a valid string" in message


def test_masked_dump_hides_secrets(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ACCOUNT))
    dumped = settings.masked_dump()
    assert dumped["accounts"]["main"]["api_secret"] == "**********"
    assert dumped["accounts"]["main"]["poll_interval"] == "15s"
    assert "file-secret-value" not in repr(settings)
    assert "file-secret-value" not in str(dumped)


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ACCOUNT))
    assert isinstance(settings, Settings)
    with pytest.raises(ValueError, match="frozen"):
        settings.accounts["main"].testnet = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("monitor:pw-in-url@db/monitor", "database.url: not a database URL"),
        ("postgresql://monitor:pw-in-url@db:5432:1/monitor", "database.url: not a database URL"),
        ("mysql://monitor:pw-in-url@db/monitor", "database.url: unsupported database 'mysql'"),
    ],
)
def test_unusable_database_url_is_a_config_error_without_the_password(
    tmp_path: Path, url: str, expected: str
) -> None:
    # Before, these reached the daemon: exit 1 (a systemd restart loop) or a ValueError
    # traceback, with the URL and its password in the message.
    message = errors_of(write(tmp_path, f"[database]\nurl = {url!r}\n"))
    assert expected in message
    assert "pw-in-url" not in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://monitor:s3cret@db:5432/pm", "postgresql://monitor:***@db:5432/pm"),
        (
            "postgresql+asyncpg://u:p%40ss:w@h/d?ssl=require",
            "postgresql+asyncpg://u:***@h/d?ssl=require",
        ),
        ("postgresql://monitor@db/pm", "postgresql://monitor@db/pm"),
        ("sqlite:////var/lib/pm/monitor.db", "sqlite:////var/lib/pm/monitor.db"),
    ],
)
def test_masked_dump_hides_the_database_password(tmp_path: Path, url: str, shown: str) -> None:
    settings = load_settings(write(tmp_path, f"[database]\nurl = {url!r}\n"))
    assert settings.masked_dump()["database"]["url"] == shown


def test_empty_credentials_are_errors_and_pasted_spaces_are_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "accounts__main__api_key").write_text("\n")  # truncated credential file
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    monkeypatch.setenv("PORTFOLIO_MONITOR_ACCOUNTS__MAIN__API_SECRET", "  ")
    message = errors_of(write(tmp_path, ACCOUNT))
    assert "accounts.main.api_key: is empty" in message
    assert "accounts.main.api_secret: is empty" in message
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    monkeypatch.setenv("PORTFOLIO_MONITOR_ACCOUNTS__MAIN__API_SECRET", "pasted-secret \n")
    account = load_settings(write(tmp_path, ACCOUNT)).accounts["main"]
    assert account.api_secret.get_secret_value() == "pasted-secret"


def test_empty_webhook_token_is_an_error(tmp_path: Path) -> None:
    text = '[notify.webhooks.tg]\nkind = "telegram"\nbot_token = ""\nchat_id = "42"\n'
    assert "notify.webhooks.tg.bot_token: is empty" in errors_of(write(tmp_path, text))


def test_check_config_shows_alert_levels_as_percentages(tmp_path: Path) -> None:
    text = ACCOUNT + '[accounts.main.alerts.margin_ratio]\nwarning_below = "250%"\n'
    text += '[alerts.liquidation_distance]\ncritical_below = "off"\n'
    alerts = load_settings(write(tmp_path, text)).masked_dump()
    assert alerts["alerts"]["margin_ratio"]["warning_below"] == "300%"  # not 3.0
    assert alerts["alerts"]["liquidation_distance"]["warning_below"] == "10%"  # not 0.1
    assert alerts["alerts"]["liquidation_distance"]["critical_below"] is None
    assert alerts["accounts"]["main"]["alerts"]["margin_ratio"]["warning_below"] == "250%"


def test_flush_timeout_must_fit_the_stop_timeout(tmp_path: Path) -> None:
    message = errors_of(write(tmp_path, '[notify.delivery]\nflush_timeout = "1m"\n'))
    assert "notify.delivery.flush_timeout: at most 10s" in message
    settings = load_settings(write(tmp_path, '[notify.delivery]\nflush_timeout = "10s"\n'))
    assert settings.notify.delivery.flush_timeout == timedelta(seconds=10)


def test_errors_say_which_variable_or_credential_holds_the_bad_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file is fine; without the hint the reader is sent to the file.
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "accounts__main__api_secret").write_text("")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    monkeypatch.setenv("PORTFOLIO_MONITOR_ACCOUNTS__MAIN__POLL_INTERVAL", "fast")
    message = errors_of(write(tmp_path, ACCOUNT))
    assert (
        "accounts.main.poll_interval: 'fast' is not a duration (examples: 30s, 5m, 1h30m, 2d) "
        "(from PORTFOLIO_MONITOR_ACCOUNTS__MAIN__POLL_INTERVAL)"
    ) in message
    assert "accounts.main.api_secret: is empty (from credential accounts__main__api_secret)" in (
        message
    )
    assert "file-secret-value" not in message


def test_several_daemons_keys_default_and_bounds(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ACCOUNT))
    assert settings.database.takeover == timedelta(seconds=30)
    assert settings.database.daemon_name is None
    named = load_settings(write(tmp_path, '[database]\ndaemon_name = "a"\ntakeover = "5s"\n'))
    assert (named.database.daemon_name, named.database.takeover) == ("a", timedelta(seconds=5))
    assert "database.takeover: between 2s and 1h" in errors_of(
        write(tmp_path, '[database]\ntakeover = "1s"\n')
    )
    assert "database.daemon_name" in errors_of(write(tmp_path, '[database]\ndaemon_name = " "\n'))
