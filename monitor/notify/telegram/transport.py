"""Telegram Bot API `sendMessage`. Telegram explains failures in a JSON body
(`{"ok": false, "description": ..., "parameters": {...}}`); some of them mean a human must act."""

from __future__ import annotations

from typing import Any

import httpx

from monitor.domain.notification import Notification
from monitor.errors import MessageRejected, SinkRefused, SinkUnavailable
from monitor.notify.base import headline, is_good_news, plain_text, truncate
from monitor.notify.http.transport import (
    HttpSink,
    HttpTransport,
    json_object,
    raise_for_status,
    retry_after_seconds,
)
from monitor.notify.telegram.settings import TelegramSettings

API_URL = "https://api.telegram.org"
MESSAGE_LIMIT = 4096
# Descriptions that will not change by retrying (the user blocked the bot, the chat is gone).
PERMANENT_ERRORS = (
    "bot was blocked by the user",
    "chat not found",
    "bot was kicked",
    "user is deactivated",
    "have no rights to send a message",
    "not enough rights",
    "bot is not a member",
    "message thread not found",
    # A channel where the bot lost its admin rights, a closed or deleted forum topic, a chat
    # id that names nobody: each waits for a human, and retrying would hide that from the
    # other sinks for ever.
    "need administrator rights",
    "chat_write_forbidden",
    "chat_restricted",
    "topic_closed",
    "topic_deleted",
    "peer_id_invalid",
    "chat_id is empty",
)


class TelegramSink(HttpSink):
    """Sends the alert as a plain-text message to one chat (optionally one forum topic)."""

    def __init__(self, name: str, settings: TelegramSettings, http: HttpTransport) -> None:
        super().__init__(name, settings.timeout, http)
        base = settings.api_url or API_URL
        self._url = f"{base}/bot{settings.bot_token.get_secret_value()}/sendMessage"
        self._chat_id = settings.chat_id
        self._thread_id = settings.message_thread_id

    async def send(self, notification: Notification) -> None:
        """Deliver one notification or raise `DeliveryError`."""
        text = headline(notification) + "\n\n" + plain_text(notification, with_title=False)
        message: dict[str, Any] = {
            "chat_id": self._chat_id,
            "text": truncate(text, MESSAGE_LIMIT),
            "disable_web_page_preview": True,
            "disable_notification": is_good_news(notification),
        }
        if self._thread_id is not None:
            message["message_thread_id"] = self._thread_id
        response = await self._post(self._url, json=message)
        if response.is_success:
            return
        self._raise(response)

    def _raise(self, response: httpx.Response) -> None:
        body = json_object(response)
        description = str(body.get("description") or "")
        parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        assert isinstance(parameters, dict)
        new_chat_id = parameters.get("migrate_to_chat_id")
        if new_chat_id is not None:
            raise SinkRefused(
                f'{self._name}: the group became a supergroup; set chat_id = "{new_chat_id}"'
            )
        if response.status_code == 401:
            raise SinkRefused(
                f"{self._name}: the bot token was rejected ({description or 'Unauthorized'})"
            )
        if any(reason in description.lower() for reason in PERMANENT_ERRORS):
            raise SinkRefused(f"{self._name}: {description}")
        if response.status_code == 429:
            retry_after = parameters.get("retry_after")
            raise SinkUnavailable(
                f"{self._name}: rate limited ({description or 'Too Many Requests'})",
                retry_after=float(retry_after)
                if isinstance(retry_after, int | float)
                else retry_after_seconds(response),
            )
        if response.status_code == 400:
            # Other "Bad Request" answers (a transient parse failure, an unusual chat state) are
            # not known to be final: keep the sink, retry this message a few times, then give up
            # on it alone (the outbox sender decides).
            raise MessageRejected(f"{self._name}: HTTP 400: {description or 'Bad Request'}")
        raise_for_status(self._name, response, description)
