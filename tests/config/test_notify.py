"""The `[notify.*]` section: every mistake is reported with its key path, secrets stay masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.config.notify import WEBHOOK_MODELS
from monitor.errors import ConfigError
from monitor.notify.mqtt.settings import MqttSettings
from monitor.notify.pushover.settings import PushoverSettings
from monitor.notify.telegram.settings import TelegramSettings

VALID = """
[notify.mqtt]
host = "broker.lan"
port = 8883
username = "monitor"
password = "mqtt-password-123"

[notify.console]

[notify.webhooks.ops]
kind = "json"
url = "https://hooks.example.org/alert?token=url-secret-456"
secret = "hmac-secret-789"

[notify.webhooks.phone]
kind = "ntfy"
topic = "margin"
token = "tk_ntfy"

[notify.webhooks.tg]
kind = "telegram"
bot_token = "123:telegram-secret"
chat_id = "-100123"

[notify.webhooks.pager]
kind = "pushover"
token = "app"
user = "user"
emergency_retry = "2m"
emergency_expire = "2h"

[notify.delivery]
retry_initial = "2s"
retry_max = "10m"
"""


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_settings(path)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    return str(caught.value)


def test_valid_section_and_masked_secrets(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(VALID)
    settings = load_settings(path)
    notify = settings.notify
    assert notify.sink_names() == ["mqtt", "console", "ops", "pager", "phone", "tg"]
    pager = notify.webhooks["pager"]
    assert isinstance(pager, PushoverSettings)
    assert pager.emergency_retry is not None
    assert pager.emergency_retry.total_seconds() == 120
    assert notify.delivery.retry_max.total_seconds() == 600
    shown = str(settings.masked_dump())
    for secret in ("mqtt-password-123", "url-secret-456", "hmac-secret-789", "telegram-secret"):
        assert secret not in shown


def test_secrets_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTFOLIO_MONITOR_NOTIFY__WEBHOOKS__TG__BOT_TOKEN", "from-env")
    path = tmp_path / "config.toml"
    path.write_text('[notify.webhooks.tg]\nkind = "telegram"\nchat_id = "1"\n')
    telegram = load_settings(path).notify.webhooks["tg"]
    assert isinstance(telegram, TelegramSettings)
    assert telegram.bot_token.get_secret_value() == "from-env"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[notify.webhooks.ops]\nkind = "json"\nurl = "ftp://x/secret-token"\n',
            "notify.webhooks.ops.url: not an http(s) URL",
        ),
        (
            '[notify.webhooks.ops]\nkind = "json"\n',
            "notify.webhooks.ops.url: required key missing (set it in the file, in "
            "PORTFOLIO_MONITOR_NOTIFY__WEBHOOKS__OPS__URL or as credential notify__webhooks__ops__url)",
        ),
        (
            '[notify.webhooks.ops]\nkind = "carrier-pigeon"\nurl = "https://x"\n',
            "notify.webhooks.ops.kind: Input should be 'json', 'telegram', 'ntfy', 'slack', 'discord' or 'pushover'",
        ),
        (
            '[notify.webhooks.tg]\nkind = "telegram"\nchat_id = "1"\n',
            "notify.webhooks.tg.bot_token: required key missing",
        ),
        (
            '[notify.webhooks.po]\nkind = "pushover"\nuser = "u"\n',
            "notify.webhooks.po.token: required key missing",
        ),
        (
            '[notify.webhooks.sl]\nkind = "slack"\nurl = "https://x"\nsecret = "s"\n',
            "notify.webhooks.sl.secret: not used by kind 'slack'",
        ),
        (
            '[notify.webhooks.ops]\nkind = "json"\nurl = "https://x"\nurll = "https://y"\n',
            "notify.webhooks.ops.urll: unknown key",
        ),
        (
            "[notify.webhooks.ops]\nkind = 3\n",
            "notify.webhooks.ops.kind: Input should be 'json', 'telegram', 'ntfy', 'slack', 'discord' or 'pushover'",
        ),
        (
            '[notify.webhooks.ops]\nurl = "https://x/secret-token"\nurll = "https://y"\n',
            "notify.webhooks.ops.kind: required key missing",
        ),
        (
            '[notify.webhooks.ops]\nurl = "https://x/secret-token"\nurll = "https://y"\n',
            "notify.webhooks.ops.urll: unknown key",
        ),
        (
            '[notify.webhooks.tg]\nkind = "telegram"\nbot_token = "b"\nchat_id = "1"\ntopic = "x"\n',
            "notify.webhooks.tg.topic: not used by kind 'telegram'",
        ),
        (
            '[notify.webhooks.ph]\nkind = "ntfy"\ntopic = "t"\ntimeout = "0s"\n',
            "notify.webhooks.ph.timeout: must be more than 0s",
        ),
        (
            '[notify.webhooks.po]\nkind = "pushover"\ntoken = "t"\nuser = "u"\nemergency_retry = "5s"\n',
            "notify.webhooks.po.emergency_retry: Pushover needs at least 30s",
        ),
        (
            '[notify]\nwebhooks = { a = "x" }\n',
            "notify.webhooks.a: Input should be a valid dictionary",
        ),
        (
            "[notify.mqtt]\nport = 0\n",
            "notify.mqtt.port: Input should be greater than or equal to 1",
        ),
        (
            '[notify.mqtt]\nca_file = "/etc/ssl/x.pem"\n',
            "notify.mqtt.ca_file: only used with tls = true",
        ),
        (
            '[notify.mqtt]\ntls = true\nca_file = "/nonexistent/ca.pem"\n',
            "notify.mqtt.ca_file: file not found: /nonexistent/ca.pem",
        ),
        ('[notify.mqtt]\ntopic_prefix = "a/#"\n', "notify.mqtt.topic_prefix: a topic prefix"),
        (
            '[notify.webhooks.mqtt]\nkind = "slack"\nurl = "https://x"\n',
            "notify.webhooks: webhook name 'mqtt' is reserved for [notify.mqtt]",
        ),
        (
            '[notify.webhooks.Ops]\nkind = "slack"\nurl = "https://x"\n',
            "notify.webhooks: webhook name 'Ops': use lower-case letters",
        ),
        (
            '[notify.delivery]\nretry_initial = "soon"\n',
            "notify.delivery.retry_initial: 'soon' is not a duration",
        ),
        ('[notify.smtp]\nhost = "x"\n', "notify.smtp: unknown key"),
    ],
)
def test_mistakes_name_the_key_path(tmp_path: Path, text: str, expected: str) -> None:
    message = _error(tmp_path, text)
    assert expected in message
    assert "secret-token" not in message
    # The kind that picked the model is no level of the file's key paths.
    assert not any(f".{kind}." in message for kind in WEBHOOK_MODELS)


def test_example_config_documents_every_notify_key() -> None:
    import tomllib

    from monitor.config.notify import DeliverySettings, NotifySettings

    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    text = example.read_text()
    notify = NotifySettings.model_validate(tomllib.loads(text)["notify"])
    assert notify.mqtt == MqttSettings()
    assert notify.delivery == DeliverySettings()
    for model in (MqttSettings, DeliverySettings, *WEBHOOK_MODELS.values()):
        for key in model.model_fields:
            assert f"\n{key} = " in text or f"\n# {key} = " in text, f"{model.__name__}.{key}"
