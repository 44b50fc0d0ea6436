"""ccxt's description of a venue, held once per class instead of once per API key.

Every ccxt instance deep-copies its class's description at construction: the REST API tree
(`api`, 224 KiB for Binance USDⓈ-M), the error-code tables (`exceptions`, `httpExceptions`),
the capability and feature tables, the signature curves. ccxt reads them after construction
and never writes them (its constructor's own adjustments are the same for every instance of
a class), so one copy can serve every account: a Binance instance weighs 0.025 MiB instead of
0.24 MiB, and each account holds two (its REST client and its private stream's ccxt.pro
instance). An instance whose copy differs from the shared one (a constructor option that
changed it) keeps its own, so sharing never changes what an instance does.
"""

from __future__ import annotations

from typing import Any

# Read-only after construction (ccxt 4.5: written only in `__init__`/`after_construct`).
# `options`, `urls`, `fees` and the market tables are not here: ccxt writes them later
# (listenKeys, time differences, sandbox URLs, loaded fees), so each instance keeps its own.
_SHARED_ATTRIBUTES = (
    "api",
    "exceptions",
    "httpExceptions",
    "has",
    "features",
    "ecdsaCurves",
    "ecdsaPrehashedAlgorithms",
    "timeframes",
    "requiredCredentials",
)


class SharedDescriptions:
    """The first instance of each ccxt class lends its description to the later ones (the
    description is kept, not the instance, which may be closed and dropped)."""

    def __init__(self) -> None:
        self._shared: dict[type, dict[str, Any]] = {}

    def share(self, exchange: Any) -> None:
        """Replace `exchange`'s description by the shared copy wherever they are equal."""
        own = vars(exchange)
        shared = self._shared.get(type(exchange))
        if shared is None:
            found = {name: own[name] for name in _SHARED_ATTRIBUTES if name in own}
            self._shared[type(exchange)] = found
            return
        for name, value in shared.items():
            if name in own and own[name] == value:
                own[name] = value
