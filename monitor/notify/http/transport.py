"""The one HTTP seam every webhook sink goes through: httpx errors become `DeliveryError` here.

Error messages never contain the URL: Telegram, Slack and Discord URLs carry the secret token.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import httpx

from monitor.errors import SinkRefused, SinkUnavailable
from monitor.notify.http.settings import DEFAULT_TIMEOUT

DEFAULT_SECONDS = DEFAULT_TIMEOUT.total_seconds()


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds from a `Retry-After` header (a number or an HTTP date), None when absent or garbled."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object; {} when it is not one (chat APIs explain errors there,
    but a proxy in between may answer with HTML)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def host_of(url: str | httpx.URL) -> str:
    """Where a request went, as "host" or "host:port": never the path, query or user info,
    which carry the tokens (a Telegram bot token is part of the path)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "an invalid URL"
    host = parsed.host or "no host"
    return f"{host}:{parsed.port}" if parsed.port is not None else host


def raise_for_status(sink: str, response: httpx.Response, detail: str = "") -> None:
    """The usual HTTP reading: 2xx delivered; 408/429/5xx retry later; any other 4xx (bad or
    revoked hook, bad credentials) keeps failing, so it is permanent; redirects are not followed."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if 300 <= status < 400 and not detail:
        # Typically http:// answered by a redirect to https://. The target is not echoed: it
        # may carry the hook's token.
        detail = "the URL redirects elsewhere; configure the final URL (redirects are not followed)"
    suffix = f": {detail}" if detail else ""
    if status in (408, 425, 429) or status >= 500:
        raise SinkUnavailable(
            f"{sink}: HTTP {status}{suffix}", retry_after=retry_after_seconds(response)
        )
    raise SinkRefused(f"{sink}: HTTP {status}{suffix}")


class HttpTransport:
    """A shared `httpx.AsyncClient` for every webhook sink (`async with`, or `aclose()`)."""

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client or httpx.AsyncClient(
            timeout=DEFAULT_SECONDS,
            follow_redirects=False,
            headers={"User-Agent": "portfolio-monitor"},
        )

    async def post(
        self, sink: str, url: str, *, timeout_seconds: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """POST and return the response whatever its status; network failures and timeouts
        raise a retryable `DeliveryError` naming the sink."""
        try:
            return await self._client.post(
                url,
                timeout=timeout_seconds if timeout_seconds is not None else DEFAULT_SECONDS,
                **kwargs,
            )
        except httpx.TimeoutException as exc:
            raise SinkUnavailable(
                f"{sink}: {host_of(url)} timed out ({type(exc).__name__})"
            ) from None
        except httpx.UnsupportedProtocol as exc:
            raise SinkRefused(f"{sink}: unsupported URL ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            # The exception's own text may quote the whole URL, token included: only its type.
            raise SinkUnavailable(
                f"{sink}: request to {host_of(url)} failed ({type(exc).__name__})"
            ) from None

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()

    async def __aenter__(self) -> HttpTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class HttpSink:
    """What every sink that posts over HTTP shares: its configured name, its timeout and the
    shared transport. Subclasses add their URL and credentials and implement `send`."""

    def __init__(self, name: str, timeout: timedelta, http: HttpTransport) -> None:
        self._name = name
        self._timeout = timeout.total_seconds()
        self._http = http
        self.last_host: str | None = None

    @property
    def name(self) -> str:
        """The configured sink name."""
        return self._name

    async def _post(self, url: str, **kwargs: Any) -> httpx.Response:
        # `test-notify` names the host a failed sink tried (a wrong api_url or server shows).
        self.last_host = host_of(url)
        return await self._http.post(self._name, url, timeout_seconds=self._timeout, **kwargs)
