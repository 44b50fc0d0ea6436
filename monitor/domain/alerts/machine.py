"""The alert state machine: (rules, persisted state, observation, now) -> (state, events, notifications).

Modelled on Prometheus rules and Alertmanager. Per rule and account an alert is inactive, pending
(breached, waiting out the rule's debounce), firing at one severity, or resolved. While firing:
- it escalates (and notifies) as soon as a higher severity has been breached for the debounce;
- it de-escalates or resolves only when the measure passes the clear level of the firing
  severity (hysteresis), never merely by getting back over the level itself;
- it is sent again every `repeat`;
- a silence of the account withholds every notification but the state still moves; when the
  silence ends while the alert still fires, the trader is told again;
- a liquidation-risk rule firing at a higher severity holds back lower-severity alerts of the
  other liquidation-risk rules of the account (inhibition), so one message carries the highest
  severity; once the higher one ends, a still-firing lower one is sent. A rejected API key holds
  back the stale-data alert it causes in the same way.
Everything is computed from the arguments: no clock, no I/O. Notification ids are derived from the
state, so a cycle replayed after a crash produces the same ids and receivers drop duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from monitor.domain.alerts.measure import (
    Facts,
    Reading,
    clear_text,
    level_text,
    measure,
    snapshot_context,
    snapshot_facts,
)
from monitor.domain.alerts.observation import Observation
from monitor.domain.alerts.rules import AlertRules, Direction, Rule, RuleKey
from monitor.domain.alerts.state import RuleState, StoredStates
from monitor.domain.immutable import immutable
from monitor.domain.notification import Notification, NotificationKind, Severity
from monitor.domain.units import format_duration


class EventKind(StrEnum):
    """What happened to an alert in a cycle (recorded in the alert history)."""

    PENDING = "pending"  # breached, waiting out the debounce
    CANCELLED = "cancelled"  # the breach ended before the debounce did
    FIRING = "firing"  # started firing (or was finally sent after a silence / inhibition)
    ESCALATED = "escalated"  # moved to a higher severity
    DEESCALATED = "deescalated"  # passed the clear level of its severity, a lower one still holds
    REPEAT = "repeat"  # sent again while still firing
    RESOLVED = "resolved"  # passed the clear level of every severity


@immutable
class AlertEvent:
    """One entry of the alert history of an account.

    `facts` holds the numbers plus `notification_id` (the notification sent for this event, if
    any) and `suppressed` ("silence" or "inhibited" when a notification was withheld).
    """

    account: str
    rule_key: str
    kind: EventKind
    severity: Severity
    at: datetime
    title: str
    text: str
    facts: Facts


@immutable
class Evaluation:
    """The outcome of one cycle: the state to persist per rule key (JSON-ready), what happened,
    and what to send."""

    states: dict[str, dict[str, Any]]
    events: tuple[AlertEvent, ...]
    notifications: tuple[Notification, ...]


RULE_TITLES = {
    RuleKey.MARGIN_RATIO: "margin ratio",
    RuleKey.LIQUIDATION_DISTANCE: "distance to liquidation",
    RuleKey.ACCOUNT_MOVE: "account-wide liquidation move",
    RuleKey.STALE: "stale data",
    RuleKey.AUTH: "API key rejected",
    RuleKey.LIQUIDATION_MISMATCH: "liquidation price mismatch",
    RuleKey.TIER_CHANGE: "margin tier change",
    RuleKey.MARGIN_CHASING: "margin chasing",
    RuleKey.VENUE_PAUSED: "venue paused",
    RuleKey.MOVE_IN_SIGMA: "liquidation within a likely move",
    RuleKey.STOP_LOSS: "stop-loss",
}


@dataclass(slots=True)
class _Step:
    rule: Rule
    state: RuleState
    reading: Reading | None
    before: RuleState | None  # the state as the last evaluation left it, if it is known
    transitions: list[tuple[EventKind, Severity]] = field(default_factory=list)
    closed: RuleState | None = None  # the firing episode that resolved in this cycle
    eased_from: Severity | None = None  # the severity left by a de-escalation in this cycle


def evaluate(
    rules: AlertRules,
    previous: Mapping[str, Mapping[str, Any]],
    observation: Observation,
    now: datetime,
) -> Evaluation:
    """Run every rule of one account over one cycle's observation.

    `previous` is what the last call returned in `states` (read back from storage; {} for a new
    account). The returned `states` must be stored in the same transaction as the events and the
    notifications' outbox rows. A rule that is no longer configured keeps its own memory, but a
    firing alert of it is ended with a resolved notice (see `_retire`).
    """
    read = previous.read if isinstance(previous, StoredStates) else {}
    steps = [_advance(rule, previous, read, observation, now) for rule in rules.rules]
    events: list[AlertEvent] = []
    notifications: list[Notification] = []
    for step in steps:
        if step.transitions or step.state.severity is not None or step.closed is not None:
            _announce(step, observation, now, _inhibited(step, steps), events, notifications)
    # Every stored rule is either configured (its new state) or retired: nothing else to copy.
    states = StoredStates()
    for step in steps:
        key = step.rule.name
        stored = previous.get(key)
        before = step.before
        unchanged = before is not None and (step.state is before or step.state == before)
        # Unchanged: the very JSON stored last time, so comparing the states is cheap too.
        states[key] = stored if unchanged and isinstance(stored, dict) else step.state.to_json()
        states.read[key] = step.state
    for key in previous.keys() - states.keys():
        states[key] = _retire(key, previous[key], observation, now, events, notifications)
    return Evaluation(states, tuple(events), tuple(notifications))


def _retire(
    key: str,
    stored: Mapping[str, Any],
    observation: Observation,
    now: datetime,
    events: list[AlertEvent],
    notifications: list[Notification],
) -> dict[str, Any]:
    """End the firing episode of a rule the configuration no longer has.

    Left alone, `status` would list it as firing for ever and the trader would never hear that it
    stopped being watched. Its own memory (margin-chasing top-ups) is kept for when it comes back.
    """
    account = observation.account
    state = RuleState.from_json(stored, path=f"alert_state.{account}.{key}")
    fired, started = state.severity, state.started_at or now
    anchor = state.anchor() or now
    if fired is None:
        state.pending = {}
        return state.to_json()
    try:
        name = RULE_TITLES[RuleKey(key)]
    except ValueError:  # a rule of a newer version, found in its database after a downgrade
        name = key.replace("_", " ")
    title = f"{account}: {name} resolved (rule disabled)"
    text = (
        f"Account {account}: the {name} rule is no longer in the configuration, so its "
        f"{fired.value} alert ended after {format_duration(now - started)} without being "
        "cleared. This account is not watched for it any more."
    )
    facts: Facts = {"rule": key, "severity": fired.value, "started_at": started.isoformat()}
    note: Notification | None = None
    silenced = observation.silenced(now)
    if state.notified is not None and not silenced:
        note = Notification(
            id=_notification_id(
                account, key, fired, NotificationKind.RESOLVED, anchor, state.sequence
            ),
            account=account,
            rule=key,
            kind=NotificationKind.RESOLVED,
            severity=fired,
            title=title,
            text=text,
            created_at=now,
            facts=dict(facts),
        )
        notifications.append(note)
    facts["notification_id"] = note.id if note else None
    facts["suppressed"] = "silence" if silenced and state.notified is not None else None
    events.append(AlertEvent(account, key, EventKind.RESOLVED, fired, now, title, text, facts))
    state.end_episode()
    return state.to_json()


def _inhibited(step: _Step, steps: list[_Step]) -> bool:
    """Whether another firing alert of the account already tells the trader what this one would.

    A liquidation-risk alert is held back by one of the group at a higher severity; stale data is
    held back while the API key is rejected (the rejection is why the data is stale).
    """
    severity = step.state.severity
    if severity is None:
        return False
    key = step.rule.key
    for other in steps:
        fired = other.state.severity
        if fired is None or other is step:
            continue
        if key.liquidation_risk and other.rule.key.liquidation_risk and fired.rank > severity.rank:
            return True
        if key is RuleKey.STALE and other.rule.key is RuleKey.AUTH:
            return True
    return False


def _advance(
    rule: Rule,
    previous: Mapping[str, Mapping[str, Any]],
    read: Mapping[str, RuleState],
    observation: Observation,
    now: datetime,
) -> _Step:
    key = rule.name
    before = read.get(key) if key in previous else None
    if before is not None and before.severity is None and not before.pending:
        # At rest (nothing firing or pending), as nearly every rule is at nearly every live
        # recompute: unless the reading breaches a level, the state stays as it was.
        reading, memory = measure(rule, observation, now, dict(before.memory))
        if reading is None or (not rule.one_shot and rule.calm(reading.value)):
            if memory == before.memory:
                return _Step(rule, before, reading, before)
            state = before.copy()
            state.memory = memory
            return _Step(rule, state, reading, before)
        state = before.copy()
        state.memory = memory
    else:
        if before is not None:
            state = before.copy()
        elif key in previous:
            path = f"alert_state.{observation.account}.{key}"
            state = RuleState.from_json(previous[key], path=path)
        else:
            state = RuleState()
        reading, state.memory = measure(rule, observation, now, state.memory)
    step = _Step(rule, state, reading, before)
    if reading is None:
        return step
    value = reading.value
    if rule.one_shot:
        breached = [s for s in rule.severities if rule.breached(s, value)]
        if breached:
            step.transitions.append((EventKind.FIRING, breached[-1]))
        return step

    fired = state.severity
    if fired is not None:
        held = [s for s in rule.severities if s.rank <= fired.rank and rule.holds(s, value)]
        if not held:
            step.transitions.append((EventKind.RESOLVED, fired))
            step.closed = replace(state, pending=dict(state.pending))
            state.end_episode()
        elif held[-1] is not fired:
            step.eased_from = fired
            state.severity = held[-1]
            if state.notified is not None and state.notified.rank > held[-1].rank:
                # Going back up to the higher severity must notify again.
                state.notified = held[-1]
            step.transitions.append((EventKind.DEESCALATED, held[-1]))

    current = state.severity
    was_pending = set(state.pending)
    for severity in rule.severities:
        already = current is not None and severity.rank <= current.rank
        if already or not rule.breached(severity, value):
            state.pending.pop(severity, None)
        elif severity not in state.pending:
            state.pending[severity] = now
            if rule.debounce_of(severity):
                step.transitions.append((EventKind.PENDING, severity))
    ready = [s for s, since in state.pending.items() if now - since >= rule.debounce_of(s)]
    if ready:
        target = max(ready, key=lambda s: s.rank)
        if current is None:
            state.started_at = now
            # The observation that caused the episode, not the moment this evaluation ran:
            # known from the stored state (the breach start) or from the data (stale's last
            # fresh data), so the same transition evaluated again has the same ids.
            cause = reading.cause_at or state.pending[target]
            state.cause_at = min(cause, now)
            step.transitions.append((EventKind.FIRING, target))
        else:
            step.transitions.append((EventKind.ESCALATED, target))
        state.severity = target
        state.pending = {s: t for s, t in state.pending.items() if s.rank > target.rank}
    dropped = was_pending - set(state.pending)
    reached = state.severity.rank if state.severity else -1
    given_up = [s for s in dropped if s.rank > reached]
    if given_up:
        step.transitions.append((EventKind.CANCELLED, max(given_up, key=lambda s: s.rank)))
    return step


def _announce(
    step: _Step,
    observation: Observation,
    now: datetime,
    inhibited: bool,
    events: list[AlertEvent],
    notifications: list[Notification],
) -> None:
    rule, state = step.rule, step.state
    silenced = observation.silenced(now)
    sent: Notification | None = None
    suppressed: str | None = None

    if rule.one_shot and step.transitions:
        if silenced:
            suppressed = "silence"
        else:
            sent = _notification(
                step, observation, now, EventKind.FIRING, step.transitions[0][1], now, 0
            )
    elif state.severity is not None:
        severity = state.severity
        if silenced:
            suppressed = "silence"
            state.held_back = True
        elif inhibited:
            suppressed = "inhibited"
        else:
            reason: EventKind | None = None
            if state.notified is None or state.notified.rank < severity.rank:
                escalated = any(kind is EventKind.ESCALATED for kind, _ in step.transitions)
                reason = EventKind.ESCALATED if escalated else EventKind.FIRING
            elif state.held_back or (
                rule.repeat is not None
                and state.last_notified_at is not None
                and now - state.last_notified_at >= rule.repeat
            ):
                reason = EventKind.REPEAT
            if reason is not None:
                started = state.started_at or now
                sent = _notification(
                    step,
                    observation,
                    now,
                    reason,
                    severity,
                    started,
                    state.sequence,
                    anchor=state.anchor() or now,
                )
                state.notified, state.last_notified_at = severity, now
                state.sequence += 1
                state.held_back = False

    resolved: Notification | None = None
    closed = step.closed
    if closed is not None and closed.notified is not None and closed.severity is not None:
        if silenced:
            suppressed = "silence"
        else:
            started = closed.started_at or now
            resolved = _notification(
                step,
                observation,
                now,
                EventKind.RESOLVED,
                closed.severity,
                started,
                closed.sequence,
                anchor=closed.anchor() or now,
            )

    announced = False
    for kind, severity in step.transitions:
        note: Notification | None = None
        if kind is EventKind.RESOLVED:
            note = resolved
        elif kind in (EventKind.FIRING, EventKind.ESCALATED) and sent is not None:
            note, announced = sent, True
        notable = kind in (EventKind.FIRING, EventKind.ESCALATED, EventKind.RESOLVED)
        withheld = suppressed if notable and note is None else None
        events.append(_event(step, observation, now, kind, severity, note, withheld))
    if sent is not None and not announced:
        kind = EventKind.REPEAT if sent.kind is NotificationKind.REPEAT else EventKind.FIRING
        events.append(_event(step, observation, now, kind, sent.severity, sent, None))
    notifications.extend(n for n in (resolved, sent) if n is not None)


_NOTIFICATION_KIND = {
    EventKind.FIRING: NotificationKind.FIRING,
    EventKind.ESCALATED: NotificationKind.FIRING,
    EventKind.REPEAT: NotificationKind.REPEAT,
    EventKind.RESOLVED: NotificationKind.RESOLVED,
}


def _notification(
    step: _Step,
    observation: Observation,
    now: datetime,
    reason: EventKind,
    severity: Severity,
    started_at: datetime,
    sequence: int,
    *,
    anchor: datetime | None = None,
) -> Notification:
    rule, account = step.rule, observation.account
    kind = _NOTIFICATION_KIND[reason]
    title, text = _words(step, observation, now, reason, severity, started_at)
    episode = anchor or started_at
    return Notification(
        id=_notification_id(account, rule.name, severity, kind, episode, sequence),
        account=account,
        rule=rule.name,
        kind=kind,
        severity=severity,
        title=title,
        text=text,
        created_at=now,
        facts=_facts(step, observation, severity, started_at),
    )


def _notification_id(
    account: str,
    rule_key: str,
    severity: Severity,
    kind: NotificationKind,
    anchor: datetime,
    sequence: int,
) -> str:
    """`ACCOUNT:RULE:SEVERITY:KIND:EPISODE_MS:SEQUENCE`, derived from the firing episode only.

    `anchor` is the time of the observation that caused the episode (`RuleState.cause_at`), not
    the time of the evaluation: a cycle replayed after a crash or a failed write, or the same
    transition evaluated by another daemon from the same stored state, yields the same id, so
    receivers can drop duplicates. `sequence` numbers the episode's notifications.
    """
    epoch_ms = int(anchor.timestamp() * 1000)
    return f"{account}:{rule_key}:{severity.value}:{kind.value}:{epoch_ms}:{sequence}"


def _words(
    step: _Step,
    observation: Observation,
    now: datetime,
    kind: EventKind,
    severity: Severity,
    started_at: datetime,
) -> tuple[str, str]:
    """Title and text of a notification or history entry, in plain words."""
    rule, reading, account = step.rule, step.reading, observation.account
    name = RULE_TITLES[rule.key]
    summary = reading.summary if reading else "no data this cycle"
    level = level_text(rule, severity) if rule.configures(severity) else severity.value
    relation = "below" if rule.direction is Direction.BELOW else "above"
    crossing = f"{summary}, {relation} {level}" if level != severity.value else summary
    context = ""
    if observation.snapshot is not None and rule.key.liquidation_risk:
        with_ratio = rule.key is not RuleKey.MARGIN_RATIO
        context = " " + snapshot_context(observation.snapshot, with_ratio=with_ratio)
    lasted = format_duration(now - started_at)
    if kind in (EventKind.RESOLVED, EventKind.DEESCALATED):
        back = "above" if rule.direction is Direction.BELOW else "below"
        ended = step.closed.severity if step.closed and step.closed.severity else severity
        if kind is EventKind.DEESCALATED and step.eased_from is not None:
            ended = step.eased_from
        if rule.configures(ended):
            cleared = clear_text(rule, ended)
            limit = f"back {back} {cleared}; " if cleared else ""
        else:
            limit = f"the {ended.value} level is no longer configured; "
        if kind is EventKind.DEESCALATED:
            return (
                f"{account}: {name} eased to {severity.value}",
                f"Account {account}: {summary}; {limit}still {severity.value}.{context}",
            )
        return (
            f"{account}: {name} resolved",
            f"Account {account}: {summary}; {limit}the {ended.value} alert ended after {lasted}.{context}",
        )
    if kind is EventKind.REPEAT:
        return (
            f"{account}: {name} {severity.value}, still firing",
            f"Account {account}: still firing after {lasted}: {crossing}.{context}",
        )
    if kind in (EventKind.PENDING, EventKind.CANCELLED):
        what = "pending" if kind is EventKind.PENDING else "cancelled before firing"
        return (f"{account}: {name} {severity.value} {what}", f"Account {account}: {crossing}.")
    escalated = " (escalated)" if kind is EventKind.ESCALATED else ""
    fell = "fell below" if rule.direction is Direction.BELOW else "above"
    crossed = f"{summary}, {fell} {level}" if level != severity.value else summary
    return (
        f"{account}: {name} {severity.value.upper()}{escalated}",
        f"Account {account}: {crossed}.{context}",
    )


def _facts(
    step: _Step, observation: Observation, severity: Severity, started_at: datetime | None
) -> Facts:
    rule = step.rule
    facts: Facts = snapshot_facts(observation.snapshot) if observation.snapshot else {}
    if step.reading is not None:
        facts.update(step.reading.facts)
    facts.update(
        {
            "rule": rule.name,
            "severity": severity.value,
            "level": rule.level(severity) if rule.configures(severity) else None,
            "clear_level": rule.clear_level(severity) if rule.configures(severity) else None,
            "started_at": started_at.isoformat() if started_at else None,
        }
    )
    return facts


def _event(
    step: _Step,
    observation: Observation,
    now: datetime,
    kind: EventKind,
    severity: Severity,
    note: Notification | None,
    suppressed: str | None,
) -> AlertEvent:
    started = step.state.started_at or (step.closed.started_at if step.closed else None)
    if note is not None:
        title, text = note.title, note.text
    else:
        title, text = _words(step, observation, now, kind, severity, started or now)
    facts = _facts(step, observation, severity, started)
    facts["notification_id"] = note.id if note else None
    facts["suppressed"] = suppressed
    return AlertEvent(observation.account, step.rule.name, kind, severity, now, title, text, facts)
