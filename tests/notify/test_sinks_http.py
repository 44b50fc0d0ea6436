"""Every HTTP sink against respx: success, retryable and permanent failures, per-sink error bodies."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from monitor.domain.errors import PermanentError, RetryableError
from monitor.domain.notification import NotificationKind, Severity
from monitor.errors import DeliveryError, MessageRejected
from monitor.notify.discord.settings import DiscordSettings
from monitor.notify.discord.transport import DiscordSink
from monitor.notify.http.transport import HttpTransport
from monitor.notify.ntfy.settings import NtfySettings
from monitor.notify.ntfy.transport import NtfySink
from monitor.notify.pushover.settings import PushoverSettings
from monitor.notify.pushover.transport import PushoverSink
from monitor.notify.slack.settings import SlackSettings
from monitor.notify.slack.transport import SlackSink
from monitor.notify.telegram.settings import TelegramSettings
from monitor.notify.telegram.transport import TelegramSink
from monitor.notify.webhook.settings import JsonWebhookSettings
from monitor.notify.webhook.transport import JsonWebhookSink
from tests.notify.factories import notification, webhook

HOOK = "https://hooks.example.org/alert"
TELEGRAM = "https://api.telegram.org/bot123:SECRET/sendMessage"
NTFY = "https://ntfy.sh"
PUSHOVER = "https://api.pushover.net/1/messages.json"


@pytest.fixture(name="http")
async def _http() -> AsyncIterator[HttpTransport]:
    async with HttpTransport() as transport:
        yield transport


async def _failure(sink: object, n: object = None) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await sink.send(n or notification())  # type: ignore[attr-defined]
    return caught.value


class TestJsonWebhook:
    async def test_body_idempotency_key_and_hmac_signature(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        route = respx_mock.post(HOOK).respond(204)
        sink = JsonWebhookSink("ops", webhook(JsonWebhookSettings, url=HOOK, secret="s3cret"), http)
        await sink.send(notification())
        request = route.calls.last.request
        body = json.loads(request.content)
        assert body["id"] == "main:margin_ratio:critical:firing:1763715600"
        assert body["event"] == "firing"
        assert body["severity"] == "critical"
        assert body["account"] == "main"
        assert body["margin_ratio"] == 1.42
        assert body["facts"]["nearest_liquidation_price"] == 51234.5
        assert request.headers["Idempotency-Key"] == body["id"]
        expected = hmac.new(b"s3cret", request.content, hashlib.sha256).hexdigest()
        assert request.headers["X-Portfolio-Monitor-Signature"] == f"sha256={expected}"

    async def test_no_signature_without_secret(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        route = respx_mock.post(HOOK).respond(200)
        await JsonWebhookSink("ops", webhook(JsonWebhookSettings, url=HOOK), http).send(
            notification()
        )
        assert "X-Portfolio-Monitor-Signature" not in route.calls.last.request.headers

    @pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
    async def test_server_errors_are_retryable(
        self, respx_mock: respx.MockRouter, http: HttpTransport, status: int
    ) -> None:
        respx_mock.post(HOOK).respond(status, headers={"Retry-After": "7"})
        error = await _failure(JsonWebhookSink("ops", webhook(JsonWebhookSettings, url=HOOK), http))
        assert isinstance(error, RetryableError)
        assert error.retry_after == 7.0
        assert "ops" in str(error)

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
    async def test_client_errors_are_permanent(
        self, respx_mock: respx.MockRouter, http: HttpTransport, status: int
    ) -> None:
        respx_mock.post(HOOK).respond(status)
        error = await _failure(JsonWebhookSink("ops", webhook(JsonWebhookSettings, url=HOOK), http))
        assert isinstance(error, PermanentError)

    async def test_a_redirect_is_permanent_and_says_so(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        respx_mock.post(HOOK).respond(301, headers={"Location": "https://elsewhere/?token=t0k"})
        error = await _failure(JsonWebhookSink("ops", webhook(JsonWebhookSettings, url=HOOK), http))
        assert isinstance(error, PermanentError)
        assert "HTTP 301: the URL redirects elsewhere; configure the final URL" in str(error)
        assert "t0k" not in str(error)

    async def test_timeout_and_connection_errors_are_retryable(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        respx_mock.post(HOOK).mock(
            side_effect=[httpx.ConnectTimeout("slow"), httpx.ConnectError("refused")]
        )
        sink = JsonWebhookSink("ops", webhook(JsonWebhookSettings, url=HOOK), http)
        assert "timed out" in str(await _failure(sink))
        error = await _failure(sink)
        assert isinstance(error, RetryableError)
        assert "ConnectError" in str(error)


class TestTelegram:
    def _sink(self, http: HttpTransport) -> TelegramSink:
        return TelegramSink(
            "tg", webhook(TelegramSettings, bot_token="123:SECRET", chat_id="-100"), http
        )

    async def test_message_in_plain_words(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        route = respx_mock.post(TELEGRAM).respond(200, json={"ok": True, "result": {}})
        await self._sink(http).send(notification())
        body = json.loads(route.calls.last.request.content)
        assert body["chat_id"] == "-100"
        text = body["text"]
        assert "margin ratio 142 %" in text
        assert "Margin ratio (equity / maintenance margin): 142 %" in text
        assert "the exchange shows 70.4 %" in text
        assert "Nearest liquidation: BTCUSDT at 51,234.5, 11.8 % away" in text
        assert "all prices fall 7.7 % together" in text
        assert body["disable_notification"] is False

    async def test_resolved_is_silent(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        route = respx_mock.post(TELEGRAM).respond(200, json={"ok": True})
        await self._sink(http).send(notification(kind=NotificationKind.RESOLVED))
        assert json.loads(route.calls.last.request.content)["disable_notification"] is True

    @pytest.mark.parametrize(
        ("status", "description"),
        [
            (403, "Forbidden: bot was blocked by the user"),
            (400, "Bad Request: chat not found"),
            (401, "Unauthorized"),
            (400, "Bad Request: need administrator rights in the channel chat"),
            (400, "Bad Request: CHAT_WRITE_FORBIDDEN"),
            (400, "Bad Request: TOPIC_CLOSED"),
            (400, "Bad Request: PEER_ID_INVALID"),
        ],
    )
    async def test_permanent_errors(
        self, respx_mock: respx.MockRouter, http: HttpTransport, status: int, description: str
    ) -> None:
        respx_mock.post(TELEGRAM).respond(
            status, json={"ok": False, "error_code": status, "description": description}
        )
        error = await _failure(self._sink(http))
        assert isinstance(error, PermanentError)
        assert "SECRET" not in str(error)

    async def test_an_unknown_bad_request_is_retried(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        respx_mock.post(TELEGRAM).respond(
            400, json={"ok": False, "error_code": 400, "description": "Bad Request: something new"}
        )
        error = await _failure(self._sink(http))
        assert isinstance(error, RetryableError)
        assert isinstance(
            error, MessageRejected
        )  # this message, not the sink: given up after a few tries
        assert "something new" in str(error)

    async def test_migrated_group_names_the_new_chat_id(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        respx_mock.post(TELEGRAM).respond(
            400,
            json={
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: group chat was upgraded to a supergroup chat",
                "parameters": {"migrate_to_chat_id": -1001234567890},
            },
        )
        error = await _failure(self._sink(http))
        assert isinstance(error, PermanentError)
        assert 'chat_id = "-1001234567890"' in str(error)

    async def test_flood_control_honours_retry_after(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        respx_mock.post(TELEGRAM).respond(
            429,
            json={
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 35",
                "parameters": {"retry_after": 35},
            },
        )
        error = await _failure(self._sink(http))
        assert isinstance(error, RetryableError)
        assert error.retry_after == 35.0

    @pytest.mark.parametrize("status", [500, 502])
    async def test_server_errors_are_retryable(
        self, respx_mock: respx.MockRouter, http: HttpTransport, status: int
    ) -> None:
        respx_mock.post(TELEGRAM).respond(status, text="<html>Bad Gateway</html>")
        assert isinstance(await _failure(self._sink(http)), RetryableError)

    async def test_timeout_is_retryable(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        respx_mock.post(TELEGRAM).mock(side_effect=httpx.ReadTimeout("slow"))
        error = await _failure(self._sink(http))
        assert isinstance(error, RetryableError)
        assert "SECRET" not in str(error)

    async def test_forum_topic(self, respx_mock: respx.MockRouter, http: HttpTransport) -> None:
        route = respx_mock.post(TELEGRAM).respond(200, json={"ok": True})
        settings = webhook(
            TelegramSettings, bot_token="123:SECRET", chat_id="-100", message_thread_id=7
        )
        await TelegramSink("tg", settings, http).send(notification())
        assert json.loads(route.calls.last.request.content)["message_thread_id"] == 7


class TestDiscord:
    def _sink(self, http: HttpTransport) -> DiscordSink:
        return DiscordSink("dc", webhook(DiscordSettings, url=HOOK), http)

    async def test_success(self, respx_mock: respx.MockRouter, http: HttpTransport) -> None:
        route = respx_mock.post(HOOK).respond(204)
        await self._sink(http).send(notification())
        body = json.loads(route.calls.last.request.content)
        assert body["content"].startswith("**🚨 main: margin ratio 142 %")
        assert body["allowed_mentions"] == {"parse": []}
        assert len(body["content"]) <= 2000

    async def test_rate_limit_honours_retry_after_from_body(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        respx_mock.post(HOOK).respond(
            429,
            json={"message": "You are being rate limited.", "retry_after": 2.5, "global": False},
        )
        error = await _failure(self._sink(http))
        assert isinstance(error, RetryableError)
        assert error.retry_after == 2.5

    async def test_deleted_webhook_is_permanent(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        respx_mock.post(HOOK).respond(404, json={"message": "Unknown Webhook", "code": 10015})
        error = await _failure(self._sink(http))
        assert isinstance(error, PermanentError)
        assert "does not exist" in str(error)

    async def test_server_error_and_timeout_are_retryable(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        respx_mock.post(HOOK).mock(side_effect=[httpx.Response(503), httpx.ReadTimeout("slow")])
        assert isinstance(await _failure(self._sink(http)), RetryableError)
        assert isinstance(await _failure(self._sink(http)), RetryableError)

    async def test_a_rejected_token_says_so(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        respx_mock.post(HOOK).respond(401, json={"message": "Invalid Webhook Token", "code": 50027})
        error = await _failure(self._sink(http))
        assert isinstance(error, PermanentError)
        assert str(error) == "dc: HTTP 401: Invalid Webhook Token"


class TestSlack:
    def _sink(self, http: HttpTransport) -> SlackSink:
        return SlackSink("sl", webhook(SlackSettings, url=HOOK), http)

    async def test_success(self, respx_mock: respx.MockRouter, http: HttpTransport) -> None:
        route = respx_mock.post(HOOK).respond(200, text="ok")
        await self._sink(http).send(notification())
        text = json.loads(route.calls.last.request.content)["text"]
        assert text.startswith("*🚨 main: margin ratio 142 %")
        assert "Nearest liquidation: BTCUSDT" in text

    @pytest.mark.parametrize(
        ("status", "body"),
        [(403, "invalid_token"), (404, "no_service"), (410, "channel_is_archived")],
    )
    async def test_4xx_is_permanent(
        self, respx_mock: respx.MockRouter, http: HttpTransport, status: int, body: str
    ) -> None:
        respx_mock.post(HOOK).respond(status, text=body)
        error = await _failure(self._sink(http))
        assert isinstance(error, PermanentError)
        assert body in str(error)

    async def test_5xx_and_timeouts_are_retryable(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        respx_mock.post(HOOK).mock(side_effect=[httpx.Response(500), httpx.ConnectTimeout("x")])
        assert isinstance(await _failure(self._sink(http)), RetryableError)
        assert isinstance(await _failure(self._sink(http)), RetryableError)

    @pytest.mark.parametrize(
        ("error", "permanent"),
        [("invalid_token", True), ("channel_not_found", True), ("ratelimited", False)],
    )
    async def test_an_error_body_with_http_200_is_a_failure(
        self, respx_mock: respx.MockRouter, http: HttpTransport, error: str, permanent: bool
    ) -> None:
        respx_mock.post(HOOK).respond(
            200, json={"ok": False, "error": error}, headers={"Retry-After": "30"}
        )
        failure = await _failure(self._sink(http))
        assert isinstance(failure, PermanentError) is permanent
        assert error in str(failure)
        if not permanent:
            assert isinstance(failure, RetryableError)
            assert failure.retry_after == 30.0

    async def test_json_ok_body_is_success(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        route = respx_mock.post(HOOK).respond(200, json={"ok": True})
        await self._sink(http).send(notification())  # no DeliveryError: delivered
        assert route.call_count == 1

    async def test_control_characters_of_mrkdwn_are_escaped(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        route = respx_mock.post(HOOK).respond(200, text="ok")
        tricky = replace(
            notification(nearest_liquidation_symbol="A&B<!channel>"),
            title="<!channel> ops&dev: margin ratio 142 %",
        )
        await self._sink(http).send(tricky)
        text = json.loads(route.calls.last.request.content)["text"]
        assert "<" not in text
        assert ">" not in text
        assert text.startswith("*🚨 &lt;!channel&gt; ops&amp;dev: margin ratio 142 %*\n")
        assert "Nearest liquidation: A&amp;B&lt;!channel&gt; at 51,234.5" in text


class TestNtfy:
    @pytest.mark.parametrize(
        ("severity", "kind", "priority"),
        [
            (Severity.WARNING, NotificationKind.FIRING, 3),
            (Severity.CRITICAL, NotificationKind.FIRING, 4),
            (Severity.EMERGENCY, NotificationKind.FIRING, 5),
            (Severity.EMERGENCY, NotificationKind.RESOLVED, 3),
        ],
    )
    async def test_priority_per_severity_and_token(
        self,
        respx_mock: respx.MockRouter,
        http: HttpTransport,
        severity: Severity,
        kind: NotificationKind,
        priority: int,
    ) -> None:
        route = respx_mock.post(NTFY).respond(200, json={"id": "x"})
        sink = NtfySink("phone", webhook(NtfySettings, topic="margin", token="tk_abc"), http)
        await sink.send(notification(severity=severity, kind=kind))
        request = route.calls.last.request
        body = json.loads(request.content)
        assert body["topic"] == "margin"
        assert body["priority"] == priority
        assert request.headers["Authorization"] == "Bearer tk_abc"

    async def test_own_server_without_token(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        route = respx_mock.post("https://ntfy.example.org").respond(200)
        sink = NtfySink(
            "phone", webhook(NtfySettings, topic="t", server="https://ntfy.example.org/"), http
        )
        await sink.send(notification())
        assert "Authorization" not in route.calls.last.request.headers

    async def test_errors(self, respx_mock: respx.MockRouter, http: HttpTransport) -> None:
        respx_mock.post(NTFY).mock(
            side_effect=[
                httpx.Response(403, json={"code": 40301, "http": 403, "error": "forbidden"}),
                httpx.Response(429, headers={"Retry-After": "3"}),
            ]
        )
        sink = NtfySink("phone", webhook(NtfySettings, topic="t"), http)
        refused = await _failure(sink)
        assert isinstance(refused, PermanentError)
        assert str(refused) == "phone: HTTP 403: forbidden"
        error = await _failure(sink)
        assert isinstance(error, RetryableError)
        assert error.retry_after == 3.0


class TestPushover:
    def _sink(self, http: HttpTransport) -> PushoverSink:
        return PushoverSink("po", webhook(PushoverSettings, token="apptoken", user="userkey"), http)

    async def test_emergency_priority_repeats_until_acknowledged(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        route = respx_mock.post(PUSHOVER).respond(200, json={"status": 1, "request": "r"})
        await self._sink(http).send(notification(severity=Severity.EMERGENCY))
        form = parse_qs(route.calls.last.request.content.decode())
        assert form["priority"] == ["2"]
        assert form["retry"] == ["60"]
        assert form["expire"] == ["3600"]
        assert form["token"] == ["apptoken"]
        assert form["user"] == ["userkey"]
        assert form["tags"] == ["portfolio-monitor-main-margin_ratio"]

    async def test_resolved_notice_stops_the_emergency_alarm(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        cancel = respx_mock.post(
            "https://api.pushover.net/1/receipts/cancel_by_tag/portfolio-monitor-main-margin_ratio.json"
        ).respond(200, json={"status": 1, "canceled": 1})
        message = respx_mock.post(PUSHOVER).respond(200, json={"status": 1})
        await self._sink(http).send(
            notification(severity=Severity.CRITICAL, kind=NotificationKind.RESOLVED)
        )
        assert parse_qs(cancel.calls.last.request.content.decode()) == {"token": ["apptoken"]}
        assert parse_qs(message.calls.last.request.content.decode())["priority"] == ["0"]

    async def test_a_failed_cancel_is_retried_before_the_notice_is_sent(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        respx_mock.post(url__regex=r".*/receipts/cancel_by_tag/.*").respond(503)
        message = respx_mock.post(PUSHOVER).respond(200, json={"status": 1})
        error = await _failure(self._sink(http), notification(kind=NotificationKind.RESOLVED))
        assert isinstance(error, RetryableError)
        assert not message.called

    async def test_critical_is_high_priority_without_retry(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        route = respx_mock.post(PUSHOVER).respond(200, json={"status": 1})
        await self._sink(http).send(notification(severity=Severity.CRITICAL))
        form = parse_qs(route.calls.last.request.content.decode())
        assert form["priority"] == ["1"]
        assert "retry" not in form

    async def test_invalid_user_is_permanent(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        respx_mock.post(PUSHOVER).respond(
            400, json={"user": "invalid", "errors": ["user identifier is invalid"], "status": 0}
        )
        error = await _failure(self._sink(http))
        assert isinstance(error, PermanentError)
        assert "user identifier is invalid" in str(error)

    async def test_server_error_and_timeout_are_retryable(
        self, respx_mock: respx.MockRouter, http: HttpTransport
    ) -> None:
        respx_mock.post(PUSHOVER).mock(side_effect=[httpx.Response(500), httpx.ReadTimeout("x")])
        assert isinstance(await _failure(self._sink(http)), RetryableError)
        assert isinstance(await _failure(self._sink(http)), RetryableError)
