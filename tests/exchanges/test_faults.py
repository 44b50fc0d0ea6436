"""What the user sees when the venue misbehaves: a retry that succeeds, or after the retry budget a
clear error; bans respected for every account behind the same address; never a half-filled state."""

from __future__ import annotations

import asyncio
import time

import pytest

from monitor.domain.errors import (
    ExchangeAuthError,
    ExchangeUnavailable,
    PermanentError,
    RetryableError,
)
from monitor.simulator.server import SimulatorServer
from tests.exchanges.conftest import ClientFactory

BINANCE_PRIVATE = "/fapi/v3/*"


async def settle(kind: str) -> None:
    """The simulator logs a delayed answer only once it is sent, after the client gave up on it."""
    if kind == "timeout":
        await asyncio.sleep(0.5)


def requests_to(sim: SimulatorServer, pattern: str) -> int:
    return sum(1 for record in sim.request_log if record.path.startswith(pattern))


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("server_error", {"status": 502}),
        ("malformed_json", {}),
        ("timeout", {"delay": 1.3}),
        ("maintenance", {}),
        ("rate_limit", {"retry_after": 1}),
        # -1008 server busy: ccxt maps Binance codes by host, so behind base_url it needs our help.
        ("busy", {}),
    ],
)
async def test_one_failure_is_retried_within_the_fetch(
    sim: SimulatorServer, client_for: ClientFactory, kind: str, extra: dict[str, float]
) -> None:
    sim.inject_fault(kind, account="bn-oneway", path="/fapi/v3/positionRisk", count=1, **extra)
    state = await client_for("bn-oneway").fetch_account()
    assert {p.symbol for p in state.positions} == {"BTCUSDT", "ETHUSDT"}
    await settle(kind)
    assert requests_to(sim, "/fapi/v3/positionRisk") == 2


@pytest.mark.parametrize(
    ("kind", "extra", "message"),
    [
        ("server_error", {"status": 503}, "exchange unavailable"),
        ("malformed_json", {}, "malformed"),
        ("timeout", {"delay": 1.3}, "timed out"),
        ("maintenance", {}, "maintenance"),
    ],
)
async def test_persistent_failure_gives_a_clear_retryable_error(
    sim: SimulatorServer,
    client_for: ClientFactory,
    kind: str,
    extra: dict[str, float],
    message: str,
) -> None:
    sim.inject_fault(kind, account="bn-oneway", path="/fapi/v3/positionRisk", **extra)
    with pytest.raises(ExchangeUnavailable) as caught:
        await client_for("bn-oneway").fetch_account()
    assert isinstance(caught.value, RetryableError)
    assert "binance-usdm bn-oneway: positions" in str(caught.value)
    assert message in str(caught.value)
    await settle(kind)
    assert requests_to(sim, "/fapi/v3/positionRisk") == 3


async def test_a_failed_part_never_yields_an_empty_position_list(
    sim: SimulatorServer, client_for: ClientFactory
) -> None:
    # The account endpoint answers; only the positions fail: the whole fetch must fail.
    sim.inject_fault("server_error", account="by-cross", path="/v5/position/list", status=500)
    client = client_for("by-cross")
    with pytest.raises(ExchangeUnavailable):
        await client.fetch_account()
    sim.clear_faults()
    # The unified pool: the USDT and the USDC contracts.
    assert len((await client.fetch_account()).positions) == 3


@pytest.mark.parametrize(
    ("account", "venue", "asset", "path"),
    [
        ("by-cross", "bybit-linear", "USDT", "/v5/position/list"),
        # ccxt knows -1008 only for USDⓈ-M; on COIN-M it is a plain ExchangeError.
        ("bn-oneway", "binance-coinm", "BTC", "/dapi/v1/positionRisk"),
    ],
)
async def test_server_busy_is_retried(
    sim: SimulatorServer, client_for: ClientFactory, account: str, venue: str, asset: str, path: str
) -> None:
    sim.inject_fault("busy", account=account, path=path, count=1)
    assert (await client_for(account, venue, asset).fetch_account()).positions
    # A unified Bybit pool reads the USDT and the USDC positions: one of them is retried.
    assert requests_to(sim, path) == (3 if account == "by-cross" else 2)


async def test_a_bybit_cursor_that_addresses_its_own_page_ends_the_list(
    sim: SimulatorServer, client_for: ClientFactory
) -> None:
    # Asking for that cursor returns the same rows and the same cursor, for ever.
    sim.inject_fault("stalled_cursor", account="by-cross", path="/v5/position/list")
    state = await client_for("by-cross").fetch_account()
    assert sorted(p.symbol for p in state.positions) == ["BTCPERP", "BTCUSDT", "ETHUSDT"]
    # USDT and USDC positions: each list asked once more for its stalled cursor.
    assert requests_to(sim, "/v5/position/list") == 4


async def test_malformed_bybit_answer_retried(
    sim: SimulatorServer, client_for: ClientFactory
) -> None:
    sim.inject_fault(
        "malformed_json", account="by-cross", path="/v5/account/wallet-balance", count=2
    )
    state = await client_for("by-cross").fetch_account()
    # The unified wallet in USD: 40,000 USDT + 15,000 USDC (UTA 1.0 keeps BTC for the inverse).
    assert state.wallet_balance == 55_000


@pytest.mark.parametrize(
    ("account", "time_path"), [("bn-oneway", "/fapi/v1/time"), ("by-cross", "/v5/market/time")]
)
async def test_timestamp_error_resyncs_the_clock_and_succeeds(
    sim: SimulatorServer, client_for: ClientFactory, account: str, time_path: str
) -> None:
    sim.inject_fault("timestamp", account=account, count=1)
    state = await client_for(account).fetch_account()
    assert state.positions
    assert requests_to(sim, time_path) == 1


@pytest.mark.parametrize(("account", "code"), [("bn-oneway", "-2015"), ("by-cross", "10003")])
async def test_auth_error_is_permanent_and_not_retried(
    sim: SimulatorServer, client_for: ClientFactory, account: str, code: str
) -> None:
    sim.inject_fault("auth", account=account)
    before = len(sim.request_log)
    with pytest.raises(ExchangeAuthError) as caught:
        await client_for(account).fetch_account()
    assert isinstance(caught.value, PermanentError)
    assert "rejected the API key" in str(caught.value)
    assert code in str(caught.value)
    keys = sim.accounts[account]
    assert keys.api_key not in str(caught.value)
    assert keys.api_secret not in str(caught.value)
    private = [r for r in list(sim.request_log)[before:] if r.account == account]
    # Concurrent parts of one fetch each fail once; none is retried.
    assert 1 <= len(private) <= 3


async def test_wrong_secret_is_an_auth_error(client_for: ClientFactory) -> None:
    with pytest.raises(ExchangeAuthError):
        await client_for("bn-oneway", api_secret="not-the-secret").fetch_account()


async def test_a_corrected_secret_takes_effect_for_the_same_key(
    sim: SimulatorServer, client_for: ClientFactory
) -> None:
    # What a reload does after the trader fixes a mistyped secret: new client, then the old closes.
    wrong = client_for("bn-oneway", api_secret="not-the-secret")
    with pytest.raises(ExchangeAuthError):
        await wrong.fetch_account()
    fixed = client_for("bn-oneway")
    await wrong.close()
    assert (await fixed.fetch_account()).positions
    assert fixed.exchange is not wrong.exchange


@pytest.mark.parametrize("kind", ["ip_ban", "rate_limit"])
async def test_long_ban_is_respected_by_every_account_on_the_venue(
    sim: SimulatorServer, client_for: ClientFactory, kind: str
) -> None:
    sim.inject_fault(kind, account="bn-oneway", path="/fapi/v3/account", retry_after=120, count=1)
    with pytest.raises(ExchangeUnavailable) as caught:
        await client_for("bn-oneway").fetch_account()
    assert caught.value.retry_after == pytest.approx(120, abs=2)
    sent = len(sim.request_log)
    started = time.monotonic()
    with pytest.raises(ExchangeUnavailable, match="banned"):
        await client_for("bn-hedge").fetch_account()
    assert len(sim.request_log) == sent, "a request went out during the ban window"
    assert time.monotonic() - started < 0.5


async def test_bybit_ip_ban_blocks_the_address(
    sim: SimulatorServer, client_for: ClientFactory
) -> None:
    sim.inject_fault("ip_ban", account="by-cross", path="/v5/position/list", count=1)
    with pytest.raises(ExchangeUnavailable) as caught:
        await client_for("by-cross").fetch_account()
    assert caught.value.retry_after is not None
    assert caught.value.retry_after >= 30
    sent = len(sim.request_log)
    with pytest.raises(ExchangeUnavailable):
        await client_for("by-hedge").fetch_account()
    assert len(sim.request_log) == sent


async def test_bybit_account_rate_limit_spares_other_accounts(
    sim: SimulatorServer, client_for: ClientFactory
) -> None:
    sim.inject_fault("rate_limit", account="by-cross", retry_after=120)
    with pytest.raises(ExchangeUnavailable):
        await client_for("by-cross").fetch_account()
    assert (await client_for("by-hedge").fetch_account()).positions


async def test_unreachable_venue(client_for: ClientFactory, sim: SimulatorServer) -> None:
    client = client_for("bn-oneway")
    await sim.stop()
    with pytest.raises(ExchangeUnavailable, match="exchange unavailable"):
        await client.fetch_account()


async def test_malformed_market_list_is_retried_not_taken_as_no_markets(
    sim: SimulatorServer, client_for: ClientFactory
) -> None:
    # ccxt turns a truncated exchangeInfo into an empty market list without raising.
    sim.inject_fault("malformed_json", path="/dapi/v1/exchangeInfo", count=1)
    state = await client_for("bn-oneway", "binance-coinm", "BTC").fetch_account()
    assert state.positions[0].contract_size == 100
    sim.inject_fault("malformed_json", path="/v5/market/instruments-info")
    with pytest.raises(ExchangeUnavailable, match="empty or malformed market list"):
        await client_for("by-cross", "bybit-inverse", "BTC").fetch_account()
