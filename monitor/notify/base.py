"""What every sink shares: the message in plain words and the machine-readable payload."""

from __future__ import annotations

from typing import Any

from monitor.domain.notification import Notification, NotificationKind, Severity
from monitor.domain.units import format_amount, format_percent, format_price


def _number(facts: dict[str, str | float | None], key: str) -> float | None:
    value = facts.get(key)
    return float(value) if isinstance(value, int | float) else None


def fact_lines(notification: Notification) -> list[str]:
    """The numbers behind an alert, one plain sentence each; facts that are absent are left out."""
    facts = notification.facts
    lines = []
    ratio = _number(facts, "margin_ratio")
    exchange_ratio = _number(facts, "exchange_margin_ratio")
    if ratio is not None:
        line = f"Margin ratio (equity / maintenance margin): {format_percent(ratio, against=[1.0])}, liquidation at 100 %"
        if exchange_ratio is not None:
            line += f"; the exchange shows {format_percent(exchange_ratio, against=[1.0])} (100 % = liquidation)"
        lines.append(line)
    elif exchange_ratio is not None:
        lines.append(
            f"Exchange margin ratio: {format_percent(exchange_ratio, against=[1.0])} (100 % = liquidation)"
        )
    price = _number(facts, "nearest_liquidation_price")
    if price is not None:
        symbol = facts.get("nearest_liquidation_symbol") or "the nearest position"
        line = f"Nearest liquidation: {symbol} at {format_price(price)}"
        distance = _number(facts, "distance_to_liquidation")
        if distance is not None:
            line += f", {format_percent(distance)} away from the mark price"
        lines.append(line)
    move = _number(facts, "account_liquidation_move")
    if move is not None:
        direction = "fall" if move < 0 else "rise"
        lines.append(
            f"The whole account is liquidated if all prices {direction} {format_percent(abs(move))} together"
        )
    equity = _number(facts, "equity")
    if equity is not None:
        asset = facts.get("asset")
        lines.append(f"Equity: {format_amount(equity)}{f' {asset}' if asset else ''}")
    return lines


def short_figures(notification: Notification) -> list[str]:
    """The essential numbers in a few words each, for one-line messages (the log)."""
    facts = notification.facts
    figures = []
    ratio = _number(facts, "margin_ratio")
    exchange_ratio = _number(facts, "exchange_margin_ratio")
    if ratio is not None:
        figures.append(
            f"ratio {format_percent(ratio)}"
            + (
                f" (exchange {format_percent(exchange_ratio)})"
                if exchange_ratio is not None
                else ""
            )
        )
    price = _number(facts, "nearest_liquidation_price")
    if price is not None:
        symbol = facts.get("nearest_liquidation_symbol") or "nearest"
        distance = _number(facts, "distance_to_liquidation")
        away = f" ({format_percent(distance)} away)" if distance is not None else ""
        figures.append(f"liq {symbol} {format_price(price)}{away}")
    move = _number(facts, "account_liquidation_move")
    if move is not None:
        figures.append(f"account move {format_percent(move, signed=True)}")
    equity = _number(facts, "equity")
    if equity is not None:
        asset = facts.get("asset")
        figures.append(f"equity {format_amount(equity)}{f' {asset}' if asset else ''}")
    return figures


def plain_text(notification: Notification, *, with_title: bool = True) -> str:
    """The whole message as plain text: title, explanation, then the numbers."""
    parts = [notification.title] if with_title else []
    if notification.text:
        parts.append(notification.text)
    facts = fact_lines(notification)
    if facts:
        parts.append("\n".join(facts))
    return "\n\n".join(parts)


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, marked with an ellipsis when cut (chat APIs reject longer ones)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def payload(notification: Notification) -> dict[str, Any]:
    """The notification as JSON-ready data; `id` lets receivers drop the duplicates that
    at-least-once delivery may produce."""
    return {
        "id": notification.id,
        "event": notification.kind.value,
        "severity": notification.severity.value,
        "account": notification.account,
        "rule": notification.rule,
        "title": notification.title,
        "message": notification.text,
        "ts": notification.created_at.isoformat(),
        "facts": dict(notification.facts),
    }


def is_good_news(notification: Notification) -> bool:
    """Resolved notices and tests: sinks send them quietly, without an alarm sound or priority."""
    return notification.kind in (NotificationKind.RESOLVED, NotificationKind.TEST)


SEVERITY_EMOJI = {
    Severity.INFO: "🔔",
    Severity.WARNING: "⚠️",
    Severity.CRITICAL: "🚨",
    Severity.EMERGENCY: "🆘",
}


def headline(notification: Notification) -> str:
    """The title with a severity marker, for chat sinks that have no separate title field."""
    marker = (
        "✅"
        if notification.kind is NotificationKind.RESOLVED
        else SEVERITY_EMOJI[notification.severity]
    )
    return f"{marker} {notification.title}"
