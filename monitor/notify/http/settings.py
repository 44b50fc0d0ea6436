"""What the settings of every HTTP sink share: URLs checked without being echoed, a timeout."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, SecretStr

from monitor.config.types import Duration

DEFAULT_TIMEOUT = timedelta(seconds=10)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # The value is not echoed: webhook URLs carry tokens.
        raise ValueError("not an http(s) URL (expected https://host/path)")
    return value


def _secret_url(value: SecretStr) -> SecretStr:
    _http_url(value.get_secret_value())
    return value


def _base_url(value: str) -> str:
    return _http_url(value).rstrip("/")


def _positive(value: timedelta) -> timedelta:
    if value.total_seconds() <= 0:
        raise ValueError("must be more than 0s")
    return value


SecretUrl = Annotated[SecretStr, AfterValidator(_secret_url)]
"""A hook URL, which carries its token (Slack, Discord, most JSON hooks): never printed."""

BaseUrl = Annotated[str, AfterValidator(_base_url)]
"""A server or API address (a self-hosted ntfy, a Bot API proxy), without its trailing '/'."""

Timeout = Annotated[Duration, AfterValidator(_positive)]
"""How long one request may take."""
