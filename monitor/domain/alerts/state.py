"""The persisted memory of one rule for one account, as JSON-ready data.

It is stored after every cycle, so a restart neither sends a firing alert again nor forgets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.domain.errors import InvalidInput
from monitor.domain.notification import Severity

STATE_VERSION = 1


@dataclass(slots=True)
class RuleState:
    """Where one rule of one account stands.

    `severity` is the firing severity (None: not firing) and `started_at` when this firing episode
    began. `pending` maps each severity waiting out its debounce to when its breach began.
    `notified` is the severity the trader last heard about in this episode (None: nothing sent
    yet), `last_notified_at` when, and `sequence` counts the episode's notifications (it makes
    their ids unique). `held_back` is set while a silence withholds a firing alert, so its end
    notifies. `memory` is the rule's own data (margin-chasing top-ups, first-seen time).
    `cause_at` is the time of the observation that caused the episode (the start of the breach
    that fired it, or for stale data the time of the last fresh data): it anchors the episode's
    notification ids, so a re-evaluation of the same transition from the same stored state gives
    the same ids wherever and whenever it runs. None in states written before it existed: the
    ids then keep using `started_at`, as they did.
    """

    severity: Severity | None = None
    started_at: datetime | None = None
    cause_at: datetime | None = None
    pending: dict[Severity, datetime] = field(default_factory=dict)
    notified: Severity | None = None
    last_notified_at: datetime | None = None
    sequence: int = 0
    held_back: bool = False
    memory: dict[str, Any] = field(default_factory=dict)

    def end_episode(self) -> None:
        """Forget the finished firing episode (the rule's own memory stays)."""
        self.severity = self.started_at = self.notified = self.last_notified_at = None
        self.cause_at = None
        self.pending = {}
        self.sequence = 0
        self.held_back = False

    def to_json(self) -> dict[str, Any]:
        """The state as JSON-ready data (strings, numbers, booleans, nulls, lists, objects)."""
        return {
            "version": STATE_VERSION,
            "severity": self.severity.value if self.severity else None,
            "started_at": _iso(self.started_at),
            "cause_at": _iso(self.cause_at),
            "pending": {
                severity.value: since.isoformat() for severity, since in self.pending.items()
            },
            "notified": self.notified.value if self.notified else None,
            "last_notified_at": _iso(self.last_notified_at),
            "sequence": self.sequence,
            "held_back": self.held_back,
            "memory": self.memory,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, path: str = "state") -> RuleState:
        """Read back what `to_json` wrote; raises `InvalidInput` naming the bad field."""
        if data.get("version") != STATE_VERSION:
            raise InvalidInput(
                f"{path}.version", f"unknown alert state version {data.get('version')!r}"
            )
        try:
            return cls(
                severity=_severity(data.get("severity")),
                started_at=_time(data.get("started_at")),
                cause_at=_time(data.get("cause_at")),
                pending={
                    Severity(k): datetime.fromisoformat(v) for k, v in data["pending"].items()
                },
                notified=_severity(data.get("notified")),
                last_notified_at=_time(data.get("last_notified_at")),
                sequence=int(data["sequence"]),
                held_back=bool(data["held_back"]),
                memory=dict(data["memory"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInput(path, f"unreadable alert state: {exc!r}") from None

    def copy(self) -> RuleState:
        """A copy to advance, leaving this one as it was (the memory is copied one level
        deep, as `from_json` reads it)."""
        return RuleState(
            self.severity,
            self.started_at,
            self.cause_at,
            dict(self.pending),
            self.notified,
            self.last_notified_at,
            self.sequence,
            self.held_back,
            dict(self.memory),
        )

    def anchor(self) -> datetime | None:
        """What the episode's notification ids are derived from (see `cause_at`)."""
        return self.cause_at or self.started_at


class StoredStates(dict[str, dict[str, Any]]):
    """An account's rule states as an evaluation leaves them: JSON-ready by rule key, to store,
    along with the `RuleState` each was written from (`read`).

    The next evaluation starts from those objects instead of reading the JSON back, and keeps
    the JSON of every rule whose state did not change: live marks evaluate every rule of every
    account every second, and nearly always nothing changes.
    """

    __slots__ = ("read",)

    def __init__(self) -> None:
        super().__init__()
        self.read: dict[str, RuleState] = {}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _time(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _severity(text: Any) -> Severity | None:
    return Severity(text) if text else None


def firing_severity(state: Mapping[str, Any]) -> Severity | None:
    """The severity a stored rule state is firing at (None: not firing), for status displays."""
    severity = state.get("severity")
    return Severity(severity) if severity else None
