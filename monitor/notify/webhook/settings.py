"""`[notify.webhooks.NAME]` with `kind = "json"`: any URL, optional HMAC secret and headers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_serializer

from monitor.config.types import Credential
from monitor.notify.http.settings import DEFAULT_TIMEOUT, SecretUrl, Timeout


class JsonWebhookSettings(BaseModel):
    """A generic JSON webhook: our schema, signed with `secret` when one is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["json"]
    url: SecretUrl
    secret: Credential | None = None
    headers: dict[str, str] | None = None
    timeout: Timeout = DEFAULT_TIMEOUT

    @field_serializer("headers", when_used="json")
    def _masked_headers(self, headers: dict[str, str] | None) -> dict[str, str] | None:
        # check-config: a header often carries a credential (Authorization: Bearer ...).
        return None if headers is None else dict.fromkeys(headers, "**********")
