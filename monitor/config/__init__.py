"""Configuration: one TOML file, overridden by `PORTFOLIO_MONITOR_…` environment variables, with
secrets from systemd credentials. This package is the only reader of config files and env vars.

Precedence, highest first: environment variables, credential files in `$CREDENTIALS_DIRECTORY`
(named after the key path: `accounts__main__api_secret`), the TOML file, defaults.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from monitor.config.accounts import AccountSettings
from monitor.config.alerts import AlertsSettings, account_rules
from monitor.config.database import DatabaseSettings, without_password
from monitor.config.metrics import MetricsSettings
from monitor.config.notify import NotifySettings
from monitor.config.streams import StreamsSettings
from monitor.config.web import WebSettings
from monitor.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/portfolio-monitor/config.toml")
CONFIG_PATH_ENV = "PORTFOLIO_MONITOR_CONFIG"
ENV_PREFIX = "PORTFOLIO_MONITOR_"

__all__ = [
    "CONFIG_PATH_ENV",
    "DEFAULT_CONFIG_PATH",
    "AccountSettings",
    "DatabaseSettings",
    "MetricsSettings",
    "NotifySettings",
    "Settings",
    "config_path",
    "load_settings",
]


def _default_state_dir() -> Path:
    # systemd's StateDirectory= may list several directories separated by ':'; the first is ours.
    from_systemd = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(from_systemd or "/var/lib/portfolio-monitor")


class Settings(BaseSettings):
    """The whole configuration. Build it with `load_settings()`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        secrets_dir_missing="ok",
        secrets_prefix="",
    )

    state_dir: Path = Field(default_factory=_default_state_dir)
    database: DatabaseSettings = DatabaseSettings()
    metrics: MetricsSettings = MetricsSettings()
    accounts: dict[str, AccountSettings] = {}
    notify: NotifySettings = NotifySettings()
    alerts: AlertsSettings = AlertsSettings()
    streams: StreamsSettings = StreamsSettings()
    web: WebSettings = WebSettings()

    @field_validator("accounts", mode="before")
    @classmethod
    def _account_names(cls, accounts: Any) -> Any:
        seen: dict[str, str] = {}
        for name in accounts if isinstance(accounts, dict) else ():
            # Env variables and credential file names are case-insensitive, so names must be too.
            if not name or not all(
                c.isascii() and (c.islower() or c.isdigit() or c in "_-") for c in name
            ):
                raise ValueError(
                    f"account name {name!r}: use lower-case letters, digits, '_' and '-'"
                )
            # Home Assistant ids allow no '-': "a-b" and "a_b" would overwrite each other's sensors.
            same = seen.setdefault(name.replace("-", "_"), name)
            if same != name:
                raise ValueError(
                    f"account names {same!r} and {name!r} differ only in '-' and '_', which "
                    "Home Assistant ids cannot tell apart: rename one"
                )
        return accounts

    @model_validator(mode="after")
    def _account_alerts(self) -> Settings:
        # An account's alert overrides are only valid together with the [alerts] defaults.
        problems = []
        for name, account in self.accounts.items():
            try:
                account_rules(self.alerts, account.alerts, name)
            except ConfigError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The default secrets source ignores nested models; the nested one reads
        # `accounts__main__api_secret` into accounts.main.api_secret.
        return (
            init_settings,
            env_settings,
            NestedSecretsSettingsSource(file_secret_settings),
            TomlConfigSettingsSource(settings_cls),
        )

    def database_url(self) -> str:
        """The SQLAlchemy URL of the snapshot store (default: SQLite file in the state directory)."""
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.state_dir / 'monitor.db'}"

    def masked_dump(self) -> dict[str, Any]:
        """The effective configuration as JSON-ready data, every secret shown as `**********`
        and the database password as `***`."""
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True)
        data["database"]["url"] = without_password(self.database_url())
        return data


def config_path(path: Path | None = None) -> Path:
    """The config file to read: the given path, else `$PORTFOLIO_MONITOR_CONFIG`, else the default."""
    if path is not None:
        return path
    from_env = os.environ.get(CONFIG_PATH_ENV)
    return Path(from_env) if from_env else DEFAULT_CONFIG_PATH


def load_settings(path: Path | None = None) -> Settings:
    """Read and validate the configuration; raises `ConfigError` naming the file or each bad key."""
    file = config_path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: configuration file not found")
    try:
        with file.open("rb") as stream:
            tomllib.load(stream)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None

    unknown_env = _unknown_env_keys()
    if unknown_env:
        raise ConfigError("\n".join(f"{name}: unknown key" for name in unknown_env))
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=file, secrets_dir=credentials)

    try:
        return _FromFile()
    except ValidationError as exc:
        raise ConfigError(_describe(exc, file, credentials)) from None
    except SettingsError as exc:
        raise ConfigError(f"{file}: {exc}") from None


def _unknown_env_keys() -> list[str]:
    # pydantic-settings silently ignores prefixed variables that match no root key; a typo such as
    # PORTFOLIO_MONITOR_STATE_DIRR would then be lost without a word.
    unknown = []
    for name in sorted(os.environ):
        if not name.upper().startswith(ENV_PREFIX) or name.upper() == CONFIG_PATH_ENV:
            continue
        root_key = name[len(ENV_PREFIX) :].lower().split("__", 1)[0]
        if root_key not in Settings.model_fields:
            unknown.append(name)
    return unknown


def _describe(exc: ValidationError, file: Path, credentials: str | None) -> str:
    """One line per problem, each naming the dotted key path and, when the value came from the
    environment or a credential file, which one; input values are never echoed."""
    lines = [f"{file}: invalid configuration"]
    environment = {name.upper() for name in os.environ}
    for error in exc.errors(include_input=False, include_url=False):
        path = ".".join(str(part) for part in error["loc"])
        credential = "__".join(str(p) for p in error["loc"])
        env = ENV_PREFIX + credential.upper()
        if error["type"] == "extra_forbidden":
            problem = "unknown key"
        elif error["type"] == "missing":
            problem = (
                f"required key missing (set it in the file, in {env} or as credential {credential})"
            )
        else:
            problem = error["msg"].removeprefix("Value error, ")
        # A wrong value that is not in the file would otherwise send the reader to the file.
        if env in environment:
            problem += f" (from {env})"
        elif credentials and path and (Path(credentials) / credential).is_file():
            problem += f" (from credential {credential})"
        # Whole-document checks name their key paths in the message itself.
        lines.append(f"  {path}: {problem}" if path else f"  {problem}")
    return "\n".join(lines)
