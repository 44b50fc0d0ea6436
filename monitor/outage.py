"""When the database cannot be written: one "storage failing" alert, quiet logs, a recovery probe.

The poll cycle and the outbox sender both report every write that fails or works to one
`StorageOutage`. While it is failing:
- the poll cycle keeps evaluating alerts and hands its notifications to the sender, which
  delivers them from memory (same ids as always); snapshots wait in a bounded memory queue
  (`PollService`), the alert state advances in memory, so nothing is announced twice;
- nobody else tries the database: a probe does, every `probe_every`, and on disk-full first asks
  the store to free what it can (an SQLite WAL checkpoint that truncates the log);
- one CRITICAL notice (`storage_failing`) names the cause, sent from memory; the log gets one
  ERROR line when the outage starts or its cause changes and a reminder every `remind_every`,
  not one per cycle.
When the probe's write works, the queued snapshots are written, the notice resolves, and the
sender stores what it delivered from memory in the outbox (as delivered) and what it could not
(as due), so nothing is lost and nothing is sent twice by us.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from monitor.domain.notification import Notification, NotificationKind, Severity
from monitor.domain.units import format_duration
from monitor.errors import StorageError
from monitor.ports import Clock

log = logging.getLogger(__name__)

# A reminder in the log this often while storage keeps failing (one line on each change).
REMIND_EVERY = timedelta(minutes=5)
# How often the probe tries a write while storage fails.
PROBE_EVERY = 2.0
# Notifications about the monitor itself belong to no account (as in delivery.SYSTEM_ACCOUNT).
_SYSTEM_ACCOUNT = ""
RULE = "storage_failing"

DISK_FULL = "disk full"
LOCKED = "locked"
READ_ONLY = "read-only"
OTHER = "other"

_SQLITE_CODES = {13: DISK_FULL, 5: LOCKED, 6: LOCKED, 8: READ_ONLY}
_ERRNOS = {errno.ENOSPC: DISK_FULL, errno.EDQUOT: DISK_FULL, errno.EROFS: READ_ONLY}
_PHRASES = (
    ("disk is full", DISK_FULL),
    ("no space left", DISK_FULL),
    ("could not extend file", DISK_FULL),
    ("quota exceeded", DISK_FULL),
    ("readonly", READ_ONLY),
    ("read-only", READ_ONLY),
    ("database is locked", LOCKED),
    ("lock timeout", LOCKED),
    ("is locked", LOCKED),
)
_URL_PASSWORD = re.compile(r"(\w[\w+.-]*://[^:/@\s]*:)[^@\s]*@")
_PASSWORD_PARAM = re.compile(r"(password\s*=\s*)\S+", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` without passwords (database URLs `scheme://user:***@host`, `password=***`)."""
    return _PASSWORD_PARAM.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def classify(exc: BaseException) -> str:
    """Why a write failed: DISK_FULL, LOCKED, READ_ONLY or OTHER, from the driver's error code,
    the OS error number or, failing both, the message (the chain of causes is searched)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _SQLITE_CODES:
            return _SQLITE_CODES[code & 0xFF]
        if isinstance(current, OSError) and current.errno in _ERRNOS:
            return _ERRNOS[current.errno]
        message = str(current).lower()
        for phrase, cause in _PHRASES:
            if phrase in message:
                return cause
        current = current.__cause__ or current.__context__
    return OTHER


class StorageOutage:
    """Whether the database takes writes, and what to do while it does not (see the module)."""

    def __init__(
        self,
        clock: Clock,
        *,
        remind_every: timedelta = REMIND_EVERY,
        probe_every: float = PROBE_EVERY,
    ) -> None:
        self._clock = clock
        self._remind_every = remind_every
        self._probe_every = probe_every
        self.failing = False
        self.cause: str | None = None
        self.error: str | None = None
        self.since: datetime | None = None
        self.failed_writes = 0
        self._logged_at: datetime | None = None
        self._probe: asyncio.Task[None] | None = None
        # Wired by the daemon: the sender's memory queue (notifications to every sink, stored in
        # the outbox once writes work), what frees disk space, what counts as recovery.
        self.deliver_from_memory: Callable[[Notification], None] = lambda _notice: None
        self.free_space: Callable[[], Awaitable[None]] | None = None
        self._recover: list[Callable[[], Awaitable[None]]] = []
        # Told how many snapshots the poll cycle holds and has dropped (status line, notices).
        self.held: Callable[[], tuple[int, int]] = lambda: (0, 0)

    def on_recovery(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run `step` (in registration order) when the probe's write works; a StorageError from
        it means storage still fails."""
        self._recover.append(step)

    def failed(self, exc: BaseException, action: str) -> None:
        """A write failed (`action` says which): start or continue the outage."""
        now = self._clock.now()
        cause = classify(exc)
        error = redact(str(exc) or type(exc).__name__)
        self.failed_writes += 1
        self.error = error
        if not self.failing:
            self.failing, self.cause, self.since = True, cause, now
            self._logged_at = now
            log.error(
                "storage failing (%s): %s; alerts still go out from memory, snapshots are held "
                "in memory and written when the database takes writes again",
                cause,
                error,
            )
            self.deliver_from_memory(self._firing_notice(now))
            self._start_probe()
            return
        if cause != self.cause:
            self.cause, self._logged_at = cause, now
            log.error("storage still failing, now %s (%s): %s", cause, action, error)
        elif self._logged_at is None or now - self._logged_at >= self._remind_every:
            self._logged_at = now
            held, dropped = self.held()
            log.error(
                "storage still failing (%s) for %s: %d failed write(s), %d snapshot(s) held, "
                "%d dropped: %s",
                cause,
                format_duration(now - (self.since or now)),
                self.failed_writes,
                held,
                dropped,
                error,
            )

    def succeeded(self) -> None:
        """Writes work again: end the outage and resolve its notice."""
        if not self.failing:
            return
        now = self._clock.now()
        since = self.since or now
        _, dropped = self.held()
        log.warning(
            "storage works again after %s (%s, %d failed write(s))%s",
            format_duration(now - since),
            self.cause,
            self.failed_writes,
            f"; {dropped} snapshot(s) could not be kept" if dropped else "",
        )
        notice = self._resolved_notice(now, since, dropped)
        self.failing, self.cause, self.error, self.since = False, None, None, None
        self.failed_writes = 0
        self._logged_at = None
        self.deliver_from_memory(notice)

    def status_text(self) -> str:
        """One clause for systemd's STATUS= line and `status`; "" while storage works."""
        if not self.failing:
            return ""
        held, dropped = self.held()
        since = f" since {self.since:%H:%M:%S} UTC" if self.since else ""
        lost = f", {dropped} dropped" if dropped else ""
        return (
            f"STORAGE FAILING ({self.cause}){since}: {held} snapshot(s) held in memory{lost}; "
            f"alerts go out from memory ({(self.error or '')[:80]})"
        )

    async def close(self) -> None:
        """Stop the probe (shutdown)."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe

    def _start_probe(self) -> None:
        if self._probe is None or self._probe.done():
            with contextlib.suppress(RuntimeError):  # no running loop: nobody to probe for
                self._probe = asyncio.get_running_loop().create_task(
                    self._probe_until_back(), name="storage-probe"
                )

    async def _probe_until_back(self) -> None:
        while self.failing:
            await asyncio.sleep(self._probe_every)
            if self.cause == DISK_FULL and self.free_space is not None:
                try:
                    await self.free_space()
                except StorageError as exc:
                    log.debug("freeing disk space failed: %s", exc)
            try:
                for step in self._recover:
                    await step()
            except StorageError as exc:
                self.failed(exc, "probe")
                continue
            except Exception:
                log.exception("storage recovery step failed unexpectedly")
                continue
            self.succeeded()

    def _firing_notice(self, now: datetime) -> Notification:
        cause = self.cause or OTHER
        what = {
            DISK_FULL: "the disk is full",
            LOCKED: "the database is locked by another process",
            READ_ONLY: "the database or its file system is read-only",
        }.get(cause, "the database refuses writes")
        return Notification(
            id=f"system:{RULE}:firing:{_millis(now)}",
            account=_SYSTEM_ACCOUNT,
            rule=RULE,
            kind=NotificationKind.FIRING,
            severity=Severity.CRITICAL,
            title=f"Storage failing: {cause}",
            text=(
                f"portfolio-monitor cannot write its database: {what} ({self.error}). Accounts "
                "are still watched and alerts still go out; snapshots are kept in memory and "
                "written, with the alerts, when the database takes writes again (they are lost "
                "if the service stops before that). Free disk space or release the lock; the "
                "monitor recovers by itself."
            ),
            created_at=now,
            facts={"cause": cause, "error": self.error},
        )

    def _resolved_notice(self, now: datetime, since: datetime, dropped: int) -> Notification:
        lost = (
            f" {dropped} snapshot(s) could not be kept in memory and are missing from the history."
            if dropped
            else ""
        )
        return Notification(
            id=f"system:{RULE}:resolved:{_millis(since)}",
            account=_SYSTEM_ACCOUNT,
            rule=RULE,
            kind=NotificationKind.RESOLVED,
            severity=Severity.CRITICAL,
            title="Storage works again",
            text=(
                f"The database takes writes again after {format_duration(now - since)} "
                f"({self.cause}); the held snapshots and alerts are stored.{lost}"
            ),
            created_at=now,
            facts={"cause": self.cause, "dropped_snapshots": dropped},
        )


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
