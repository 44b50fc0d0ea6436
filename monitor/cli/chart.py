"""The `plot` command's drawing (matplotlib, the optional `plot` extra)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window or need a display

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from monitor.storage.queries import AccountPoint

_LEVEL_COLOURS = {"warning": "orange", "critical": "red", "emergency": "darkred"}


def draw(
    series: dict[str, list[AccountPoint]], levels: list[tuple[str, float]], output: Path
) -> None:
    """Margin ratio (lowest per bucket, with alert levels) above equity, one line per account."""
    figure, (ratio_axes, equity_axes) = plt.subplots(
        2, 1, sharex=True, figsize=(11, 7), height_ratios=(3, 2)
    )
    try:
        for name, points in series.items():
            times = [p.at for p in points]
            ratios = [
                None if p.margin_ratio_min is None else p.margin_ratio_min * 100 for p in points
            ]
            ratio_axes.plot(times, ratios, label=name, linewidth=1.2)
            equity_axes.plot(times, [p.equity for p in points], label=name, linewidth=1.2)
        for severity, level in levels:
            ratio_axes.axhline(
                level * 100,
                color=_LEVEL_COLOURS.get(severity, "grey"),
                linestyle="--",
                linewidth=1,
                label=f"{severity} {level * 100:g}%",
            )
        ratio_axes.axhline(100, color="black", linewidth=1, label="liquidation 100%")
        ratio_axes.set_ylabel("margin ratio (equity / MM), %")
        ratio_axes.set_yscale("log")
        percent = FuncFormatter(lambda value, _position: f"{value:g}%")
        ratio_axes.yaxis.set_major_formatter(percent)
        ratio_axes.yaxis.set_minor_formatter(percent)
        ratio_axes.legend(loc="upper left", fontsize="small")
        ratio_axes.grid(True, alpha=0.3)
        equity_axes.set_ylabel("equity")
        equity_axes.grid(True, alpha=0.3)
        equity_axes.xaxis.set_major_formatter(
            mdates.DateFormatter("%m-%d %H:%M")  # type: ignore[no-untyped-call]
        )
        ratio_axes.set_title("portfolio-monitor: margin ratio and equity (UTC)")
        figure.autofmt_xdate()
        figure.tight_layout()
        figure.savefig(output, dpi=100)
    finally:
        plt.close(figure)
