"""The `[metrics]` section: the Prometheus endpoint."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator


class MetricsSettings(BaseModel):
    """`listen` is "host:port" for the Prometheus endpoint; None = no endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not host:port (example: 127.0.0.1:9464)")
        return value

    def address(self) -> tuple[str, int] | None:
        """(host, port) to bind, without IPv6 brackets; None when metrics are off."""
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)
