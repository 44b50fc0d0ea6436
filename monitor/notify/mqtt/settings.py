"""`[notify.mqtt]`: the broker, the topics, TLS, and whether alerts go there too."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from monitor.config.types import Duration


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
