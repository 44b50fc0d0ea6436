"""The alert state machine, cycle by cycle: debounce, hysteresis, repeat, escalation, inhibition,
silences, resolved notices, the operational rules, and restarts."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from monitor.domain.alerts import (
    AlertRules,
    Evaluation,
    EventKind,
    Rule,
    RuleKey,
    evaluate,
    firing_severity,
)
from monitor.domain.errors import ExchangeAuthError, ExchangeUnavailable, InvalidInput
from monitor.domain.model import Snapshot
from monitor.domain.notification import NotificationKind, Severity
from tests.domain.alerts.builders import (
    at,
    margin_rule,
    observe,
    position,
    ratios,
    rules,
    run,
    sent,
    snapshot,
)

WARNING, CRITICAL, EMERGENCY = Severity.WARNING, Severity.CRITICAL, Severity.EMERGENCY


def kinds(results: list[Evaluation], rule: str = "margin_ratio") -> list[tuple[float, str, str]]:
    return [
        (e.at.timestamp() - at(0).timestamp(), e.kind.value, e.severity.value)
        for r in results
        for e in r.events
        if e.rule_key == rule
    ]


class TestDebounce:
    def test_a_short_dip_stays_pending_and_is_cancelled(self) -> None:
        results = ratios(
            rules(margin_rule(debounce=30)), [(0, 4.0), (10, 2.5), (20, 2.5), (30, 3.7)]
        )
        assert sent(results) == []
        assert kinds(results) == [(10, "pending", "warning"), (30, "cancelled", "warning")]

    def test_a_breach_lasting_the_debounce_fires_once(self) -> None:
        series = [(t, 2.5) for t in range(0, 80, 10)]
        results = ratios(rules(margin_rule(debounce=30)), series)
        assert sent(results) == [("margin_ratio", "firing", "warning")]
        first = next(i for i, r in enumerate(results) if r.notifications)
        assert first == 3  # t=30: breached since t=0 for exactly the debounce

    def test_the_emergency_level_waits_only_its_own_shorter_debounce(self) -> None:
        # Marks every second: a crash below 120 % is sent after 1 s, not after the warning's 10 s.
        rule = replace(
            margin_rule(debounce=10),
            severity_debounce=((Severity.EMERGENCY, timedelta(seconds=1)),),
        )
        results = ratios(rules(rule), [(0, 4.0), (1, 1.1), (2, 1.1), (3, 1.1)])
        assert sent(results) == [("margin_ratio", "firing", "emergency")]
        first = next(i for i, r in enumerate(results) if r.notifications)
        assert first == 2  # t=2: breached since t=1 for the emergency debounce

    def test_the_emergency_level_without_debounce_fires_on_its_first_reading(self) -> None:
        # The shipped rules: warnings wait 10 s, a crash below 120 % is sent on the first mark,
        # even while a warning from the slide before it is still pending.
        rule = replace(
            margin_rule(debounce=10), severity_debounce=((Severity.EMERGENCY, timedelta(0)),)
        )
        results = ratios(rules(rule), [(0, 4.0), (1, 2.5), (2, 1.1), (3, 1.1)])
        assert sent(results) == [("margin_ratio", "firing", "emergency")]
        first = next(i for i, r in enumerate(results) if r.notifications)
        assert first == 2

    def test_a_one_tick_wick_to_the_emergency_level_is_not_sent(self) -> None:
        rule = replace(
            margin_rule(debounce=10),
            severity_debounce=((Severity.EMERGENCY, timedelta(seconds=1)),),
        )
        assert sent(ratios(rules(rule), [(0, 4.0), (1, 1.1), (2, 4.0), (3, 4.0)])) == []

    def test_without_debounce_it_fires_at_the_deepest_breached_level(self) -> None:
        results = ratios(rules(margin_rule()), [(0, 1.1)])
        assert sent(results) == [("margin_ratio", "firing", "emergency")]


class TestHysteresis:
    def test_recovering_over_the_level_but_inside_the_band_does_not_resolve(self) -> None:
        # warning 300 %, clear band 20 %: resolves only at or above 360 %.
        series = [(0, 2.9), (10, 3.1), (20, 3.5), (30, 2.95), (40, 3.59)]
        results = ratios(rules(margin_rule()), series)
        assert sent(results) == [("margin_ratio", "firing", "warning")]

    def test_passing_the_clear_level_resolves_with_a_notice(self) -> None:
        results = ratios(rules(margin_rule()), [(0, 2.9), (60, 3.6)])
        assert sent(results) == [
            ("margin_ratio", "firing", "warning"),
            ("margin_ratio", "resolved", "warning"),
        ]
        notice = results[1].notifications[0]
        assert "back above 360 % (exchange: 27.8 %)" in notice.text
        assert "warning alert ended after 1m" in notice.text
        assert notice.title == "main: margin ratio resolved"

    def test_de_escalation_only_through_the_clear_level_of_the_higher_severity(self) -> None:
        # critical 150 % clears at 180 %.
        series = [(0, 1.4), (10, 1.6), (20, 1.79), (30, 1.81), (40, 1.45), (50, 1.49)]
        results = ratios(rules(margin_rule()), series)
        assert sent(results) == [
            ("margin_ratio", "firing", "critical"),
            ("margin_ratio", "firing", "critical"),  # back to critical after easing: notify again
        ]
        assert kinds(results) == [
            (0, "firing", "critical"),
            (30, "deescalated", "warning"),
            (40, "escalated", "critical"),
        ]
        eased = next(e for e in results[3].events if e.kind is EventKind.DEESCALATED)
        assert eased.title == "main: margin ratio eased to warning"
        assert (
            "margin ratio 181 % (exchange: 55.2 %); back above 180 % (exchange: 55.6 %); still warning"
            in (eased.text)
        )

    def test_a_ratio_just_below_its_level_never_reads_as_the_level(self) -> None:
        # 119.96 % with one decimal is "120.0 %": beside "fell below emergency 120 %" that reads
        # as a contradiction, so the figure keeps the decimals that put it below the level.
        results = ratios(rules(margin_rule()), [(0, 1.1996)])
        text = results[0].notifications[0].text
        assert "margin ratio 119.96 % (exchange: 83.4 %), fell below emergency 120 %" in text


class TestRepeat:
    def test_a_firing_alert_is_sent_again_every_repeat_interval(self) -> None:
        series = [(t, 2.5) for t in range(0, 130, 10)]
        results = ratios(rules(margin_rule(repeat=60)), series)
        assert sent(results) == [
            ("margin_ratio", "firing", "warning"),
            ("margin_ratio", "repeat", "warning"),
            ("margin_ratio", "repeat", "warning"),
        ]
        ids = [n.id for r in results for n in r.notifications]
        assert len(set(ids)) == 3
        times = [r.notifications[0].created_at for r in results if r.notifications]
        assert times == [at(0), at(60), at(120)]
        assert "still firing after 1m" in results[6].notifications[0].text

    def test_no_repeat_when_it_is_off(self) -> None:
        results = ratios(rules(margin_rule(repeat=None)), [(t, 2.5) for t in range(0, 7200, 600)])
        assert len(sent(results)) == 1


class TestEscalation:
    def test_escalation_notifies_at_each_higher_severity(self) -> None:
        results = ratios(rules(margin_rule()), [(0, 2.5), (10, 1.4), (20, 1.1), (30, 1.15)])
        assert sent(results) == [
            ("margin_ratio", "firing", "warning"),
            ("margin_ratio", "firing", "critical"),
            ("margin_ratio", "firing", "emergency"),
        ]
        assert results[1].notifications[0].title == "main: margin ratio CRITICAL (escalated)"

    def test_escalation_waits_out_the_debounce_of_the_higher_severity(self) -> None:
        series = [(0, 2.5), (30, 2.5), (40, 1.4), (50, 1.4), (70, 1.4)]
        results = ratios(rules(margin_rule(debounce=30)), series)
        assert [(r.notifications[0].severity if r.notifications else None) for r in results] == [
            None,
            WARNING,
            None,
            None,
            CRITICAL,
        ]

    def test_message_has_both_conventions_nearest_liquidation_and_account_move(self) -> None:
        snap = snapshot(1.42, liq=52100.0, move=-0.077)
        result = evaluate(rules(margin_rule()), {}, observe(snap), at(0))
        notice = result.notifications[0]
        assert notice.kind is NotificationKind.FIRING
        assert notice.severity is CRITICAL
        assert (
            "Account main: margin ratio 142 % (exchange: 70.4 %), fell below critical 150 %"
            in notice.text
        )
        assert "Nearest liquidation: BTCUSDT long at 52,100 (10.2 % away)" in notice.text
        assert "liquidated if they fall 7.7 %" in notice.text
        assert notice.facts["margin_ratio"] == pytest.approx(1.42)
        assert notice.facts["exchange_margin_ratio"] == pytest.approx(1 / 1.42)
        assert notice.facts["nearest_liquidation_symbol"] == "BTCUSDT"
        assert notice.facts["nearest_liquidation_price"] == 52100.0
        assert notice.facts["account_liquidation_move"] == pytest.approx(-0.077)
        assert notice.facts["level"] == 1.5
        assert notice.facts["clear_level"] == pytest.approx(1.8)
        assert notice.id == f"main:margin_ratio:critical:firing:{int(at(0).timestamp() * 1000)}:0"
        json.dumps(notice.facts, allow_nan=False)


def distance_rule() -> Rule:
    return Rule(
        RuleKey.LIQUIDATION_DISTANCE,
        ((WARNING, 0.10), (CRITICAL, 0.05)),
        clear_band=0.2,
    )


class TestInhibition:
    def test_a_higher_severity_holds_back_a_lower_one_of_the_same_account(self) -> None:
        alert_rules = rules(margin_rule(), distance_rule())
        # ratio 140 % is critical; the nearest liquidation 8 % away is only a warning.
        crash = snapshot(1.4, liq=58000 * 0.92)
        calm = snapshot(4.0, liq=58000 * 0.92)
        results, _ = run(
            alert_rules, [(0, observe(crash)), (10, observe(crash)), (20, observe(calm))]
        )
        assert sent(results[:2]) == [("margin_ratio", "firing", "critical")]
        withheld = [e for e in results[0].events if e.rule_key == "liquidation_distance"]
        assert [(e.kind, e.facts["suppressed"]) for e in withheld] == [
            (EventKind.FIRING, "inhibited")
        ]
        # Once the critical alert ends, the still-firing warning is sent.
        assert sent(results[2:]) == [
            ("margin_ratio", "resolved", "critical"),
            ("liquidation_distance", "firing", "warning"),
        ]

    def test_operational_rules_are_not_held_back(self) -> None:
        stale = Rule(RuleKey.STALE, ((WARNING, 3.0),))
        alert_rules = rules(margin_rule(), stale)
        old = snapshot(1.1, taken_at=at(0))
        results, _ = run(
            alert_rules,
            [
                (0, observe(old)),
                (
                    60,
                    observe(
                        None, last_success_at=at(0), fetch_error=ExchangeUnavailable("timeout")
                    ),
                ),
            ],
        )
        assert sent(results) == [
            ("margin_ratio", "firing", "emergency"),
            ("stale", "firing", "warning"),
        ]


class TestSilence:
    def test_silenced_alert_is_tracked_and_sent_when_the_silence_ends(self) -> None:
        until = at(100)
        series = [(t, 2.5) for t in range(0, 130, 10)]
        results = ratios(rules(margin_rule(repeat=3600)), series, silenced_until=until)
        assert [i for i, r in enumerate(results) if r.notifications] == [10]
        assert sent(results) == [("margin_ratio", "firing", "warning")]
        assert results[0].events[0].facts["suppressed"] == "silence"
        assert firing_severity(results[0].states["margin_ratio"]) is WARNING

    def test_alert_notified_before_a_silence_is_repeated_when_it_ends(self) -> None:
        alert_rules = rules(margin_rule(repeat=3600))
        steps = [(0, observe(snapshot(2.5)))]
        steps += [
            (t, observe(snapshot(2.5), silenced_until=at(50))) for t in (10, 20, 30, 40, 50, 60)
        ]
        results, _ = run(alert_rules, steps)
        assert sent(results) == [
            ("margin_ratio", "firing", "warning"),
            ("margin_ratio", "repeat", "warning"),
        ]
        assert results[5].notifications[0].created_at == at(50)

    def test_escalation_during_a_silence_is_sent_when_it_ends(self) -> None:
        alert_rules = rules(margin_rule())
        steps = [(0, observe(snapshot(2.5)))]
        steps += [(t, observe(snapshot(1.4), silenced_until=at(30))) for t in (10, 20, 30)]
        results, _ = run(alert_rules, steps)
        assert sent(results) == [
            ("margin_ratio", "firing", "warning"),
            ("margin_ratio", "firing", "critical"),
        ]
        assert results[3].notifications[0].created_at == at(30)

    def test_resolve_during_a_silence_sends_nothing(self) -> None:
        steps = [(0, observe(snapshot(2.5))), (10, observe(snapshot(4.0), silenced_until=at(100)))]
        results, state = run(rules(margin_rule()), steps)
        assert sent(results) == [("margin_ratio", "firing", "warning")]
        assert [(e.kind, e.facts["suppressed"]) for e in results[1].events] == [
            (EventKind.RESOLVED, "silence")
        ]
        assert firing_severity(state["margin_ratio"]) is None


class TestOperationalRules:
    def test_stale_data_fires_after_n_poll_intervals_and_resolves_on_fresh_data(self) -> None:
        stale = Rule(RuleKey.STALE, ((CRITICAL, 3.0),), repeat=timedelta(minutes=5))
        down = ExchangeUnavailable("HTTP 503")
        steps = [(0, observe(snapshot(4.0)))]
        steps += [
            (t, observe(None, fetch_error=down, last_success_at=at(0)))
            for t in (10, 20, 29, 30, 40)
        ]
        steps += [(50, observe(snapshot(4.0, taken_at=at(50)), last_success_at=at(0)))]
        results, _ = run(rules(stale), steps)
        assert [i for i, r in enumerate(results) if r.notifications] == [4, 6]
        assert sent(results) == [("stale", "firing", "critical"), ("stale", "resolved", "critical")]
        text = results[4].notifications[0].text
        assert "no fresh data for 30s (3.0 poll intervals of 10s)" in text
        assert "last error: HTTP 503" in text

    def test_stale_counts_from_the_first_cycle_when_there_was_never_any_data(self) -> None:
        stale = Rule(RuleKey.STALE, ((CRITICAL, 3.0),))
        down = ExchangeUnavailable("connection refused")
        results, _ = run(
            rules(stale), [(t, observe(None, fetch_error=down)) for t in (0, 10, 20, 30)]
        )
        assert [i for i, r in enumerate(results) if r.notifications] == [3]

    def test_auth_failure_fires_and_a_successful_fetch_resolves(self) -> None:
        auth = Rule(RuleKey.AUTH, ((CRITICAL, 1.0),))
        rejected = ExchangeAuthError(
            "binance: -2015 Invalid API-key, IP, or permissions for action"
        )
        steps = [
            (0, observe(None, fetch_error=rejected)),
            (10, observe(None, fetch_error=ExchangeUnavailable("timeout"))),
            (20, observe(snapshot(4.0))),
        ]
        results, _ = run(rules(auth), steps)
        assert sent(results) == [("auth", "firing", "critical"), ("auth", "resolved", "critical")]
        assert "-2015 Invalid API-key" in results[0].notifications[0].text
        assert results[1].events == ()  # an outage says nothing about the key

    def test_a_rejected_key_holds_back_the_stale_alert_it_causes(self) -> None:
        auth = Rule(RuleKey.AUTH, ((CRITICAL, 1.0),))
        stale = Rule(RuleKey.STALE, ((CRITICAL, 3.0),))
        rejected = ExchangeAuthError("bybit: 10003 API key is invalid")
        steps = [(0, observe(snapshot(4.0)))]
        steps += [(t, observe(None, fetch_error=rejected, last_success_at=at(0))) for t in (10, 40)]
        steps += [
            (50, observe(None, fetch_error=ExchangeUnavailable("timeout"), last_success_at=at(0)))
        ]
        steps += [(60, observe(snapshot(4.0, taken_at=at(60))))]
        results, _ = run(rules(auth, stale), steps)
        # One message for one cause: the key. Stale fired at t=40 but was held back, so it has
        # nothing to resolve; the key's resolution is the only other message.
        assert sent(results) == [("auth", "firing", "critical"), ("auth", "resolved", "critical")]
        assert [
            (e.kind, e.facts["suppressed"]) for e in results[2].events if e.rule_key == "stale"
        ] == [(EventKind.FIRING, "inhibited")]

    def test_liquidation_mismatch(self) -> None:
        mismatch = Rule(
            RuleKey.LIQUIDATION_MISMATCH,
            ((WARNING, 0.02),),
            clear_band=0.5,
            debounce=timedelta(seconds=20),
        )

        def snap(theirs: float) -> Snapshot:
            return snapshot(4.0, liq=52000.0, positions=(position(exchange_liq=theirs),))

        # 3.8 % apart for 20 s fires; 1.5 % is still inside the band (clears below 1 %); 0.5 % clears.
        steps = [
            (0, snap(54000)),
            (10, snap(54000)),
            (20, snap(54000)),
            (30, snap(52800)),
            (40, snap(52260)),
        ]
        results, _ = run(rules(mismatch), [(t, observe(s)) for t, s in steps])
        assert [i for i, r in enumerate(results) if r.notifications] == [2, 4]
        text = results[2].notifications[0].text
        assert (
            "our liquidation price for BTCUSDT long is 52,000, the exchange's 54,000 (3.7 % apart), above warning 2 %"
            in text
        )
        assert sent(results)[-1] == ("liquidation_mismatch", "resolved", "warning")

    def test_liquidation_mismatch_waits_for_a_fetch_while_marks_are_live(self) -> None:
        # At live marks our price moved on while the venue's is the last fetch's: a gap then is
        # no evidence, and it neither starts nor ends the alert.
        mismatch = Rule(RuleKey.LIQUIDATION_MISMATCH, ((WARNING, 0.02),), clear_band=0.5)

        def snap(theirs: float) -> Snapshot:
            return snapshot(4.0, liq=52000.0, positions=(position(exchange_liq=theirs),))

        steps = [
            (0, observe(snap(54000), live_marks=True)),
            (10, observe(snap(54000))),
            (20, observe(snap(52000), live_marks=True)),
        ]
        results, _ = run(rules(mismatch), steps)
        assert [sent([r]) for r in results] == [
            [],
            [("liquidation_mismatch", "firing", "warning")],
            [],
        ]

    def test_tier_change_notifies_once_per_change(self) -> None:
        tier = Rule(RuleKey.TIER_CHANGE, ((WARNING, 1.0),))
        steps = [
            (0, observe(snapshot(), changed_tier_symbols=("BTCUSDT", "ETHUSDT"))),
            (10, observe(snapshot())),
            (20, observe(snapshot(), changed_tier_symbols=("BTCUSDT",))),
        ]
        results, state = run(rules(tier), steps)
        assert sent(results) == [
            ("tier_change", "firing", "warning"),
            ("tier_change", "firing", "warning"),
        ]
        assert (
            "changed its margin tiers (leverage brackets / risk limits) for BTCUSDT, ETHUSDT"
            in (results[0].notifications[0].text)
        )
        assert results[1].events == ()
        assert firing_severity(state["tier_change"]) is None

    def test_margin_chasing_counts_top_ups_within_the_window(self) -> None:
        chasing = Rule(
            RuleKey.MARGIN_CHASING,
            ((WARNING, 3.0),),
            window=timedelta(hours=1),
            min_increase=0.01,
        )

        def snap(margin: float, quantity: float = 0.5) -> Snapshot:
            return snapshot(4.0, positions=(position(isolated_margin=margin, quantity=quantity),))

        margins = [
            (0, snap(1000)),
            (60, snap(1100)),  # top-up 1
            (120, snap(1105)),  # +0.45 %: funding, not a top-up
            (180, snap(1500, quantity=1.0)),  # a bigger position: not chasing
            (240, snap(1700, quantity=1.0)),  # top-up 2
            (300, snap(2000, quantity=1.0)),  # top-up 3 -> fires
            (3000, snap(2000, quantity=1.0)),
            (3700, snap(2000, quantity=1.0)),  # top-up 1 left the window -> resolves
        ]
        results, _ = run(rules(chasing), [(t, observe(s)) for t, s in margins])
        assert [i for i, r in enumerate(results) if r.notifications] == [5, 7]
        assert "margin was added 3 times within 1h00m to isolated BTCUSDT long" in (
            results[5].notifications[0].text
        )
        assert sent(results)[-1] == ("margin_chasing", "resolved", "warning")

    def test_margin_chasing_window_longer_than_the_calendar_counts_every_top_up(self) -> None:
        chasing = Rule(RuleKey.MARGIN_CHASING, ((WARNING, 2.0),), window=timedelta(days=999_999))

        def snap(margin: float) -> Snapshot:
            return snapshot(4.0, positions=(position(isolated_margin=margin, quantity=0.5),))

        margins = [(0, snap(1000)), (60, snap(1100)), (120, snap(1200))]
        results, _ = run(rules(chasing), [(t, observe(s)) for t, s in margins])
        assert sent(results) == [("margin_chasing", "firing", "warning")]


class TestRestart:
    def test_state_survives_a_restart_without_repeating_or_forgetting(self) -> None:
        alert_rules = rules(margin_rule(repeat=600))
        before, state = run(
            alert_rules, [(0, observe(snapshot(2.5))), (10, observe(snapshot(2.5)))]
        )
        assert sent(before) == [("margin_ratio", "firing", "warning")]
        # A new process: only the stored JSON is left.
        stored = json.loads(json.dumps(state))
        after, _ = run(
            alert_rules,
            [
                (20, observe(snapshot(2.5))),
                (610, observe(snapshot(2.5))),
                (620, observe(snapshot(4.0))),
            ],
            stored,
        )
        assert sent(after) == [
            ("margin_ratio", "repeat", "warning"),
            ("margin_ratio", "resolved", "warning"),
        ]
        assert after[0].notifications == ()

    def test_a_replayed_cycle_produces_the_same_notification_ids(self) -> None:
        alert_rules = rules(margin_rule(repeat=60))
        _, state = run(alert_rules, [(0, observe(snapshot(2.5)))])
        first = evaluate(alert_rules, state, observe(snapshot(1.4)), at(60))
        replay = evaluate(
            alert_rules, json.loads(json.dumps(state)), observe(snapshot(1.4)), at(60)
        )
        assert [n.id for n in first.notifications] == [n.id for n in replay.notifications]
        assert first.states == replay.states

    def test_the_same_transition_evaluated_later_or_elsewhere_has_the_same_id(self) -> None:
        # Another daemon (or this one after a failed write) evaluates the transition from the
        # same stored state a moment later, with its own fetch: the id names the breach that
        # caused it, not the moment of the evaluation.
        alert_rules = rules(margin_rule(debounce=30))
        _, state = run(alert_rules, [(0, observe(snapshot(2.5, taken_at=at(0))))])
        here = evaluate(alert_rules, state, observe(snapshot(2.4, taken_at=at(31))), at(31))
        there = evaluate(alert_rules, state, observe(snapshot(2.45, taken_at=at(31.4))), at(31.4))
        assert [n.id for n in here.notifications] == [n.id for n in there.notifications]
        epoch = int(at(0).timestamp() * 1000)
        assert here.notifications[0].id == f"main:margin_ratio:warning:firing:{epoch}:0"

    def test_a_stale_episode_is_named_after_the_last_fresh_data(self) -> None:
        stale = Rule(RuleKey.STALE, ((CRITICAL, 3.0),))
        down = ExchangeUnavailable("HTTP 503")
        results, state = run(
            rules(stale),
            [(0, observe(snapshot(4.0, taken_at=at(0))))]
            + [(t, observe(None, fetch_error=down, last_success_at=at(0))) for t in (10, 20, 30)],
        )
        fired = [n for r in results for n in r.notifications]
        epoch = int(at(0).timestamp() * 1000)
        assert [n.id for n in fired] == [f"main:stale:critical:firing:{epoch}:0"]
        # A retry of the firing cycle a little later (its first write failed) sends the same id.
        _, before = run(rules(stale), [(0, observe(snapshot(4.0, taken_at=at(0))))])
        retried = evaluate(
            rules(stale), before, observe(None, fetch_error=down, last_success_at=at(0)), at(33)
        )
        assert [n.id for n in retried.notifications] == [fired[0].id]
        assert state["stale"]["cause_at"] == at(0).isoformat()

    def test_missing_data_neither_resolves_nor_fires(self) -> None:
        alert_rules = rules(margin_rule())
        steps = [(0, observe(snapshot(2.5)))]
        steps += [
            (t, observe(None, fetch_error=ExchangeUnavailable("timeout"))) for t in (10, 20, 30)
        ]
        results, state = run(alert_rules, steps)
        assert sent(results) == [("margin_ratio", "firing", "warning")]
        assert firing_severity(state["margin_ratio"]) is WARNING

    def test_disabling_a_firing_rule_resolves_it_with_a_notice(self) -> None:
        _, state = run(rules(margin_rule()), [(0, observe(snapshot(2.5)))])
        result = evaluate(AlertRules(()), state, observe(snapshot(2.5)), at(90))
        assert [(n.rule, n.kind, n.severity) for n in result.notifications] == [
            ("margin_ratio", NotificationKind.RESOLVED, WARNING)
        ]
        notice = result.notifications[0]
        assert "rule disabled" in notice.title
        assert "no longer in the configuration" in notice.text
        assert "ended after 1m without being cleared" in notice.text
        assert [(e.kind, e.severity) for e in result.events] == [(EventKind.RESOLVED, WARNING)]
        assert firing_severity(result.states["margin_ratio"]) is None
        # Nothing more once it is closed; enabling it again starts a new episode.
        again = evaluate(AlertRules(()), result.states, observe(snapshot(2.5)), at(100))
        assert again.notifications == ()
        assert again.events == ()
        back = evaluate(rules(margin_rule()), again.states, observe(snapshot(2.5)), at(110))
        assert [(n.kind, n.severity) for n in back.notifications] == [
            (NotificationKind.FIRING, WARNING)
        ]

    def test_disabling_a_rule_keeps_its_memory_and_a_silence_withholds_the_notice(self) -> None:
        def snap(margin: float) -> Snapshot:
            return snapshot(positions=(position(isolated_margin=margin),))

        chasing = Rule(
            RuleKey.MARGIN_CHASING,
            ((WARNING, 2.0),),
            window=timedelta(hours=1),
            min_increase=0.01,
        )
        _, state = run(
            rules(chasing), [(t, observe(snap(m))) for t, m in ((0, 1000), (60, 1100), (120, 1200))]
        )
        memory = state["margin_chasing"]["memory"]
        assert firing_severity(state["margin_chasing"]) is WARNING
        quiet = observe(snap(1200), silenced_until=at(3600))
        result = evaluate(AlertRules(()), state, quiet, at(180))
        assert result.notifications == ()
        assert [(e.kind, e.facts["suppressed"]) for e in result.events] == [
            (EventKind.RESOLVED, "silence")
        ]
        assert result.states["margin_chasing"]["memory"] == memory

    def test_a_firing_rule_this_version_does_not_know_is_resolved_in_plain_words(self) -> None:
        _, state = run(rules(margin_rule()), [(0, observe(snapshot(2.5)))])
        from_newer_version = {"funding_drain": state["margin_ratio"]}
        result = evaluate(AlertRules(()), from_newer_version, observe(snapshot(2.5)), at(10))
        assert [n.title for n in result.notifications] == [
            "main: funding drain resolved (rule disabled)"
        ]

    def test_a_pending_breach_of_a_disabled_rule_is_dropped_quietly(self) -> None:
        _, state = run(rules(margin_rule(debounce=60)), [(0, observe(snapshot(2.5)))])
        result = evaluate(AlertRules(()), state, observe(snapshot(2.5)), at(10))
        assert result.notifications == ()
        assert result.events == ()
        assert result.states["margin_ratio"]["pending"] == {}

    def test_removing_the_firing_severity_level_eases_or_resolves_without_crashing(self) -> None:
        _, state = run(rules(margin_rule()), [(0, observe(snapshot(1.1)))])
        assert firing_severity(state["margin_ratio"]) is EMERGENCY
        without_emergency = rules(margin_rule(levels=((WARNING, 3.0), (CRITICAL, 1.5))))
        eased = evaluate(without_emergency, state, observe(snapshot(1.1)), at(10))
        assert [e.kind for e in eased.events] == [EventKind.DEESCALATED]
        assert firing_severity(eased.states["margin_ratio"]) is CRITICAL
        recovered = evaluate(
            rules(margin_rule(levels=((WARNING, 3.0),))), state, observe(snapshot(4.0)), at(10)
        )
        notice = recovered.notifications[0]
        assert (notice.kind, notice.severity) == (NotificationKind.RESOLVED, EMERGENCY)
        assert "the emergency level is no longer configured" in notice.text
        assert notice.facts["level"] is None

    def test_an_unreadable_stored_state_names_the_account_and_rule(self) -> None:
        with pytest.raises(InvalidInput, match=r"alert_state\.main\.margin_ratio"):
            evaluate(
                rules(margin_rule()), {"margin_ratio": {"version": 1}}, observe(snapshot()), at(0)
            )


def test_rules_reject_levels_in_the_wrong_order() -> None:
    with pytest.raises(InvalidInput, match="each higher severity's level must be below"):
        margin_rule(levels=((WARNING, 1.5), (CRITICAL, 3.0)))
    with pytest.raises(InvalidInput, match="clear_band"):
        margin_rule(band=-0.1)


class TestLiquidationRules:
    def test_distance_names_the_nearest_position(self) -> None:
        near = position("ETHUSDT", mark=3000.0)
        far = position("BTCUSDT", mark=58000.0)
        snap = snapshot(4.0, liq=2880.0, positions=(near, far))
        result = evaluate(rules(distance_rule()), {}, observe(snap), at(0))
        assert sent([result]) == [("liquidation_distance", "firing", "critical")]
        text = result.notifications[0].text
        assert (
            "ETHUSDT long is 4 % from its liquidation price 2,880 (mark 3,000), fell below critical 5 %"
            in text
        )
        assert result.notifications[0].facts["symbol"] == "ETHUSDT"

    def test_account_move_compares_the_size_of_the_move(self) -> None:
        move = Rule(RuleKey.ACCOUNT_MOVE, ((WARNING, 0.15), (CRITICAL, 0.08)), clear_band=0.2)
        steps = [(0, observe(snapshot(4.0, move=-0.12))), (10, observe(snapshot(4.0, move=0.07)))]
        steps += [(20, observe(snapshot(4.0, move=-0.17))), (30, observe(snapshot(4.0, move=None)))]
        results, _ = run(rules(move), steps)
        assert sent(results) == [
            ("account_move", "firing", "warning"),
            ("account_move", "firing", "critical"),
            ("account_move", "resolved", "warning"),
        ]
        # 17 % passed the critical clear level (9.6 %) but not the warning's (18 %).
        assert kinds(results, "account_move")[2] == (20, "deescalated", "warning")
        assert "a move of all prices by -12 % together would liquidate the account" in (
            results[0].notifications[0].text
        )

    def test_inhibition_does_not_hold_back_a_resolved_notice(self) -> None:
        alert_rules = rules(margin_rule(), distance_rule())
        steps = [
            (0, observe(snapshot(4.0, liq=58000 * 0.92))),  # distance warning alone: sent
            (10, observe(snapshot(1.4, liq=58000 * 0.92))),  # margin critical
            (20, observe(snapshot(1.4, liq=None))),  # the distance alert ends
        ]
        results, _ = run(alert_rules, steps)
        assert sent(results) == [
            ("liquidation_distance", "firing", "warning"),
            ("margin_ratio", "firing", "critical"),
            ("liquidation_distance", "resolved", "warning"),
        ]
