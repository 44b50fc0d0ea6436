"""MQTT over TLS with a client certificate and a password, against a real mosquitto."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from monitor.domain.errors import RetryableError
from monitor.errors import DeliveryError
from monitor.notify.mqtt.settings import MqttSettings
from monitor.notify.mqtt.transport import MqttPublisher
from tests.notify.factories import notification, quick_reconnect
from tests.support.mosquitto import Mosquitto, mosquitto_binary
from tests.support.tools import tool_missing

pytestmark = pytest.mark.mqtt

PASSWORD = "broker-password-0042"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(name: str, cwd: Path, san: str | None = None) -> None:
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=cwd,
    )  # fmt: skip
    extra = []
    if san:
        (cwd / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        extra = ["-extfile", f"{name}.ext"]
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *extra, cwd=cwd,
    )  # fmt: skip


@pytest.fixture(name="tls_broker")
def _tls_broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    if mosquitto_binary() is None or shutil.which("mosquitto_passwd") is None:
        tool_missing("mosquitto or mosquitto_passwd not installed (run .ci/run)")
    if shutil.which("openssl") is None:
        tool_missing("openssl not installed: cannot make test certificates")
    pki = tmp_path / "pki"
    pki.mkdir()
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca", cwd=pki,
    )  # fmt: skip
    _issue("server", pki, san="IP:127.0.0.1")
    _issue("client", pki)
    passwords = pki / "passwords"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "monitor", PASSWORD],
        check=True,
        capture_output=True,
    )
    options = "\n".join(
        [
            f"cafile {pki / 'ca.pem'}",
            f"certfile {pki / 'server.pem'}",
            f"keyfile {pki / 'server.key'}",
            "require_certificate true",
            f"password_file {passwords}",
        ]
    )
    with Mosquitto(tmp_path / "broker", listener_options=options, allow_anonymous=False) as broker:
        yield broker, pki


def _settings(broker: Mosquitto, pki: Path, password: str) -> MqttSettings:
    return MqttSettings(
        host=broker.host,
        port=broker.port,
        client_id="pm-tls",
        username="monitor",
        password=password,  # type: ignore[arg-type]
        tls=True,
        ca_file=pki / "ca.pem",
        client_cert=pki / "client.pem",
        client_key=pki / "client.key",
    )


async def test_tls_with_client_certificate_and_password(
    tls_broker: tuple[Mosquitto, Path],
) -> None:
    broker, pki = tls_broker
    async with MqttPublisher(_settings(broker, pki, PASSWORD)) as publisher:
        async with asyncio.timeout(10):
            await publisher.wait_connected()
        await publisher.send(notification())  # returns only after the broker's PUBACK


async def test_wrong_password_never_connects_and_is_not_logged(
    tls_broker: tuple[Mosquitto, Path], caplog: pytest.LogCaptureFixture
) -> None:
    broker, pki = tls_broker
    wrong = "wrong-password-9876"
    with caplog.at_level(logging.DEBUG):
        async with MqttPublisher(
            _settings(broker, pki, wrong), reconnect=quick_reconnect(0.2)
        ) as publisher:
            # Letting time pass is the point: several attempts (0.1-0.2 s apart), none connects.
            await asyncio.sleep(1.0)
            assert not publisher.connected
            with pytest.raises(DeliveryError) as caught:
                await publisher.send(notification())
            assert isinstance(caught.value, RetryableError)
    assert "unavailable" in caplog.text
    assert wrong not in caplog.text
    assert PASSWORD not in caplog.text
