"""The two ways traders read how close a pool is to liquidation."""

from __future__ import annotations

import math


def ratios(equity: float, maintenance: float) -> tuple[float | None, float | None]:
    """(equity / maintenance margin, maintenance margin / equity): "keep it above 200 %" and the
    exchanges' own ratio (100 % = liquidation). Both None without maintenance margin, the second
    also when equity is <= 0. A quotient too large for a float (dust against a huge figure) is
    None too."""
    if maintenance <= 0.0:
        return None, None
    ratio = equity / maintenance
    exchange = maintenance / equity if equity > 0.0 else None
    return (
        ratio if math.isfinite(ratio) else None,
        exchange if exchange is not None and math.isfinite(exchange) else None,
    )
