"""Charts as inline SVG drawn on the server: no JavaScript library, works offline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape

from monitor.domain.units import format_amount, format_percent

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 70, 10, 26, 30
_LEVEL_COLOURS = {"warning": "#d08a00", "critical": "#c0392b", "emergency": "#7d0000"}


def line_chart(
    points: Sequence[tuple[datetime, float | None]],
    *,
    label: str,
    unit: str,
    gap_after: timedelta,
    levels: Sequence[tuple[str, float]] = (),
    markers: Sequence[tuple[datetime, str]] = (),
    percent: bool = False,
) -> str:
    """An SVG line of `points`; two points further apart than `gap_after` are not joined (the
    daemon was not running, or could not read the account), `levels` are dashed horizontal lines
    (alert thresholds), `markers` vertical ticks at alert events."""
    present = [(at, v) for at, v in points if v is not None]
    if len(present) < 1:
        return f'<p class="empty">no {escape(label)} data in this window</p>'
    values = [v for _, v in present] + [level for _, level in levels]
    low, high = min(values), max(values)
    if high == low:
        high, low = high + abs(high) * 0.05 + 1e-9, low - abs(low) * 0.05 - 1e-9
    start, end = present[0][0], present[-1][0]
    span = max((end - start).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return LEFT + (at - start).total_seconds() / span * (WIDTH - LEFT - RIGHT)

    def y(value: float) -> float:
        return TOP + (high - value) / (high - low) * (HEIGHT - TOP - BOTTOM)

    def text(value: float) -> str:
        return format_percent(value) if percent else format_amount(value)

    segments: list[list[str]] = []
    previous: datetime | None = None
    for at, value in points:
        if value is None:
            previous = None
            continue
        if previous is None or at - previous > gap_after:
            segments.append([])
        segments[-1].append(f"{x(at):.1f},{y(value):.1f}")
        previous = at
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)} ({escape(unit)})" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="4" y="12" class="axis unit">{escape(unit)}</text>',
    ]
    for value in (high, (high + low) / 2, low):
        parts.append(f'<text x="4" y="{y(value) + 4:.1f}" class="axis">{text(value)}</text>')
    for severity, level in levels:
        colour = _LEVEL_COLOURS.get(severity, "#888")
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(level):.1f}" y2="{y(level):.1f}" '
            f'stroke="{colour}" stroke-dasharray="4 3"><title>{escape(severity)} below '
            f"{text(level)}</title></line>"
        )
    for at, title in markers:
        if start <= at <= end:
            parts.append(
                f'<line class="marker" x1="{x(at):.1f}" x2="{x(at):.1f}" y1="{TOP}" '
                f'y2="{HEIGHT - BOTTOM}" stroke="#c0392b"><title>{escape(title)}</title></line>'
            )
    for segment in segments:
        if len(segment) == 1:
            cx, cy = segment[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="#2c6fbb"/>')
        else:
            parts.append(
                f'<polyline fill="none" stroke="#2c6fbb" stroke-width="1.5" '
                f'points="{" ".join(segment)}"/>'
            )
    for at in (start, end):
        anchor = "start" if at == start else "end"
        parts.append(
            f'<text x="{x(at):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" class="axis">'
            f"{at.strftime('%m-%d %H:%M:%S')} UTC</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
