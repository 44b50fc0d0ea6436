"""`portfolio-monitor test-notify`: send a test notification straight to each configured sink
(not through the outbox) and say, per sink, whether it arrived or what the sink answered."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from monitor.cli.app import EXIT_CONFIG, EXIT_FAILURE, app
from monitor.cli.options import ConfigOption, load_or_exit, usage_error
from monitor.domain.errors import PermanentError
from monitor.domain.notification import Notification, NotificationKind, Severity
from monitor.errors import DeliveryError

# The sinks (httpx, aiomqtt) are imported when a notification is sent (start-up time).
if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.ports import Sink

# How long the MQTT sink may take to connect before the test counts as failed.
MQTT_CONNECT_TIMEOUT = 10.0


def sample_notification(now: datetime) -> Notification:
    """The message every sink receives from `test-notify`."""
    return Notification(
        id=f"test:{int(now.timestamp())}",
        account="",
        rule="test",
        kind=NotificationKind.TEST,
        severity=Severity.INFO,
        title="Test notification from portfolio-monitor",
        text="If you can read this, alerts from portfolio-monitor reach this sink.",
        created_at=now,
    )


@app.command("test-notify")
def notify_test_command(
    config: ConfigOption = None,
    sink: Annotated[
        list[str] | None,
        typer.Option(
            "--sink", help="Only this sink (repeatable): mqtt, console or a webhook name."
        ),
    ] = None,
) -> None:
    """Send a test notification to every configured sink (exit 1 if any failed)."""
    import asyncio

    settings = load_or_exit(config)
    configured = settings.notify.sink_names()
    if not configured:
        sys.stderr.write("configuration error: no sink configured under [notify]\n")
        raise typer.Exit(EXIT_CONFIG)
    chosen = list(dict.fromkeys(sink)) if sink else configured
    unknown = [name for name in chosen if name not in configured]
    if unknown:
        raise usage_error(
            f"--sink {unknown[0]}: no such sink (configured: {', '.join(configured)})"
        )
    results = asyncio.run(_send_all(settings, chosen))
    for name in chosen:
        error = results[name]
        sys.stdout.write(f"{name}: {'ok' if error is None else 'FAILED: ' + error}\n")
    if any(error is not None for error in results.values()):
        raise typer.Exit(EXIT_FAILURE)


async def _send_all(settings: Settings, names: list[str]) -> dict[str, str | None]:
    import asyncio

    from monitor.notify.http.transport import HttpTransport
    from monitor.notify.mqtt.transport import MqttPublisher
    from monitor.notify.sinks import build_sinks

    notification = sample_notification(datetime.now(UTC))
    mqtt_settings = settings.notify.mqtt if "mqtt" in names else None
    async with HttpTransport() as http:
        if mqtt_settings is None:
            sinks = build_sinks(settings.notify, http)
            return await _send(sinks, names, notification)
        async with MqttPublisher(mqtt_settings, availability=False) as mqtt:
            try:
                async with asyncio.timeout(MQTT_CONNECT_TIMEOUT):
                    await mqtt.wait_attempted()
            except TimeoutError:
                pass  # send() then reports "not connected" (and why, if the broker said) for this sink
            sinks = build_sinks(settings.notify, http, mqtt)
            return await _send(sinks, names, notification)


async def _send(
    sinks: Mapping[str, Sink], names: list[str], notification: Notification
) -> dict[str, str | None]:
    import asyncio

    async def one(name: str) -> str | None:
        sink = sinks[name]
        try:
            await sink.send(notification)
        except DeliveryError as error:
            kind = "permanent" if isinstance(error, PermanentError) else "retryable"
            host = getattr(sink, "last_host", None)
            tried = f"; tried {host}" if host and host not in str(error) else ""
            return f"{error}{tried} ({kind})"
        return None

    outcomes = await asyncio.gather(*(one(name) for name in names))
    return dict(zip(names, outcomes, strict=True))
