"""The bus between the realtime engine and the speech pipeline.

The engine publishes session events and 16 kHz PCM frames; workers publish transcripts, text and
synthesized audio back. Messages are keyed by session id so one session's messages stay in order
(on Kafka: one partition per key). Two implementations share this interface: `InProcessBus` (the
embedded default, below) and a Kafka bus (added with the worker).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol


@dataclass(frozen=True)
class BusMessage:
    topic: str
    key: str
    payload: bytes
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[BusMessage]: ...
    async def close(self) -> None: ...


class Bus(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def ready(self) -> bool: ...
    async def publish(
        self, topic: str, key: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> None: ...
    def subscribe(self, topic: str) -> Subscription: ...


class _QueueSubscription:
    """One subscriber's bounded queue. When it is full, publishers wait for room (backpressure), as a
    Kafka producer waits when its buffer is full: nothing already published is dropped, control events
    least of all. (Dropping the oldest message instead lost frames of long appends and, worse,
    `response.done` events.)"""

    def __init__(self, bus: InProcessBus, topic: str, maxsize: int) -> None:
        self._bus = bus
        self.topic = topic
        self.queue: asyncio.Queue[BusMessage | None] = asyncio.Queue(maxsize)
        self._closed = False

    async def deliver(self, message: BusMessage) -> None:
        if not self._closed:
            await self.queue.put(message)

    def __aiter__(self) -> AsyncIterator[BusMessage]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[BusMessage]:
        while True:
            message = await self.queue.get()
            if message is None:
                return
            yield message

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bus._unsubscribe(self)
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


class InProcessBus:
    """Fan-out publish/subscribe inside one process, with the same semantics the Kafka bus offers
    per key: messages of one key reach each subscriber in publish order."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._queue_size = queue_size
        self._subscribers: dict[str, set[_QueueSubscription]] = {}
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        self._running = False
        for subscribers in list(self._subscribers.values()):
            for subscription in list(subscribers):
                await subscription.close()

    def ready(self) -> bool:
        return self._running

    async def publish(
        self, topic: str, key: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        if not self._running:
            raise RuntimeError("bus is not running")
        message = BusMessage(topic, key, payload, MappingProxyType(dict(headers or {})))
        for subscription in tuple(self._subscribers.get(topic, ())):
            await subscription.deliver(message)

    def subscribe(self, topic: str) -> Subscription:
        subscription = _QueueSubscription(self, topic, self._queue_size)
        self._subscribers.setdefault(topic, set()).add(subscription)
        return subscription

    def _unsubscribe(self, subscription: _QueueSubscription) -> None:
        subscribers = self._subscribers.get(subscription.topic)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.topic]
