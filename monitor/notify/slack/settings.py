"""`[notify.webhooks.NAME]` with `kind = "slack"`: an incoming-webhook URL."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from monitor.notify.http.settings import DEFAULT_TIMEOUT, SecretUrl, Timeout


class SlackSettings(BaseModel):
    """The hook URL, which is also its credential."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["slack"]
    url: SecretUrl
    timeout: Timeout = DEFAULT_TIMEOUT
