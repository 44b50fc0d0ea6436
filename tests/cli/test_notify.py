"""`portfolio-monitor test-notify` against real receivers: a local HTTP server and mosquitto."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app, test_notify
from monitor.notify.http.transport import host_of
from monitor.notify.mqtt.settings import MqttSettings
from monitor.notify.mqtt.transport import MqttPublisher
from tests.notify.mqtt_client import collect, relayed
from tests.support.mosquitto import Mosquitto, free_port, mosquitto_binary
from tests.support.tools import tool_missing


class Receiver:
    """A plain HTTP server on 127.0.0.1 that records every POST and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.bodies: list[dict[str, object]] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.headers.append(dict(self.headers))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


def test_every_sink_gets_the_test_message(tmp_path: Path, receiver: Receiver) -> None:
    config = write_config(
        tmp_path,
        f'[notify.console]\n[notify.webhooks.ops]\nkind = "json"\nurl = "{receiver.url}"\n',
    )
    code, out, err = run("test-notify", "--config", config)
    assert code == 0, out + err
    assert out.splitlines() == ["console: ok", "ops: ok"]
    (body,) = receiver.bodies
    assert body["event"] == "test"
    assert body["title"] == "Test notification from portfolio-monitor"
    assert receiver.headers[0]["Idempotency-Key"] == body["id"]


def test_a_failing_sink_is_reported_and_exits_1(tmp_path: Path, receiver: Receiver) -> None:
    port = free_port()
    token = "123456:AAH-secret-bot-token"
    config = write_config(
        tmp_path,
        f'[notify.webhooks.ops]\nkind = "json"\nurl = "{receiver.url}"\n'
        f'[notify.webhooks.gone]\nkind = "slack"\nurl = "http://127.0.0.1:{port}/T/B/hook-secret"\n'
        f'[notify.webhooks.tg]\nkind = "telegram"\nbot_token = "{token}"\nchat_id = "42"\n'
        f'api_url = "http://localhost:{port}"\n',
    )
    code, out, err = run("test-notify", "--config", config)
    assert code == 1
    assert "ops: ok" in out
    # The host is named so a wrong one can be spotted; the token in the URL path never shows.
    assert (
        f"gone: FAILED: gone: request to 127.0.0.1:{port} failed (ConnectError) (retryable)" in out
    )
    assert f"tg: FAILED: tg: request to localhost:{port} failed (ConnectError)" in out
    assert token not in out + err
    assert "hook-secret" not in out + err


def test_permanent_rejection_is_named(tmp_path: Path, receiver: Receiver) -> None:
    receiver.status = 404
    config = write_config(
        tmp_path, f'[notify.webhooks.ops]\nkind = "json"\nurl = "{receiver.url}"\n'
    )
    code, out, _ = run("test-notify", "--config", config)
    assert code == 1
    assert f"ops: FAILED: ops: HTTP 404; tried {host_of(receiver.url)} (permanent)" in out


def test_only_the_named_sink(tmp_path: Path, receiver: Receiver) -> None:
    config = write_config(
        tmp_path,
        f'[notify.console]\n[notify.webhooks.ops]\nkind = "json"\nurl = "{receiver.url}"\n',
    )
    code, out, _ = run("test-notify", "--config", config, "--sink", "console")
    assert code == 0
    assert out.splitlines() == ["console: ok"]
    assert receiver.bodies == []


def test_unknown_sink_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[notify.console]\n")
    code, _, err = run("test-notify", "--config", config, "--sink", "telegram")
    assert code == 2
    assert "--sink telegram: no such sink (configured: console)" in err


def test_no_sink_configured_is_a_config_error(tmp_path: Path) -> None:
    code, _, err = run("test-notify", "--config", write_config(tmp_path, ""))
    assert code == 78
    assert "no sink configured under [notify]" in err


def test_wrong_sink_config_names_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[notify.webhooks.tg]\nkind = "telegram"\nchat_id = "1"\n')
    code, _, err = run("test-notify", "--config", config)
    assert code == 78
    assert "notify.webhooks.tg.bot_token: required key missing" in err
    assert "PORTFOLIO_MONITOR_NOTIFY__WEBHOOKS__TG__BOT_TOKEN" in err


@pytest.mark.mqtt
async def test_mqtt_sink(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = write_config(
        tmp_path, f'[notify.mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n'
    )
    topic = "portfolio_monitor/_monitor/alert"
    async with relayed(mosquitto, [topic], until=bool) as seen:
        code, out, err = await asyncio.to_thread(run, "test-notify", "--config", config)
        assert code == 0, out + err
        assert out.splitlines() == ["mqtt: ok"]
    (message,) = seen
    assert message.json()["event"] == "test"
    assert not message.retain


@pytest.mark.mqtt
async def test_mqtt_test_leaves_the_running_daemon_alone(
    tmp_path: Path,
    mosquitto: Mosquitto,
) -> None:
    """test-notify on the daemon's host, with the daemon's config: the daemon keeps its session
    and Home Assistant keeps seeing it online."""
    settings = f'[notify.mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n'
    config = write_config(tmp_path, settings + 'client_id = "pm-daemon"\n')
    availability = "portfolio_monitor/availability"
    daemon_settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, client_id="pm-daemon")
    async with MqttPublisher(daemon_settings) as daemon:
        async with asyncio.timeout(5):
            await daemon.wait_connected()
        code, out, err = await asyncio.to_thread(run, "test-notify", "--config", config)
        assert code == 0, out + err
        seen = await collect(mosquitto, [availability], until=bool)
        assert [m.payload for m in seen] == [b"online"]
        assert daemon.connected
    assert "already connected" not in mosquitto.log()  # the daemon was never thrown off


def test_mqtt_broker_down_fails(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, f'[notify.mqtt]\nhost = "127.0.0.1"\nport = {port}\n')
    code, out, _ = run("test-notify", "--config", config)
    assert code == 1
    assert f"mqtt: FAILED: mqtt: not connected to 127.0.0.1:{port} (" in out
    assert "refused" in out  # the reason, not only "not connected"


@pytest.mark.mqtt
def test_mqtt_login_refused_says_why_without_waiting(tmp_path: Path) -> None:
    if mosquitto_binary() is None:
        tool_missing("mosquitto binary not installed (apt-get install mosquitto, or run .ci/run)")
    with Mosquitto(tmp_path / "broker", allow_anonymous=False) as broker:
        config = write_config(
            tmp_path,
            f'[notify.mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
            'username = "monitor"\npassword = "not-the-password"\n',
        )
        started = time.monotonic()
        code, out, _ = run("test-notify", "--config", config)
    assert code == 1
    assert "Not authorized" in out, out
    assert "not-the-password" not in out
    assert time.monotonic() - started < test_notify.MQTT_CONNECT_TIMEOUT
