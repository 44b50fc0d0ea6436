"""Which class serves which `kind`, and building every configured sink from `[notify]`."""

from __future__ import annotations

from collections.abc import Callable

from monitor.config.notify import NotifySettings, WebhookSettings
from monitor.notify.console.transport import ConsoleSink
from monitor.notify.discord.transport import DiscordSink
from monitor.notify.http.transport import HttpTransport
from monitor.notify.ntfy.transport import NtfySink
from monitor.notify.pushover.transport import PushoverSink
from monitor.notify.slack.transport import SlackSink
from monitor.notify.telegram.transport import TelegramSink
from monitor.notify.webhook.transport import JsonWebhookSink
from monitor.ports import Sink

SINK_CLASSES: dict[str, Callable[[str, WebhookSettings, HttpTransport], Sink]] = {
    "json": JsonWebhookSink,
    "telegram": TelegramSink,
    "ntfy": NtfySink,
    "slack": SlackSink,
    "discord": DiscordSink,
    "pushover": PushoverSink,
}


def build_sinks(
    settings: NotifySettings, http: HttpTransport, mqtt: Sink | None = None
) -> dict[str, Sink]:
    """Every configured sink by name, in `settings.sink_names()` order. The MQTT sink is the
    running publisher, passed in by the caller (it owns the broker connection)."""
    sinks: dict[str, Sink] = {}
    if mqtt is not None and settings.mqtt is not None and settings.mqtt.alerts:
        sinks["mqtt"] = mqtt
    if settings.console is not None:
        sinks["console"] = ConsoleSink()
    for name in sorted(settings.webhooks):
        webhook = settings.webhooks[name]
        sinks[name] = SINK_CLASSES[webhook.kind](name, webhook, http)
    return sinks
