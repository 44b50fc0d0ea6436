"""Properties of the state machine over random margin-ratio series (hypothesis)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.domain.alerts import (
    Evaluation,
    Observation,
    Rule,
    RuleKey,
    evaluate,
    firing_severity,
)
from monitor.domain.errors import ExchangeUnavailable
from monitor.domain.notification import NotificationKind, Severity
from tests.domain.alerts.builders import (
    at,
    margin_rule,
    observe,
    position,
    ratios,
    rules,
    run,
    snapshot,
)

RULE = margin_rule(debounce=20, repeat=None, band=0.2)
ALL_CLEAR = RULE.clear_level(Severity.WARNING)  # 360 %
SETTINGS = settings(max_examples=60, deadline=None)

series = st.lists(st.floats(min_value=0.9, max_value=4.5, allow_nan=False), min_size=1, max_size=40)


def timed(values: list[float]) -> list[tuple[float, float]]:
    return [(10.0 * i, value) for i, value in enumerate(values)]


@SETTINGS
@given(series)
def test_resolves_only_past_the_clear_level_and_fires_once_per_episode(values: list[float]) -> None:
    results = ratios(rules(RULE), timed(values))
    episodes = 0
    for value, result in zip(values, results, strict=True):
        for note in result.notifications:
            if note.kind is NotificationKind.RESOLVED:
                assert value >= ALL_CLEAR
        new = [e for e in result.events if e.kind.value == "firing" and e.facts["notification_id"]]
        episodes += len(new)
    # A new episode needs a resolve first, and a resolve needs the ratio back past 360 %.
    recoveries = sum(1 for v in values if v >= ALL_CLEAR)
    assert episodes <= recoveries + 1


@SETTINGS
@given(
    st.floats(min_value=1.0, max_value=2.95),
    st.lists(st.floats(min_value=1.0, max_value=3.59), max_size=30),
)
def test_no_flapping_inside_the_band(start: float, wobble: list[float]) -> None:
    # Once firing, a ratio that never reaches the warning's clear level never resolves or re-fires.
    values = [start, start, start, *wobble]
    results = ratios(rules(RULE), timed(values))
    kinds = [n.kind for r in results for n in r.notifications]
    assert NotificationKind.RESOLVED not in kinds
    assert firing_severity(results[-1].states["margin_ratio"]) is not None


@SETTINGS
@given(series)
def test_every_firing_alert_is_resolved_when_the_ratio_recovers(values: list[float]) -> None:
    recovered = [*values, 3.7, 3.8]
    results = ratios(rules(RULE), timed(recovered))
    assert firing_severity(results[-1].states["margin_ratio"]) is None
    notices = [n for r in results for n in r.notifications]
    fired = [n for n in notices if n.kind is NotificationKind.FIRING]
    if fired:
        assert notices[-1].kind is NotificationKind.RESOLVED


@SETTINGS
@given(series)
def test_severity_never_goes_down_without_passing_its_clear_level(values: list[float]) -> None:
    results = ratios(rules(RULE), timed(values))
    before: Severity | None = None
    for step, (value, result) in enumerate(zip(values, results, strict=True)):
        now = firing_severity(result.states["margin_ratio"])
        if before is not None and (now is None or now.rank < before.rank):
            assert value >= RULE.clear_level(before)
        if now is not None and (before is None or now.rank > before.rank):
            # It rises only to a level breached for the whole debounce (20 s = three cycles).
            assert step >= 2
            assert all(v < RULE.level(now) for v in values[step - 2 : step + 1])
        before = now


@SETTINGS
@given(series)
def test_states_kept_in_memory_evaluate_as_states_read_back_from_the_database(
    values: list[float],
) -> None:
    # Live marks evaluate from the states the last evaluation returned, not from the JSON the
    # database gives back: every event, message and state must be the same either way.
    alert_rules = rules(margin_rule(debounce=20, repeat=30, band=0.2))
    steps = [(t, observe(snapshot(r, taken_at=at(t)))) for t, r in timed([*values, 3.7, 1.2])]
    read_back, _ = run(alert_rules, steps)
    kept: list[Evaluation] = []
    current: Mapping[str, Mapping[str, object]] = {}
    for seconds, observation in steps:
        result = evaluate(alert_rules, current, observation, at(seconds))
        current = result.states
        kept.append(result)
    assert [(r.states, r.events, r.notifications) for r in kept] == [
        (r.states, r.events, r.notifications) for r in read_back
    ]


# (margin ratio, isolated margin, fetched): a failed fetch ages the data (stale), a rising
# isolated margin is a top-up (margin chasing); both rules keep memory that changes at rest.
cycles = st.lists(
    st.tuples(
        st.floats(min_value=0.9, max_value=4.5, allow_nan=False),
        st.sampled_from([100.0, 100.0, 130.0, 170.0]),
        st.booleans(),
    ),
    min_size=1,
    max_size=30,
)


@SETTINGS
@given(cycles)
def test_rules_with_memory_evaluate_alike_in_memory_and_read_back(
    values: list[tuple[float, float, bool]],
) -> None:
    # A rule at rest keeps its state object while the reading stays calm; its memory must
    # still follow every cycle (the first-seen time, each top-up), exactly as read back.
    alert_rules = rules(
        margin_rule(debounce=20, repeat=30, band=0.2),
        Rule(RuleKey.STALE, ((Severity.WARNING, 3.0), (Severity.CRITICAL, 6.0))),
        Rule(
            RuleKey.MARGIN_CHASING,
            ((Severity.WARNING, 2.0),),
            window=timedelta(minutes=5),
            min_increase=0.05,
        ),
    )
    steps: list[tuple[float, Observation]] = []
    last_success = None
    for number, (ratio, margin, fetched) in enumerate(values):
        seconds = 10.0 * number
        if fetched:
            held = (position(isolated_margin=margin),)
            steps.append((seconds, observe(snapshot(ratio, taken_at=at(seconds), positions=held))))
            last_success = at(seconds)
        else:
            failed = ExchangeUnavailable("timeout")
            steps.append((seconds, observe(None, last_success_at=last_success, fetch_error=failed)))
    read_back, _ = run(alert_rules, steps)
    kept: list[Evaluation] = []
    current: Mapping[str, Mapping[str, object]] = {}
    for seconds, observation in steps:
        result = evaluate(alert_rules, current, observation, at(seconds))
        current = result.states
        kept.append(result)
    assert [(r.states, r.events, r.notifications) for r in kept] == [
        (r.states, r.events, r.notifications) for r in read_back
    ]
