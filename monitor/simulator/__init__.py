"""A local Binance + Bybit futures venue for the demo, tests and benchmarks.

It serves, on one `http://127.0.0.1:PORT`, the subset of Binance USDⓈ-M (`/fapi`), COIN-M (`/dapi`),
the key-permission endpoint (`/sapi/v1/account/apiRestrictions`) and Bybit v5 (`/v5`) that ccxt 4.5
calls for a read-only risk monitor, with the venues' field names, string-encoded numbers, envelopes,
HMAC-SHA256 signatures, recvWindow checks, error codes, HTTP statuses and request weights. Point a
client at it by replacing scheme and host of every API URL (ccxt `exchange.urls['api']`) with
`base_url`; the paths of the two venues do not collide.

Liquidation prices, maintenance margins and ratios in its answers come from the project's margin
engine (`monitor.domain.margin.assess`) applied to the simulator's own state, and the venue liquidates
a position when its mark crosses that price (isolated: the position and its margin are gone; cross:
every cross position of the pool is closed and the wallet keeps equity minus maintenance margin).

Programmatic use (tests, the demo)::

    async with SimulatorServer("test", clock=ManualClock()) as sim:
        info = sim.accounts["binance-oneway"]        # name, exchange, api_key, api_secret, pools
        sim.base_url                                 # "http://127.0.0.1:41234"
        sim.advance(30)                              # move a ManualClock: prices follow their paths
        sim.set_price("BTC", 50_000)                 # or pin a feed
        sim.inject_fault("rate_limit", account="binance-oneway", count=1, retry_after=5)
        sim.request_log[-1].status                   # every request: path, params, account, status, weight, fault
        sim.liquidations                             # what the venue has liquidated so far
        sim.server_time_offset = 60                  # the venue's clock runs 60 s ahead (-1021 / 10002)

A simulator in another process (`portfolio-monitor simulate`) is driven the same way over HTTP:
`POST/DELETE /_sim/faults`, `PUT /_sim/prices/{feed}`, `POST /_sim/advance`, `GET /_sim/state`
(see `monitor.simulator.control`).

Time: prices, liquidations, fault windows and rate-limit windows follow `sim.clock` (a `SystemClock`
by default, a `ScaledClock` running N times faster, or a `ManualClock` that only moves when told).
Timestamp checks and the `/time` endpoints use this machine's clock plus `server_time_offset`,
because clients sign with real time.

Faults (`inject_fault`, or `[[faults]]` in a scenario) answer for one account's API key, or every
request when `account` is None, from `start` for `duration` seconds and/or `count` requests:

| kind           | Binance                                  | Bybit                                   |
|----------------|------------------------------------------|-----------------------------------------|
| rate_limit     | HTTP 429, `Retry-After`, code -1003      | retCode 10006, `X-Bapi-Limit-*` headers |
| ip_ban         | HTTP 418, `Retry-After`, "banned until"  | HTTP 403 "access too frequent"          |
| server_error   | HTTP `status` (default 502), HTML body   | the same                                |
| timeout        | answers after `delay` real seconds       | the same                                |
| malformed_json | HTTP 200, truncated JSON                 | the same                                |
| timestamp      | HTTP 400, code -1021                     | retCode 10002                           |
| auth           | HTTP 401, code -2015                     | HTTP 401, retCode 10003                 |
| maintenance    | HTTP 503, "System is under maintenance." | HTTP 503, HTML body                     |
| busy           | HTTP 503, code -1008 (server overloaded) | retCode 10016 (internal server error)   |
| stalled_cursor | no effect                                | the last page's `nextPageCursor` addresses that page again |

Besides injected faults the venue enforces its own limits: Binance weight per IP and API family per
clock minute (`X-MBX-USED-WEIGHT-1M`; over 2400 → 429 with `Retry-After`; sending on after several
429s → 418 ban), Bybit 600 requests per 5 s per IP (403) and 50 per second per key and endpoint
(retCode 10006). Limits are scenario settings.

Scenario files (TOML or JSON; built-in: "demo" and "test" in `monitor/simulator/scenarios/`)::

    name = "mine"            # optional
    seed = 7                 # random walks are reproducible
    tick = "1s"              # step at which liquidations are checked when time moves on
    server_time_offset = 0   # seconds the venue's clock is ahead of ours

    [feeds.BTC]              # one price series; instruments on both venues follow it
    price = 60000
    volatility = "0.01%"     # standard deviation of the relative change per second

    [[moves]]                # scripted: factor 1 -> 1+change over `over`, hold, back over `recover_over`
    feeds = ["BTC"]          # or feed = "BTC"; "*" = every feed
    at = "10s"
    change = "-15%"
    over = "60s"
    hold = "10s"
    recover_over = "60s"     # omit to stay at the new level
    every = "300s"           # optional: the cycle starts again every 300 s after `at`

    [[instruments]]
    venue = "binance-usdm"   # binance-usdm | binance-coinm | bybit-linear | bybit-inverse
    symbol = "BTCUSDT"       # base/quote/settle follow the venue's naming (BTCUSD_PERP, ETHPERP, BTCUSD)
    feed = "BTC"             # default: the base coin
    tick_size = "0.1"
    qty_step = "0.001"
    contract_size = 1        # default 1; COIN-M 100 (BTC) or 10; Bybit inverse 1
    taker_fee = "0.055%"     # Bybit default (its MM includes the fee to close); Binance 0
    tiers = [{ cap = 50000, mmr = "0.4%", max_leverage = 125 }, { mmr = "0.5%" }]  # deductions follow the recursion

    [accounts.NAME]
    exchange = "binance"     # or "bybit"
    api_key = "..."          # optional: derived from seed and name
    api_secret = "..."
    position_mode = "one-way"   # or "hedge"
    margin_mode = "cross"    # Bybit: account-wide (REGULAR_MARGIN / ISOLATED_MARGIN)
    wallet = { USDT = 10000, BTC = 0.5 }   # cross wallet per asset (Binance: USDT/USDC/FDUSD/BUSD are USDⓈ-M, others COIN-M)
    permissions = { trade = false, withdraw = false, transfer = false, futures = true, read = true, ip_restrict = false }
    tiers = { ETHUSDT = [...] }            # per-user bracket table (Binance)

    [[accounts.NAME.positions]]
    symbol = "BTCUSDT"
    side = "long"
    quantity = 0.5           # base units; contracts for inverse
    entry_price = 58000
    leverage = 20
    margin_mode = "isolated" # Binance only; default cross
    isolated_margin = 1450   # default: entry value / leverage

    [[accounts.NAME.orders]] # a resting conditional order, served while the symbol is held
    symbol = "BTCUSDT"
    side = "sell"            # buy | sell
    type = "stop"            # stop | stop_limit | take_profit | trailing_stop
    trigger_price = 52000    # not for trailing stops
    quantity = 0.25          # omit: the whole position (Binance closePosition, Bybit Full TP/SL)
    reduce_only = true       # default true; false = a stop entry (a decoy: no protection)
    position_side = "long"   # hedge accounts only (required there)
    service = "algo"         # Binance: algo (openAlgoOrders) | classic (openOrders);
                             # Bybit: position (the position's TP/SL; Partial with a quantity) | conditional
    callback_rate = 1        # Binance trailing stop, %; Bybit trailing: distance = 100 (price)
    activation_price = 61000 # optional, trailing stops

    [[faults]]
    kind = "server_error"
    account = "NAME"         # omit: every request
    start = "30s"
    duration = "10s"         # and/or count = 3
    status = 503
    path = "/fapi/*"         # optional glob

    [limits]
    binance_weight_per_minute = 2400
    bybit_ip_requests_per_5s = 600
    bybit_uid_requests_per_second = 50

Simplifications: Binance single-asset mode only; each settlement asset is its own margin pool (also on
Bybit, where the unified account's USD totals are summed over the coins but coins do not collateralise
each other); orders rest and are served but never triggered or filled; no fills or funding payments.
"""

from __future__ import annotations

from monitor.ports import SystemClock
from monitor.simulator.clock import ManualClock, ScaledClock, SimClock
from monitor.simulator.faults import ActiveFault
from monitor.simulator.market import Liquidation
from monitor.simulator.scenario import Scenario, builtin_scenario_path, load_scenario
from monitor.simulator.server import AccountInfo, RequestRecord, SimulatorServer

__all__ = [
    "AccountInfo",
    "ActiveFault",
    "Liquidation",
    "ManualClock",
    "RequestRecord",
    "ScaledClock",
    "Scenario",
    "SimClock",
    "SimulatorServer",
    "SystemClock",
    "builtin_scenario_path",
    "load_scenario",
]
