"""The `plot` command's drawing (matplotlib, the optional `plot` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window or need a display

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from monitor.domain.units import format_percent
from monitor.storage.queries import AccountPoint

_LEVEL_COLOURS = {"warning": "orange", "critical": "red", "emergency": "darkred"}


@dataclass(frozen=True, slots=True)
class Series:
    """One account's points, the unit its equity is in, and the longest step that is not a gap."""

    points: list[AccountPoint]
    unit: str
    max_step: float


@dataclass(frozen=True, slots=True)
class AlertMark:
    """An alert that fired (or escalated) at `at`."""

    account: str
    at: datetime
    severity: str


def with_gaps(
    times: Sequence[datetime], values: Sequence[float | None], max_step: float
) -> tuple[list[datetime], list[float | None]]:
    """The series with a break (None) wherever two points are more than `max_step` seconds
    apart, so the daemon's downtime shows as a gap instead of a straight line across it."""
    out_times: list[datetime] = []
    out_values: list[float | None] = []
    for index, (moment, value) in enumerate(zip(times, values, strict=True)):
        if index and (moment - times[index - 1]).total_seconds() > max_step:
            out_times.append(times[index - 1] + (moment - times[index - 1]) / 2)
            out_values.append(None)
        out_times.append(moment)
        out_values.append(value)
    return out_times, out_values


def draw(
    series: dict[str, Series],
    levels: list[tuple[str, float]],
    alerts: Sequence[AlertMark],
    output: Path,
) -> list[str]:
    """Margin ratio (lowest per bucket, with alert levels and the alerts that fired) above
    equity (with its unit), one line per account; returns the time axis' labels."""
    figure, (ratio_axes, equity_axes) = plt.subplots(
        2, 1, sharex=True, figsize=(11, 7), height_ratios=(3, 2)
    )
    try:
        units = {s.unit for s in series.values()}
        for name, one in series.items():
            times = [p.at for p in one.points]
            ratios = [
                None if p.margin_ratio_min is None else p.margin_ratio_min * 100 for p in one.points
            ]
            x, y = with_gaps(times, ratios, one.max_step)
            (line,) = ratio_axes.plot(x, y, label=name, linewidth=1.2)
            label = name if len(units) == 1 else f"{name} ({one.unit})"
            x, y = with_gaps(times, [p.equity for p in one.points], one.max_step)
            equity_axes.plot(x, y, label=label, linewidth=1.2, color=line.get_color())
        for severity, level in levels:
            ratio_axes.axhline(
                level * 100,
                color=_LEVEL_COLOURS.get(severity, "grey"),
                linestyle="--",
                linewidth=1,
                label=f"{severity} {format_percent(level)}",
            )
        ratio_axes.axhline(
            100, color="black", linewidth=1, label=f"liquidation {format_percent(1.0)}"
        )
        shown: set[str] = set()
        for alert in alerts:
            if alert.account not in series:
                continue
            ratio_axes.axvline(
                alert.at,
                color=_LEVEL_COLOURS.get(alert.severity, "grey"),
                linestyle=":",
                linewidth=1.2,
                label=None if alert.severity in shown else f"{alert.severity} alert fired",
            )
            shown.add(alert.severity)
        ratio_axes.set_ylabel("margin ratio (equity / MM), %")
        ratio_axes.set_yscale("log")
        percent = FuncFormatter(lambda value, _position: format_percent(value / 100))
        ratio_axes.yaxis.set_major_formatter(percent)
        ratio_axes.yaxis.set_minor_formatter(percent)
        ratio_axes.legend(loc="upper left", fontsize="small")
        ratio_axes.grid(True, alpha=0.3)
        unit = next(iter(units)) if len(units) == 1 else "each account's asset, see legend"
        equity_axes.set_ylabel(f"equity ({unit})")
        if len(units) > 1:
            equity_axes.legend(loc="upper left", fontsize="small")
        equity_axes.grid(True, alpha=0.3)
        # Labels as precise as the span needs (seconds over a few minutes, days over weeks),
        # so no two ticks read the same.
        locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
        equity_axes.xaxis.set_major_locator(locator)
        concise = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
        # Sub-minute ticks with the whole time ("15:49:30", not a bare "30" after "15:49").
        concise.formats[5] = concise.zero_formats[5] = "%H:%M:%S"
        equity_axes.xaxis.set_major_formatter(concise)
        ratio_axes.set_title("portfolio-monitor: margin ratio and equity (UTC)")
        figure.tight_layout()
        figure.savefig(output, dpi=100)
        return [label.get_text() for label in equity_axes.get_xticklabels()]
    finally:
        plt.close(figure)
