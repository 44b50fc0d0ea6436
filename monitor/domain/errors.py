"""One error tree for the whole project.

Every error the project raises on purpose is a `MonitorError`, and says whether trying again can
help in one way only: its class is under `RetryableError` (trying again later may work; it may
carry the other side's `retry_after`) or under `PermanentError` (it will fail the same way until a
human changes something). An area base (`ExchangeError`, `StorageError`, `DeliveryError`) groups
one adapter's errors for an `except`; it is never raised itself, nor is `MonitorError`.

    MonitorError
    ├── RetryableError
    │   ├── ExchangeUnavailable        (ExchangeError) timeout, 5xx, 418/429, maintenance
    │   │   └── VenuePaused            the venue banned the address: every account there waits
    │   ├── StorageUnavailable         (StorageError) disk full, locked, read-only, connection lost
    │   └── SinkUnavailable            (DeliveryError) network, 5xx, rate limit, broker down
    │       └── MessageRejected        the sink works but refused this one message
    └── PermanentError
        ├── InvalidInput               input that cannot be used (`path` names the field)
        ├── ConfigError                the configuration is wrong
        ├── ExchangeAuthError          (ExchangeError) the API key was rejected
        ├── ExchangeDataError          (ExchangeError) an answer we cannot turn into a state
        ├── StorageRefused             (StorageError) bad URL, missing file, closed store
        │   └── DatabaseInUse          another daemon holds the SQLite writer lock
        ├── LeaseLost                  another daemon holds this account's lease now
        └── SinkRefused                (DeliveryError) revoked token, deleted webhook

Here, in the pure domain, live the base, `InvalidInput` and the exchange errors: an `Observation`
carries why its account could not be read, and the alert rules tell those apart (the API-key
alert, the venue pause). Config, storage, lease and delivery errors live in `monitor.errors`.
Adapters translate third-party exceptions (ccxt, aiohttp, httpx, aiomqtt, SQLAlchemy) into this
tree at their edge (`monitor.exchanges.errors`, `monitor.storage.engine`, `monitor.notify.http`).
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error the project raises on purpose; raise a subclass, never this."""


class RetryableError(MonitorError):
    """Trying again later may succeed (network, overload, rate limit, maintenance, a busy disk)."""

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


class ExchangeError(MonitorError):
    """Area base: the exchange could not be read (never raised itself)."""


class ExchangeUnavailable(ExchangeError, RetryableError):
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


class ExchangeAuthError(ExchangeError, PermanentError):
    """The exchange rejected the API key (invalid, expired, IP not allowed, no permission)."""


class ExchangeDataError(ExchangeError, PermanentError):
    """The exchange answered, but with data we cannot turn into an account state."""
