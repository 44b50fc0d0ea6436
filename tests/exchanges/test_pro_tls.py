"""The ccxt.pro instances behind the websockets share the REST clients' TLS context (a
certificate store per instance cost 0.9 MiB of each account's private stream), but keep a
session of their own: each open websocket holds a connection of its session's pool."""

from __future__ import annotations

from monitor.exchanges.hub import ExchangeHub
from monitor.simulator.server import SimulatorServer
from tests.exchanges.conftest import ClientFactory
from tests.support.simulator import account_settings


async def test_websocket_instances_share_the_tls_context_not_the_session(
    sim: SimulatorServer, hub: ExchangeHub, client_for: ClientFactory
) -> None:
    rest = client_for("bn-oneway")
    settings = account_settings(sim, "bn-oneway")
    marks = hub.mark_stream(settings, heartbeat=10)
    events = hub.account_stream("bn-oneway", settings)
    instances = [marks._exchange, events._new_exchange()]
    try:
        for instance in instances:
            instance.open()
            assert instance.ssl_context is rest.exchange.ssl_context
            assert instance.session is not rest.exchange.session
    finally:
        for instance in instances:
            await instance.close()
