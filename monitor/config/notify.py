"""The `[notify.*]` section: where alerts go (MQTT with Home Assistant discovery, the console log,
and any number of named webhooks: generic JSON, Telegram, ntfy, Slack, Discord, Pushover).

Each sink's own keys are modelled beside its transport (`monitor/notify/<sink>/settings.py`); a
webhook's `kind` picks the model its other keys are checked against.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, TypeAlias, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from monitor.config.types import Duration
from monitor.notify.console.settings import ConsoleSettings
from monitor.notify.discord.settings import DiscordSettings
from monitor.notify.mqtt.settings import MqttSettings
from monitor.notify.ntfy.settings import NtfySettings
from monitor.notify.pushover.settings import PushoverSettings
from monitor.notify.slack.settings import SlackSettings
from monitor.notify.telegram.settings import TelegramSettings
from monitor.notify.webhook.settings import JsonWebhookSettings

AnyWebhookSettings: TypeAlias = (
    JsonWebhookSettings
    | TelegramSettings
    | NtfySettings
    | SlackSettings
    | DiscordSettings
    | PushoverSettings
)
# Each webhook model by its `kind`, in the order the error for an unknown kind lists them.
WEBHOOK_MODELS: dict[str, type[BaseModel]] = {
    get_args(model.model_fields["kind"].annotation)[0]: model
    for model in get_args(AnyWebhookSettings)
}
# Every key some kind uses: given to another kind it is "not used", not "unknown".
_WEBHOOK_KEYS = frozenset(key for model in WEBHOOK_MODELS.values() for key in model.model_fields)
_WEBHOOK_KEY_PATHS = frozenset((key,) for key in _WEBHOOK_KEYS)
RESERVED_SINK_NAMES = frozenset({"mqtt", "console"})


def _kinds() -> str:
    *first, last = (repr(kind) for kind in WEBHOOK_MODELS)
    return f"{', '.join(first)} or {last}"


def _error(
    error_type: str, message: str, loc: tuple[int | str, ...], value: Any
) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(error_type, message), loc=loc, input=value)


def _as_in_the_file(error: ErrorDetails, value: Any) -> list[InitErrorDetails]:
    """One error of the tagged union in the file's terms: pydantic puts the tag into the key path
    (`webhooks.tg.telegram.url`), and reports a bad or missing `kind` on the section itself."""
    loc, kind = error["loc"], None
    if error["type"] == "model_attributes_type" and not loc:  # a value where a table belongs
        return [_error("dict_type", "Input should be a valid dictionary", loc, value)]
    if error["type"] in ("union_tag_invalid", "union_tag_not_found") and isinstance(value, dict):
        given = value.get("kind")
        problem = (
            _error("missing", "Field required", ("kind",), value)
            if given is None
            else _error("literal_error", f"Input should be {_kinds()}", ("kind",), given)
        )
        # Keys no kind knows are wrong whatever the kind was meant to be.
        unknown = [
            _error("extra_forbidden", "Extra inputs are not permitted", (key,), value[key])
            for key in value
            if key not in _WEBHOOK_KEYS
        ]
        return [problem, *unknown]
    if loc and loc[0] in WEBHOOK_MODELS:
        kind, loc = str(loc[0]), loc[1:]
    if error["type"] == "extra_forbidden" and kind is not None and loc in _WEBHOOK_KEY_PATHS:
        return [_error("not_used", f"not used by kind {kind!r}", loc, error["input"])]
    return [_error(error["type"], error["msg"], loc, error["input"])]


def _errors_as_in_the_file(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError as exc:
        errors = [line for error in exc.errors() for line in _as_in_the_file(error, value)]
        raise ValidationError.from_exception_data(exc.title, errors) from None


WebhookSettings: TypeAlias = Annotated[
    AnyWebhookSettings, Field(discriminator="kind"), WrapValidator(_errors_as_in_the_file)
]
"""`[notify.webhooks.NAME]`: one HTTP sink, checked against the model of its `kind`."""


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
