"""A simulator scenario with every venue and mode the adapters support, at fixed prices."""

from __future__ import annotations

from typing import Any

BTC_TIERS = [
    {"cap": 50_000, "mmr": "0.4%", "max_leverage": 125},
    {"cap": 600_000, "mmr": "0.5%", "max_leverage": 100},
    {"cap": 3_000_000, "mmr": "0.65%", "max_leverage": 75},
    {"cap": 12_000_000, "mmr": "1%", "max_leverage": 50},
]
ETH_TIERS = [
    {"cap": 50_000, "mmr": "0.4%", "max_leverage": 100},
    {"cap": 600_000, "mmr": "0.5%", "max_leverage": 75},
]
BYBIT_TIERS = [
    {"cap": 2_000_000, "mmr": "0.5%", "max_leverage": 100},
    {"cap": 4_000_000, "mmr": "1%", "max_leverage": 50},
]
COIN_TIERS = [
    {"cap": 5, "mmr": "0.4%", "max_leverage": 125},
    {"cap": 10, "mmr": "0.5%", "max_leverage": 100},
    {"cap": 20, "mmr": "1%", "max_leverage": 50},
]

SCENARIO: dict[str, Any] = {
    "name": "adapters",
    "seed": 3,
    "feeds": {"BTC": {"price": 60_000}, "ETH": {"price": 3_000}},
    "instruments": [
        {"venue": "binance-usdm", "symbol": "BTCUSDT", "tiers": BTC_TIERS},
        {"venue": "binance-usdm", "symbol": "ETHUSDT", "tick_size": "0.01", "tiers": ETH_TIERS},
        {"venue": "binance-coinm", "symbol": "BTCUSD_PERP", "tiers": COIN_TIERS, "qty_step": "1"},
        {"venue": "bybit-linear", "symbol": "BTCUSDT", "tiers": BYBIT_TIERS},
        {"venue": "bybit-linear", "symbol": "ETHUSDT", "tick_size": "0.01", "tiers": BYBIT_TIERS},
        {"venue": "bybit-linear", "symbol": "BTCPERP", "tiers": BYBIT_TIERS},
        {
            "venue": "bybit-inverse",
            "symbol": "BTCUSD",
            "tiers": [{"cap": 150, "mmr": "0.5%", "max_leverage": 100}],
        },
    ],
    "accounts": {
        # One-way: a big cross long deep in the third bracket, an isolated short, a COIN-M long.
        "bn-oneway": {
            "exchange": "binance",
            "wallet": {"USDT": 150_000, "BTC": 2},
            "permissions": {"ip_restrict": True},
            "positions": [
                {
                    "symbol": "BTCUSDT",
                    "side": "long",
                    "quantity": 20,
                    "entry_price": 61_000,
                    "leverage": 20,
                },
                {
                    "symbol": "ETHUSDT",
                    "side": "short",
                    "quantity": 30,
                    "entry_price": 2_950,
                    "leverage": 10,
                    "margin_mode": "isolated",
                },
                {
                    "symbol": "BTCUSD_PERP",
                    "side": "long",
                    "quantity": 600,
                    "entry_price": 62_000,
                    "leverage": 20,
                },
            ],
        },
        "bn-hedge": {
            "exchange": "binance",
            "position_mode": "hedge",
            "wallet": {"USDT": 10_000},
            "permissions": {"trade": True, "withdraw": True},
            "positions": [
                {
                    "symbol": "BTCUSDT",
                    "side": "long",
                    "quantity": 2,
                    "entry_price": 59_000,
                    "leverage": 50,
                },
                {
                    "symbol": "BTCUSDT",
                    "side": "short",
                    "quantity": 1,
                    "entry_price": 61_000,
                    "leverage": 50,
                },
                {
                    "symbol": "ETHUSDT",
                    "side": "long",
                    "quantity": 5,
                    "entry_price": 3_100,
                    "leverage": 10,
                    "margin_mode": "isolated",
                },
            ],
        },
        "bn-empty": {"exchange": "binance", "wallet": {"USDT": 1_000}},
        "by-cross": {
            "exchange": "bybit",
            # UTA 1.0: the inverse contract keeps its own (contract) wallet.
            "account_mode": "unified-1.0",
            "wallet": {"USDT": 40_000, "USDC": 15_000, "BTC": 1},
            "positions": [
                {
                    "symbol": "BTCUSDT",
                    "side": "long",
                    "quantity": 3,
                    "entry_price": 61_500,
                    "leverage": 25,
                },
                {
                    "symbol": "ETHUSDT",
                    "side": "short",
                    "quantity": 40,
                    "entry_price": 2_900,
                    "leverage": 25,
                },
                {
                    "symbol": "BTCPERP",
                    "side": "long",
                    "quantity": 2,
                    "entry_price": 60_500,
                    "leverage": 20,
                },
                {
                    "symbol": "BTCUSD",
                    "side": "short",
                    "quantity": 30_000,
                    "entry_price": 59_000,
                    "leverage": 10,
                },
            ],
        },
        "by-hedge": {
            "exchange": "bybit",
            "position_mode": "hedge",
            "wallet": {"USDT": 8_000},
            "positions": [
                {
                    "symbol": "BTCUSDT",
                    "side": "long",
                    "quantity": 1.5,
                    "entry_price": 60_500,
                    "leverage": 50,
                },
                {
                    "symbol": "BTCUSDT",
                    "side": "short",
                    "quantity": 0.5,
                    "entry_price": 59_500,
                    "leverage": 50,
                },
            ],
        },
        "by-isolated": {
            "exchange": "bybit",
            "margin_mode": "isolated",
            "wallet": {"USDT": 5_000},
            "positions": [
                {
                    "symbol": "ETHUSDT",
                    "side": "long",
                    "quantity": 10,
                    "entry_price": 3_050,
                    "leverage": 10,
                },
            ],
        },
        "by-empty": {"exchange": "bybit", "wallet": {"USDT": 500}},
    },
}

# (simulator account, venue, settlement asset, [(symbol, side, margin mode, hedge)])
POOLS: list[tuple[str, str, str, list[tuple[str, str, str, bool]]]] = [
    (
        "bn-oneway",
        "binance-usdm",
        "USDT",
        [("BTCUSDT", "long", "cross", False), ("ETHUSDT", "short", "isolated", False)],
    ),
    ("bn-oneway", "binance-coinm", "BTC", [("BTCUSD_PERP", "long", "cross", False)]),
    (
        "bn-hedge",
        "binance-usdm",
        "USDT",
        [
            ("BTCUSDT", "long", "cross", True),
            ("BTCUSDT", "short", "cross", True),
            ("ETHUSDT", "long", "isolated", True),
        ],
    ),
    ("bn-empty", "binance-usdm", "USDT", []),
    # A unified cross account: whatever the entry's asset, it watches the whole pool.
    *(
        (
            "by-cross",
            "bybit-linear",
            asset,
            [
                ("BTCUSDT", "long", "cross", False),
                ("ETHUSDT", "short", "cross", False),
                ("BTCPERP", "long", "cross", False),
            ],
        )
        for asset in ("USDT", "USDC")
    ),
    ("by-cross", "bybit-inverse", "BTC", [("BTCUSD", "short", "cross", False)]),
    (
        "by-hedge",
        "bybit-linear",
        "USDT",
        [("BTCUSDT", "long", "cross", True), ("BTCUSDT", "short", "cross", True)],
    ),
    ("by-isolated", "bybit-linear", "USDT", [("ETHUSDT", "long", "isolated", False)]),
    ("by-empty", "bybit-linear", "USDT", []),
]
