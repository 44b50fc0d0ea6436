"""The `[notify.*]` section: where alerts go (MQTT with Home Assistant discovery, the console log,
and any number of named webhooks: generic JSON, Telegram, ntfy, Slack, Discord, Pushover)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_serializer,
    field_validator,
)

from monitor.config.types import Credential, Duration

WebhookKind = Literal["json", "telegram", "ntfy", "slack", "discord", "pushover"]

# Which keys each kind needs and which it may use; a key given to a kind that ignores it is an
# error, so a Telegram `url` typo or a Slack `secret` does not pass silently.
_REQUIRED: dict[str, frozenset[str]] = {
    "json": frozenset({"url"}),
    "telegram": frozenset({"bot_token", "chat_id"}),
    "ntfy": frozenset({"topic"}),
    "slack": frozenset({"url"}),
    "discord": frozenset({"url"}),
    "pushover": frozenset({"token", "user"}),
}
_OPTIONAL: dict[str, frozenset[str]] = {
    "json": frozenset({"secret", "headers"}),
    "telegram": frozenset({"message_thread_id", "api_url"}),
    "ntfy": frozenset({"server", "token"}),
    "slack": frozenset(),
    "discord": frozenset(),
    "pushover": frozenset({"api_url", "emergency_retry", "emergency_expire"}),
}
# Every key some kind uses: each is checked against the kind it was given to.
_KIND_FIELDS = tuple(
    sorted({key for keys in (*_REQUIRED.values(), *_OPTIONAL.values()) for key in keys})
)
RESERVED_SINK_NAMES = frozenset({"mqtt", "console"})


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # The value is not echoed: webhook URLs carry tokens.
        raise ValueError("not an http(s) URL (expected https://host/path)")
    return value


class MqttSettings(BaseModel):
    """`[notify.mqtt]`: the broker that receives state, alerts and Home Assistant discovery."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    topic_prefix: str = "portfolio_monitor"
    discovery_prefix: str = "homeassistant"
    discovery: bool = True
    client_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    keepalive: Duration = timedelta(seconds=30)
    queue_size: int = Field(default=1000, ge=1)
    alerts: bool = True

    @field_validator("topic_prefix", "discovery_prefix")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not value or any(c in value for c in "+#") or value.startswith("/"):
            raise ValueError("a topic prefix without '+', '#' or a leading '/'")
        return value.rstrip("/")

    @field_validator("ca_file", "client_cert", "client_key")
    @classmethod
    def _exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return value
        if not info.data.get("tls"):
            raise ValueError("only used with tls = true")
        if not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @field_validator("client_key")
    @classmethod
    def _key_needs_cert(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("client_cert") is None:
            raise ValueError("client_key needs client_cert")
        return value


class ConsoleSettings(BaseModel):
    """`[notify.console]`: alerts written to the log (the demo's sink)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookSettings(BaseModel):
    """`[notify.webhooks.NAME]`: one HTTP sink; `kind` decides which other keys it needs."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    kind: WebhookKind
    url: SecretStr | None = None
    secret: Credential | None = None
    headers: dict[str, str] | None = None
    bot_token: Credential | None = None
    chat_id: str | None = None
    message_thread_id: int | None = None
    api_url: str | None = None
    server: str | None = None
    topic: str | None = None
    token: Credential | None = None
    user: Credential | None = None
    emergency_retry: Duration | None = None
    emergency_expire: Duration | None = None
    timeout: Duration = timedelta(seconds=10)

    @field_validator(*_KIND_FIELDS)
    @classmethod
    def _belongs_to_kind(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if kind is None:  # the kind itself is invalid; that error is reported on `kind`
            return value
        name = info.field_name or ""
        if value is None:
            if name in _REQUIRED[kind]:
                raise ValueError(f"required for kind {kind!r}")
            return value
        if name not in _REQUIRED[kind] | _OPTIONAL[kind]:
            raise ValueError(f"not used by kind {kind!r}")
        return value

    @field_serializer("headers", when_used="json")
    def _masked_headers(self, headers: dict[str, str] | None) -> dict[str, str] | None:
        # check-config: a header often carries a credential (Authorization: Bearer ...).
        return None if headers is None else dict.fromkeys(headers, "**********")

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_url(value.get_secret_value())
        return value

    @field_validator("api_url", "server")
    @classmethod
    def _plain_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value).rstrip("/")

    @field_validator("emergency_retry")
    @classmethod
    def _pushover_retry(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value.total_seconds() < 30:
            raise ValueError("Pushover needs at least 30s between emergency retries")
        return value

    @field_validator("emergency_expire")
    @classmethod
    def _pushover_expire(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and not 0 < value.total_seconds() <= 10800:
            raise ValueError("Pushover accepts an emergency expiry up to 3h")
        return value

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("must be more than 0s")
        return value


class DeliverySettings(BaseModel):
    """`[notify.delivery]`: how the outbox retries a sink that is down."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retry_initial: Duration = timedelta(seconds=5)
    retry_max: Duration = timedelta(minutes=15)
    flush_timeout: Duration = timedelta(seconds=5)
    # Alerts held for a failing or disabled sink are delivered when it works again if younger
    # than this; older ones are summarised in one message to it.
    max_age: Duration = timedelta(hours=24)

    @field_validator("retry_initial", "retry_max", "max_age")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("must be more than 0s")
        return value

    @field_validator("flush_timeout")
    @classmethod
    def _fits_the_stop_timeout(cls, value: timedelta) -> timedelta:
        # With the 8 s the poll cycle in flight may take (and 5 s a reload in progress),
        # shutdown must end well inside the unit's TimeoutStopSec=30s; past it systemd kills
        # the daemon before MQTT hears "offline" and the database is closed.
        if value > timedelta(seconds=10):
            raise ValueError("at most 10s (shutdown must fit systemd's TimeoutStopSec=30s)")
        return value


class NotifySettings(BaseModel):
    """`[notify]`: every configured sink. A sink exists when its section exists."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mqtt: MqttSettings | None = None
    console: ConsoleSettings | None = None
    webhooks: dict[str, WebhookSettings] = {}
    delivery: DeliverySettings = DeliverySettings()

    @field_validator("webhooks", mode="before")
    @classmethod
    def _sink_names(cls, webhooks: Any) -> Any:
        for name in webhooks if isinstance(webhooks, dict) else ():
            if name in RESERVED_SINK_NAMES:
                raise ValueError(f"webhook name {name!r} is reserved for [notify.{name}]")
            # Env variables and credential file names are case-insensitive, so names must be too.
            if not name or not all(c.islower() or c.isdigit() or c in "_-" for c in name):
                raise ValueError(
                    f"webhook name {name!r}: use lower-case letters, digits, '_' and '-'"
                )
        return webhooks

    def sink_names(self) -> list[str]:
        """Names of the sinks that take alerts from the outbox, in a stable order."""
        names = ["mqtt"] if self.mqtt is not None and self.mqtt.alerts else []
        if self.console is not None:
            names.append("console")
        return names + sorted(self.webhooks)

    def only_the_log_warning(self) -> str | None:
        """The warning to give when no sink outside this machine's log takes alerts, else None."""
        if [name for name in self.sink_names() if name != "console"]:
            return None
        # Alerts in a log nobody reads look like a working setup until the day one matters.
        return (
            "no alert sink besides the log is configured: alerts will only be logged; add "
            "[notify.mqtt] or a [notify.webhooks.NAME] (Telegram, ntfy, Slack, ...), then "
            "portfolio-monitor test-notify"
        )
