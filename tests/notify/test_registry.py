"""`build_sinks`: one sink per configured section, every kind with the same shape."""

from __future__ import annotations

import inspect

from monitor.config.notify import NotifySettings
from monitor.notify.console.transport import ConsoleSink
from monitor.notify.http.transport import HttpTransport
from monitor.notify.sinks import SINK_CLASSES, build_sinks
from monitor.notify.telegram.transport import TelegramSink
from monitor.notify.webhook.transport import JsonWebhookSink


def test_every_kind_has_a_sink_with_the_same_shape() -> None:
    assert set(SINK_CLASSES) == {"json", "telegram", "ntfy", "slack", "discord", "pushover"}
    for kind, sink_class in SINK_CLASSES.items():
        parameters = list(inspect.signature(sink_class).parameters)
        assert parameters == ["name", "settings", "http"], kind
        assert inspect.iscoroutinefunction(sink_class.send), kind  # type: ignore[attr-defined]
        assert isinstance(inspect.getattr_static(sink_class, "name"), property), kind


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
