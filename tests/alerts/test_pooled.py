"""Alert rules on pooled accounts: Portfolio Margin's own liquidation ratio, venue figures labelled."""

from __future__ import annotations

from dataclasses import replace

from monitor.domain.alerts import evaluate
from monitor.domain.model import PoolModel, Snapshot, VenueTerm
from monitor.domain.notification import Severity
from tests.alerts.builders import at, margin_rule, observe, rules, snapshot


def portfolio(ratio: float) -> Snapshot:
    snap = snapshot(ratio)
    state = replace(
        snap.state,
        model=PoolModel.PORTFOLIO,
        liquidation_ratio=1.05,
        asset="USD",
        venue_terms=(VenueTerm("margin loans (venue figure)", maintenance_margin=12.5),),
    )
    return replace(snap, state=state)


def test_portfolio_margin_is_judged_against_liquidation_at_105_percent() -> None:
    # uniMMR 1.25 reads as safe against a 120 % level written for liquidation at 100 %, but it is
    # only 119 % of what Binance's 105 % trigger needs: the emergency level fires.
    levels = ((Severity.WARNING, 3.0), (Severity.CRITICAL, 1.5), (Severity.EMERGENCY, 1.2))
    result = evaluate(rules(margin_rule(levels=levels)), {}, observe(portfolio(1.25)), at(0))
    [notification] = result.notifications
    assert notification.severity is Severity.EMERGENCY
    assert "liquidation at 105 %" in notification.text
    assert "Includes venue figures we cannot model: margin loans (venue figure) 12.5 USD" in (
        notification.text
    )


def test_a_single_asset_pool_keeps_reading_the_plain_ratio() -> None:
    result = evaluate(rules(margin_rule()), {}, observe(snapshot(1.25)), at(0))
    [notification] = result.notifications
    assert notification.severity is Severity.CRITICAL
    assert "liquidation at" not in notification.text
