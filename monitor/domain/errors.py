"""One error tree for the whole project.

Adapters translate third-party exceptions (ccxt, aiohttp, httpx, aiomqtt, SQLAlchemy) into these at
the boundary, so callers decide by `retryable` alone whether trying again can help.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error the project raises on purpose."""

    retryable: bool = False


class RetryableError(MonitorError):
    """Trying again later may succeed (network, overload, rate limit, maintenance)."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        # Seconds the other side asked us to wait (HTTP Retry-After, ban windows); None = our back-off.
        self.retry_after = retry_after


class PermanentError(MonitorError):
    """Trying again will not help until a human changes something (keys, config, input)."""


class InvalidInput(PermanentError):
    """Input data that cannot be used; `path` names the offending field (`positions[1].quantity`)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


class ConfigError(PermanentError):
    """The configuration is wrong; the message names the key path or file."""


class ExchangeUnavailable(RetryableError):
    """The exchange did not answer usably (timeout, 5xx, 418/429, maintenance, bad payload)."""


class VenuePaused(ExchangeUnavailable):
    """The venue banned our address (HTTP 418/429, Bybit 403) and we send it nothing until the
    window ends: every account on that venue and address is paused together.

    `venue` names the venue and address (`binanceusdm@production`), `retry_after` the seconds
    until requests are allowed again and `elapsed` the seconds since the pause began, both as of
    when the error was raised.
    """

    def __init__(self, message: str, *, venue: str, retry_after: float, elapsed: float) -> None:
        super().__init__(message, retry_after=retry_after)
        self.venue = venue
        self.elapsed = elapsed


class ExchangeAuthError(PermanentError):
    """The exchange rejected the API key (invalid, expired, IP not allowed, no permission)."""


class ExchangeDataError(PermanentError):
    """The exchange answered, but with data we cannot turn into an account state."""


class StorageError(MonitorError):
    """The database refused or failed an operation."""


class DatabaseInUse(StorageError):
    """Another daemon holds the SQLite database's writer lock; `holder` says "pid N on HOST"."""

    def __init__(self, message: str, *, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class LeaseLost(MonitorError):
    """Several daemons on one PostgreSQL: another daemon holds this account's lease now, so this
    one must not store its cycle nor send its alerts (not a storage failure: nothing is held)."""


class DeliveryError(MonitorError):
    """A notification sink failed; `permanent` means it will keep failing (revoked token, 404 hook).

    `rejected` means the sink works but refused this one message for a reason not known to be
    final (Telegram's "Bad Request" of a new kind): it is retried a few times, then given up on
    its own so that it does not hold every later alert to that sink behind it.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        rejected: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retryable = not permanent
        self.retry_after = retry_after
        self.rejected = rejected and not permanent
