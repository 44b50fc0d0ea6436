"""Field types shared by every configuration section: human durations, percentages, credentials.

They reuse the domain parsers, so "10s" or "300%" mean the same in the config file as on the
command line, and they print back in the same human form in `check-config`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, SecretStr

from monitor.domain.errors import InvalidInput
from monitor.domain.units import config_duration, config_percent, parse_duration, parse_percent


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h30m")
    try:
        return parse_duration(value)
    except InvalidInput as exc:
        raise ValueError(exc.problem) from None


def _percent(value: object) -> float:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError("expected a percentage such as 300% or 0.8")
    try:
        return parse_percent(value)
    except InvalidInput as exc:
        raise ValueError(exc.problem) from None


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(config_duration, return_type=str, when_used="json"),
]
"""A duration written as "10s", "5m", "1h30m" or a number of seconds."""

Percent = Annotated[
    float,
    BeforeValidator(_percent),
    PlainSerializer(config_percent, return_type=str, when_used="json"),
]
"""A fraction written as "300%" (3.0) or a plain number."""


def _credential(value: SecretStr) -> SecretStr:
    # Keys and tokens never hold spaces; a pasted one often ends with one, and a signature made
    # with it fails as "invalid signature" at run time instead of here.
    text = value.get_secret_value().strip()
    if not text:
        raise ValueError("is empty")
    return SecretStr(text)


Credential = Annotated[SecretStr, AfterValidator(_credential)]
"""An API key, secret or token: never printed, surrounding whitespace dropped, never empty."""
