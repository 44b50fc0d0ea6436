"""A test-side MQTT subscriber: what a Home Assistant instance would see on the broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt

from tests.support.mosquitto import Mosquitto


@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


async def collect(
    broker: Mosquitto,
    topics: list[str],
    *,
    until: Callable[[list[Seen]], bool] | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 - one bound for the whole subscription
    quiet: float = 0.3,
    subscribed: asyncio.Event | None = None,
) -> list[Seen]:
    """Subscribe and gather messages until `until(messages)` holds, or `quiet` s pass with no
    message (when `until` is None), or `timeout`. `subscribed` is set once the broker
    acknowledged every subscription."""
    seen: list[Seen] = []
    async with aiomqtt.Client(broker.host, broker.port) as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        if subscribed is not None:
            subscribed.set()
        try:
            async with asyncio.timeout(timeout):
                while until is None or not until(seen):
                    try:
                        message = await asyncio.wait_for(
                            anext(client.messages), quiet if until is None else timeout
                        )
                    except TimeoutError:
                        break
                    seen.append(
                        Seen(
                            str(message.topic), bytes(message.payload or b""), bool(message.retain)
                        )
                    )
        except TimeoutError:
            pass
    return seen


def latest(seen: list[Seen], topic: str) -> Seen | None:
    """The last message seen on `topic`."""
    matching = [message for message in seen if message.topic == topic]
    return matching[-1] if matching else None


@contextlib.asynccontextmanager
async def relayed(
    broker: Mosquitto,
    topics: list[str],
    *,
    until: Callable[[list[Seen]], bool],
    timeout: float = 5.0,  # noqa: ASYNC109 - one bound for the whole subscription
) -> AsyncIterator[list[Seen]]:
    """Subscribe to `topics`, run the block (which publishes), then wait until the broker has
    relayed what makes `until(messages)` hold; the yielded list holds those messages after the
    block. AssertionError when they do not arrive within `timeout`."""
    subscribed = asyncio.Event()
    listener = asyncio.create_task(
        collect(broker, topics, until=until, timeout=timeout, subscribed=subscribed)
    )
    messages: list[Seen] = []
    waiter = asyncio.create_task(subscribed.wait())
    try:
        await asyncio.wait([listener, waiter], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if listener.done():
            listener.result()  # a failed subscription raises here
        assert subscribed.is_set(), f"could not subscribe to {topics} within {timeout}s"
        yield messages
        messages.extend(await listener)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    assert until(messages), f"not relayed within {timeout}s on {topics}: {messages}"
