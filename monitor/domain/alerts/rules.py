"""Alert rules as plain values: what is measured, at which levels each severity starts and clears.

The configuration layer builds these (`monitor.config.alerts`); the state machine only reads them.
"""

from __future__ import annotations

from dataclasses import field
from datetime import timedelta
from enum import StrEnum
from itertools import pairwise

from monitor.domain.errors import InvalidInput
from monitor.domain.immutable import immutable
from monitor.domain.notification import Severity
from monitor.domain.volatility import Horizon


class Direction(StrEnum):
    """Which side of a level is dangerous."""

    BELOW = "below"  # margin ratio, distance, account move: smaller is worse
    ABOVE = "above"  # staleness, mismatch, top-up count: larger is worse


class RuleKey(StrEnum):
    """The alert rules an account can have; the key names the rule in state, events and messages."""

    MARGIN_RATIO = "margin_ratio"
    LIQUIDATION_DISTANCE = "liquidation_distance"
    ACCOUNT_MOVE = "account_move"
    STALE = "stale"
    AUTH = "auth"
    LIQUIDATION_MISMATCH = "liquidation_mismatch"
    TIER_CHANGE = "tier_change"
    MARGIN_CHASING = "margin_chasing"
    VENUE_PAUSED = "venue_paused"
    MOVE_IN_SIGMA = "move_in_sigma"
    STOP_LOSS = "stop_loss"

    @property
    def direction(self) -> Direction:
        """Whether the rule's measure is dangerous when small (BELOW) or large (ABOVE)."""
        return Direction.BELOW if self in _LIQUIDATION_RISK else Direction.ABOVE

    @property
    def liquidation_risk(self) -> bool:
        """Rules that all measure how close the account is to liquidation.

        They form one inhibition group: a firing critical margin-ratio alert holds back a warning
        about the distance to liquidation of the same account, so the trader gets one message at
        the highest severity. Operational rules (stale data, API key, tier change, ...) tell
        something different and are never held back by them.
        """
        return self in _LIQUIDATION_RISK

    @property
    def one_shot(self) -> bool:
        """Rules about an event rather than a condition: notified once, never pending or resolved."""
        return self is RuleKey.TIER_CHANGE


_LIQUIDATION_RISK = frozenset(
    {
        RuleKey.MARGIN_RATIO,
        RuleKey.LIQUIDATION_DISTANCE,
        RuleKey.ACCOUNT_MOVE,
        RuleKey.MOVE_IN_SIGMA,
    }
)


@immutable
class Rule:
    """One alert rule of one account.

    `levels` pairs each severity with the level where it starts, lowest severity first. For a
    BELOW rule a severity is breached when the measure is below its level and clears when the
    measure is at or above `level * (1 + clear_band)`; for an ABOVE rule it is breached at or
    above its level and clears below `level * (1 - clear_band)`. Between the two the severity
    keeps its state (hysteresis). `debounce` is how long a breach must last before it fires
    (Prometheus `for`), `severity_debounce` a shorter (or longer) one for some severities (the
    emergency level must not wait as long as a warning), `repeat` how often a still-firing alert is sent again (None: never).
    `window` and `min_increase` are used by margin chasing only: top-ups older than `window` do
    not count, and an increase of the isolated margin smaller than `min_increase` (relative) is
    not a top-up (funding payments move it a little). `excuse_pauses` is used by stale data only:
    time the venue had every account of the address paused (a ban the `venue_paused` alert
    reports) does not count towards staleness. `horizon` is used by move in sigma only: the
    typical move (1 h or 1 d) its levels count in. `grace` and `max_loss` are used by stop loss
    only (see `monitor.domain.alerts.measure`).
    """

    key: RuleKey
    levels: tuple[tuple[Severity, float], ...]
    clear_band: float = 0.0
    debounce: timedelta = timedelta(0)
    repeat: timedelta | None = None
    window: timedelta = timedelta(0)
    min_increase: float = 0.0
    excuse_pauses: bool = False
    horizon: Horizon = Horizon.HOURLY
    # Stop loss only: how long a position may go without an effective stop, and the largest
    # loss at the stop as a share of equity (None: not checked).
    grace: timedelta = timedelta(0)
    max_loss: float | None = None
    severity_debounce: tuple[tuple[Severity, timedelta], ...] = ()
    # Derived from the fields above once: the state machine asks for them every cycle.
    name: str = field(init=False, repr=False, compare=False)  # the key as states store it
    one_shot: bool = field(init=False, repr=False, compare=False)
    direction: Direction = field(init=False, repr=False, compare=False)
    severities: tuple[Severity, ...] = field(init=False, repr=False, compare=False)
    _starts: dict[Severity, float] = field(init=False, repr=False, compare=False)
    _clears: dict[Severity, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        path = f"alerts.{self.key.value}"
        if not self.levels:
            raise InvalidInput(path, "a rule needs at least one severity level")
        if self.clear_band < 0:
            raise InvalidInput(f"{path}.clear_band", "cannot be negative")
        if self.key.direction is Direction.ABOVE and self.clear_band >= 1:
            raise InvalidInput(f"{path}.clear_band", "must be below 100 % for this rule")
        ranks = [severity.rank for severity, _ in self.levels]
        if ranks != sorted(set(ranks)):
            raise InvalidInput(path, "levels must be listed once each, lowest severity first")
        values = [level for _, level in self.levels]
        worse_first = values[::-1] if self.key.direction is Direction.ABOVE else values
        if any(a <= b for a, b in pairwise(worse_first)):
            relation = "above" if self.key.direction is Direction.ABOVE else "below"
            raise InvalidInput(
                path, f"each higher severity's level must be {relation} the lower one's"
            )
        below = self.key.direction is Direction.BELOW
        band = 1 + self.clear_band if below else 1 - self.clear_band
        object.__setattr__(self, "name", self.key.value)
        object.__setattr__(self, "one_shot", self.key.one_shot)
        object.__setattr__(self, "direction", self.key.direction)
        object.__setattr__(self, "severities", tuple(severity for severity, _ in self.levels))
        object.__setattr__(self, "_starts", dict(self.levels))
        object.__setattr__(self, "_clears", {s: level * band for s, level in self.levels})

    def debounce_of(self, severity: Severity) -> timedelta:
        """How long a breach of `severity` must last before it fires."""
        for which, debounce in self.severity_debounce:
            if which is severity:
                return debounce
        return self.debounce

    def configures(self, severity: Severity) -> bool:
        """`severity` has a level in this rule (a reloaded configuration may have dropped one that
        is still firing)."""
        return severity in self._starts

    def level(self, severity: Severity) -> float:
        """The level where `severity` starts."""
        return self._starts[severity]

    def clear_level(self, severity: Severity) -> float:
        """The level the measure must get back past before `severity` ends."""
        return self._clears[severity]

    def breached(self, severity: Severity, value: float) -> bool:
        """The measure is on the dangerous side of `severity`'s level."""
        if self.direction is Direction.BELOW:
            return value < self.level(severity)
        return value >= self.level(severity)

    def calm(self, value: float) -> bool:
        """No severity is breached: the measure is on the safe side of the lowest severity's
        level, which every higher severity lies beyond."""
        return not self.breached(self.severities[0], value)

    def holds(self, severity: Severity, value: float) -> bool:
        """A firing `severity` stays firing: the measure has not yet passed its clear level."""
        if self.direction is Direction.BELOW:
            return value < self.clear_level(severity)
        return value >= self.clear_level(severity)


@immutable
class AlertRules:
    """Every enabled rule of one account (a disabled rule is simply absent)."""

    rules: tuple[Rule, ...]

    def __post_init__(self) -> None:
        keys = [rule.key for rule in self.rules]
        if len(keys) != len(set(keys)):
            raise InvalidInput("alerts", "each rule may appear only once")
