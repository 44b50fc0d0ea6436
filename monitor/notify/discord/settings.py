"""`[notify.webhooks.NAME]` with `kind = "discord"`: an execute-webhook URL."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from monitor.notify.http.settings import DEFAULT_TIMEOUT, SecretUrl, Timeout


class DiscordSettings(BaseModel):
    """The webhook URL, which is also its credential."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["discord"]
    url: SecretUrl
    timeout: Timeout = DEFAULT_TIMEOUT
