"""The margin engine for Binance USDⓈ-M / COIN-M and Bybit linear / inverse pools (see `engine.assess`)."""

from monitor.domain.margin.engine import assess

__all__ = ["assess"]
