"""The `[web]` section: the dashboard and JSON API served by the daemon."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator, model_validator

from monitor.config.types import Duration

# What `portfolio-monitor web-password` prints: "scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>".
HASH_SCHEME = "scrypt"


class WebSettings(BaseModel):
    """`listen` is "host:port" for the dashboard; None = no dashboard. Silences made from the
    dashboard need a login with the password whose salted scrypt hash is `password_hash`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str | None = None
    password_hash: SecretStr | None = None
    session_lifetime: Duration = timedelta(hours=12)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not host:port (example: 127.0.0.1:8080)")
        return value

    @field_validator("password_hash", mode="before")
    @classmethod
    def _hash_format(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        parts = value.split("$")
        if len(parts) != 6 or parts[0] != HASH_SCHEME or not all(p.isdigit() for p in parts[1:4]):
            # The value itself is never echoed: it is as good as a password to a cracker.
            raise ValueError("not a hash made by `portfolio-monitor web-password`")
        return value

    @model_validator(mode="after")
    def _loopback_or_password(self) -> WebSettings:
        address = self.address()
        if address is not None and self.password_hash is None and not _loopback(address[0]):
            raise ValueError(
                f"web.listen = {self.listen!r} is reachable from other machines: set "
                "web.password_hash (portfolio-monitor web-password) or listen on 127.0.0.1"
            )
        return self

    def address(self) -> tuple[str, int] | None:
        """(host, port) to bind, without IPv6 brackets; None when the dashboard is off."""
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # A host name could resolve to anything.
        return False
