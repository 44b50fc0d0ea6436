"""The `venue_paused` rule and the stale rule's view of a venue-wide pause, as pure functions."""

from __future__ import annotations

from typing import Any

from monitor.domain.alerts import Evaluation, Observation, Rule, RuleKey
from monitor.domain.errors import ExchangeUnavailable, VenuePaused
from monitor.domain.notification import Severity
from tests.domain.alerts.builders import POLL, at, rules, run, snapshot

VENUE = "binanceusdm@production"
PEERS = ("alpha", "beta")
WARNING, CRITICAL = Severity.WARNING, Severity.CRITICAL


def paused(elapsed: float, retry_after: float) -> VenuePaused:
    return VenuePaused(
        "binance-usdm: the exchange banned this address",
        venue=VENUE,
        retry_after=retry_after,
        elapsed=elapsed,
    )


def stale_rule(*, excuse_pauses: bool = True) -> Rule:
    return Rule(RuleKey.STALE, ((CRITICAL, 3.0),), excuse_pauses=excuse_pauses)


def venue_rule() -> Rule:
    return Rule(RuleKey.VENUE_PAUSED, ((WARNING, 1.0),))


def on(account: str, **kwargs: Any) -> Observation:
    return Observation(
        account=account, poll_interval=POLL, venue=VENUE, venue_accounts=PEERS, **kwargs
    )


def sent(results: list[Evaluation]) -> list[tuple[str, str]]:
    return [(n.rule, n.kind.value) for r in results for n in r.notifications]


def test_the_first_account_on_the_venue_carries_the_one_alert() -> None:
    alert_rules = rules(venue_rule(), stale_rule())
    for account in PEERS:
        # Fresh data at 0 s and 10 s, then a 10-minute ban (from 15 s), then data again.
        steps = [(t, on(account, snapshot=snapshot(taken_at=at(t)))) for t in (0, 10)]
        steps += [
            (t, on(account, fetch_error=paused(t - 15, 615 - t), last_success_at=at(10)))
            for t in range(20, 620, 10)
        ]
        steps += [(620, on(account, snapshot=snapshot(taken_at=at(620))))]
        results, _ = run(alert_rules, steps)
        # Ten minutes without data, and no stale alert: the pause explains all of it.
        if account != "alpha":
            assert sent(results) == []
            continue
        assert sent(results) == [("venue_paused", "firing"), ("venue_paused", "resolved")]
        firing = results[2].notifications[0]
        assert firing.title == "alpha: venue paused WARNING"
        assert "retry after 9m" in firing.text
        assert "Every account there waits: alpha, beta" in firing.text
        assert firing.facts["venue"] == VENUE
        # Named after the start of the pause, as every re-evaluation of it sees it.
        assert firing.id == f"alpha:venue_paused:warning:firing:{int(at(15).timestamp() * 1000)}:0"
        assert "requests to binanceusdm@production are allowed again" in (
            results[-1].notifications[0].text
        )


def test_stale_counts_only_what_the_pause_does_not_explain() -> None:
    down = ExchangeUnavailable("HTTP 503")
    steps = [(0, on("beta", snapshot=snapshot(taken_at=at(0))))]
    # Failing on its own from 10 s, then a 60 s pause from 20 s, then failing on its own again.
    steps += [(10, on("beta", fetch_error=down, last_success_at=at(0)))]
    steps += [
        (t, on("beta", fetch_error=paused(t - 20, 80 - t), last_success_at=at(0)))
        for t in range(20, 80, 10)
    ]
    steps += [(t, on("beta", fetch_error=down, last_success_at=at(0))) for t in range(80, 120, 10)]
    results, _ = run(rules(stale_rule()), steps)
    fired = [(t, n) for (t, _), r in zip(steps, results, strict=True) for n in r.notifications]
    # 20 s unexplained before the pause, then 10 s more after it: 3 intervals at 90 s.
    assert [(t, n.kind.value) for t, n in fired] == [(90, "firing")]
    assert (
        "no fresh data for 1m (3.0 poll intervals of 10s not explained by the venue's pause of 1m)"
        in fired[0][1].text
    )


def test_without_the_venue_rule_a_pause_is_stale_data() -> None:
    steps = [(0, on("beta", snapshot=snapshot(taken_at=at(0))))]
    steps += [
        (t, on("beta", fetch_error=paused(t - 5, 600), last_success_at=at(0)))
        for t in range(10, 50, 10)
    ]
    results, _ = run(rules(stale_rule(excuse_pauses=False)), steps)
    assert sent(results) == [("stale", "firing")]
