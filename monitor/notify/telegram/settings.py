"""`[notify.webhooks.NAME]` with `kind = "telegram"`: a bot token and the chat it writes to."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from monitor.config.types import Credential
from monitor.notify.http.settings import DEFAULT_TIMEOUT, BaseUrl, Timeout


class TelegramSettings(BaseModel):
    """One chat (optionally one forum topic) reached through the Bot API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["telegram"]
    bot_token: Credential
    chat_id: str
    message_thread_id: int | None = None
    api_url: BaseUrl | None = None
    timeout: Timeout = DEFAULT_TIMEOUT
