"""Building every configured sink from `[notify]`: each webhook by the transport of its `kind`."""

from __future__ import annotations

from typing import assert_never

from monitor.config.notify import NotifySettings, WebhookSettings
from monitor.notify.console.transport import ConsoleSink
from monitor.notify.discord.settings import DiscordSettings
from monitor.notify.discord.transport import DiscordSink
from monitor.notify.http.transport import HttpTransport
from monitor.notify.ntfy.settings import NtfySettings
from monitor.notify.ntfy.transport import NtfySink
from monitor.notify.pushover.settings import PushoverSettings
from monitor.notify.pushover.transport import PushoverSink
from monitor.notify.slack.settings import SlackSettings
from monitor.notify.slack.transport import SlackSink
from monitor.notify.telegram.settings import TelegramSettings
from monitor.notify.telegram.transport import TelegramSink
from monitor.notify.webhook.settings import JsonWebhookSettings
from monitor.notify.webhook.transport import JsonWebhookSink
from monitor.ports import Sink


def webhook_sink(name: str, settings: WebhookSettings, http: HttpTransport) -> Sink:
    """The sink of one `[notify.webhooks.NAME]` section: the transport beside its settings model."""
    match settings:
        case JsonWebhookSettings():
            return JsonWebhookSink(name, settings, http)
        case TelegramSettings():
            return TelegramSink(name, settings, http)
        case NtfySettings():
            return NtfySink(name, settings, http)
        case SlackSettings():
            return SlackSink(name, settings, http)
        case DiscordSettings():
            return DiscordSink(name, settings, http)
        case PushoverSettings():
            return PushoverSink(name, settings, http)
    assert_never(settings)


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
        sinks[name] = webhook_sink(name, settings.webhooks[name], http)
    return sinks
