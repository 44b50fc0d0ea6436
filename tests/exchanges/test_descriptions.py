"""Accounts of one venue share ccxt's description of it (the API tree, error tables, capability
tables: 0.2 MiB an instance), and only that: what ccxt writes at run time stays per account."""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest

from monitor.domain.errors import ExchangeAuthError
from monitor.exchanges.descriptions import SharedDescriptions
from monitor.exchanges.hub import ExchangeHub
from monitor.simulator.server import SimulatorServer
from tests.exchanges.conftest import ClientFactory
from tests.support.simulator import account_settings


async def test_accounts_share_the_description_and_keep_their_own_state(
    client_for: ClientFactory,
) -> None:
    oneway, hedge = client_for("bn-oneway"), client_for("bn-hedge")
    assert oneway.exchange is not hedge.exchange
    for name in ("api", "exceptions", "has", "features"):
        assert getattr(oneway.exchange, name) is getattr(hedge.exchange, name), name
    # ccxt writes options (listenKeys, the clock offset) and URLs at run time: never shared.
    for name in ("options", "urls", "fees"):
        assert getattr(oneway.exchange, name) is not getattr(hedge.exchange, name), name
    assert oneway.exchange.has["fetchCurrencies"] is False  # the hub's own adjustment is kept
    # Both still read their accounts, and a venue error is still translated by the shared table.
    assert (await oneway.fetch_account()).positions
    assert (await hedge.fetch_account()).positions
    wrong = client_for("bn-oneway", api_secret="not-the-secret")
    assert wrong.exchange.exceptions is oneway.exchange.exceptions
    with pytest.raises(ExchangeAuthError):
        await wrong.fetch_account()


async def test_private_stream_instances_share_it_too(
    sim: SimulatorServer, hub: ExchangeHub
) -> None:
    stream = hub.account_stream("bn-oneway", account_settings(sim, "bn-oneway"))
    first, second = stream._new_exchange(), stream._new_exchange()
    try:
        assert first.api is second.api
        assert first.options is not second.options
    finally:
        await first.close()
        await second.close()


async def test_an_instance_whose_description_differs_keeps_its_own() -> None:
    descriptions = SharedDescriptions()
    plain = ccxt.binanceusdm({})
    custom = ccxt.binanceusdm({"exceptions": {"exact": {"-9999": ccxt.InsufficientFunds}}})
    descriptions.share(plain)
    descriptions.share(custom)
    try:
        assert custom.exceptions is not plain.exceptions
        assert custom.exceptions["exact"]["-9999"] is ccxt.InsufficientFunds
        assert "-9999" not in plain.exceptions["exact"]
        assert custom.api is plain.api  # what is equal is still shared
    finally:
        await plain.close()
        await custom.close()
