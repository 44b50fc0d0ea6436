"""`build_sinks`: one sink per configured section, every kind with the same shape."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from pydantic import TypeAdapter

from monitor.config.notify import WEBHOOK_MODELS, NotifySettings, WebhookSettings
from monitor.notify.console.transport import ConsoleSink
from monitor.notify.http.transport import HttpSink, HttpTransport
from monitor.notify.sinks import build_sinks, webhook_sink
from monitor.notify.telegram.transport import TelegramSink
from monitor.notify.webhook.transport import JsonWebhookSink

# The least each kind needs; a kind added without an entry here fails the first test.
MINIMAL: dict[str, dict[str, Any]] = {
    "json": {"url": "https://example.org/hook"},
    "telegram": {"bot_token": "1:x", "chat_id": "1"},
    "ntfy": {"topic": "t"},
    "slack": {"url": "https://hooks.slack.com/x"},
    "discord": {"url": "https://discord.com/api/webhooks/x"},
    "pushover": {"token": "t", "user": "u"},
}


def test_every_kind_is_listed() -> None:
    assert set(WEBHOOK_MODELS) == set(MINIMAL)


@pytest.mark.parametrize("kind", sorted(MINIMAL))
async def test_every_kind_has_a_sink_with_the_same_shape(kind: str) -> None:
    settings = TypeAdapter(WebhookSettings).validate_python({"kind": kind, **MINIMAL[kind]})
    assert type(settings) is WEBHOOK_MODELS[kind]
    async with HttpTransport() as http:
        sink = webhook_sink("hook", settings, http)
    sink_class = type(sink)
    assert isinstance(sink, HttpSink)
    assert sink.name == "hook"
    assert list(inspect.signature(sink_class).parameters) == ["name", "settings", "http"]
    assert inspect.iscoroutinefunction(sink_class.send)
    # Each transport lives beside its settings model, in the same package.
    assert sink_class.__module__.rsplit(".", 1)[0] == type(settings).__module__.rsplit(".", 1)[0]


async def test_build_sinks_by_name() -> None:
    settings = NotifySettings.model_validate(
        {
            "mqtt": {"alerts": True},
            "console": {},
            "webhooks": {
                "tg": {"kind": "telegram", "bot_token": "1:x", "chat_id": "1"},
                "ops": {"kind": "json", "url": "https://example.org/hook"},
            },
        }
    )

    class FakeMqtt:
        name = "mqtt"

        async def send(self, notification: object) -> None:
            return

    mqtt = FakeMqtt()
    async with HttpTransport() as http:
        sinks = build_sinks(settings, http, mqtt)
        without_mqtt = build_sinks(settings, http)
    assert list(sinks) == settings.sink_names() == ["mqtt", "console", "ops", "tg"]
    assert sinks["mqtt"] is mqtt
    assert isinstance(sinks["console"], ConsoleSink)
    assert isinstance(sinks["ops"], JsonWebhookSink)
    assert isinstance(sinks["tg"], TelegramSink)
    assert all(sink.name == name for name, sink in sinks.items())
    assert "mqtt" not in without_mqtt
