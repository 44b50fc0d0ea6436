"""`[notify.webhooks.NAME]` with `kind = "ntfy"`: a topic, on ntfy.sh unless `server` is set."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from monitor.config.types import Credential
from monitor.notify.http.settings import DEFAULT_TIMEOUT, BaseUrl, Timeout


class NtfySettings(BaseModel):
    """One topic, with an access token when the server requires one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["ntfy"]
    server: BaseUrl | None = None
    topic: str
    token: Credential | None = None
    timeout: Timeout = DEFAULT_TIMEOUT
