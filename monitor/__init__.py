"""portfolio-monitor: margin and liquidation watch for Binance and Bybit futures accounts."""

__version__ = "0.1.0"
