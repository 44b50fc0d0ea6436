"""Alert rules as a pure state machine (pending, firing, resolved), modelled on Prometheus and
Alertmanager: debounce, hysteresis, repeat, escalation with inhibition, silences, resolved notices.

The poll cycle calls `evaluate()` once per account per cycle with the rules from the
configuration (`monitor.config.alerts`), the state it stored last time and what it observed.
"""

from __future__ import annotations

from monitor.domain.alerts.machine import RULE_TITLES, AlertEvent, Evaluation, EventKind, evaluate
from monitor.domain.alerts.observation import Observation
from monitor.domain.alerts.rules import AlertRules, Direction, Rule, RuleKey
from monitor.domain.alerts.state import RuleState, firing_severity

__all__ = [
    "RULE_TITLES",
    "AlertEvent",
    "AlertRules",
    "Direction",
    "Evaluation",
    "EventKind",
    "Observation",
    "Rule",
    "RuleKey",
    "RuleState",
    "evaluate",
    "firing_severity",
]
