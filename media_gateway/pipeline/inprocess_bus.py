"""The embedded bus: publish/subscribe inside one process, with the semantics of `pipeline.bus`.

Each subscription has a bounded queue. An event waits for room in every queue it goes to, however
long; an audio frame waits at most `AUDIO_WAIT_SECONDS` for all of them, then is dropped for all and
counted (`buffer_full`), so a subscriber never sees a hole that is not counted. (Dropping the oldest
message instead, as this bus once did, lost frames of long appends and, worse, `response.done`.)
Group members share a topic by key, as Kafka partitions do: a key goes to member `crc32(key) % n`.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Mapping
from types import MappingProxyType

from media_gateway.pipeline.bus import (
    AUDIO_WAIT_SECONDS,
    BusMessage,
    BusObserver,
    NullObserver,
    SequenceChecker,
    Sequencer,
    Subscription,
)

DEFAULT_QUEUE_SIZE = 1000


class _QueueSubscription:
    def __init__(self, bus: InProcessBus, topic: str, group: str | None, maxsize: int) -> None:
        self._bus = bus
        self.topic = topic
        self.group = group
        self._queue: asyncio.Queue[BusMessage | None] = asyncio.Queue(maxsize)
        self._checker = SequenceChecker(bus.observer)
        self.closed = False

    def has_room(self) -> bool:
        return self.closed or not self._queue.full()

    async def deliver(self, message: BusMessage) -> None:
        if not self.closed:
            await self._queue.put(message)

    def __aiter__(self) -> AsyncIterator[BusMessage]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[BusMessage]:
        while True:
            message = await self._queue.get()
            if message is None:
                return
            if self._checker.accept(message):
                yield message

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._bus._unsubscribe(self)
        while not self._queue.empty():  # wake publishers waiting for room, then the iterator
            self._queue.get_nowait()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)


class InProcessBus:
    def __init__(
        self,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        *,
        producer_id: str = "inprocess",
        observer: BusObserver | None = None,
    ) -> None:
        self._queue_size = queue_size
        self.observer: BusObserver = observer or NullObserver()
        self._sequencer = Sequencer(producer_id)
        self._plain: dict[str, list[_QueueSubscription]] = {}
        self._groups: dict[tuple[str, str], list[_QueueSubscription]] = {}
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        self._running = False
        members = [*self._plain.values(), *self._groups.values()]
        for subscription in [subscription for group in members for subscription in group]:
            await subscription.close()

    def ready(self) -> bool:
        return self._running

    async def create_topics(self, partitions: Mapping[str, int]) -> None:
        """Topics need no creation in-process."""

    async def publish(
        self, topic: str, key: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        if not self._running:
            raise RuntimeError("bus is not running")
        kind = (headers or {}).get("kind", "")
        targets = self._targets(topic, key)
        full = not all(target.has_room() for target in targets)
        if kind == "audio" and full and not await self._wait_for_room(targets):
            self.observer.dropped(kind, "buffer_full")
            return
        stamped = self._sequencer.stamp(topic, key, headers)
        message = BusMessage(topic, key, payload, MappingProxyType(stamped))
        for target in targets:
            await target.deliver(message)
        self.observer.published(kind)

    async def _wait_for_room(self, targets: list[_QueueSubscription]) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + AUDIO_WAIT_SECONDS
        while not all(target.has_room() for target in targets):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(remaining, 0.005))
        return True

    def _targets(self, topic: str, key: str) -> list[_QueueSubscription]:
        targets = list(self._plain.get(topic, ()))
        for (group_topic, _), members in self._groups.items():
            if group_topic == topic and members:
                targets.append(members[zlib.crc32(key.encode()) % len(members)])
        return targets

    async def subscribe(self, topic: str, *, group: str | None = None) -> Subscription:
        subscription = _QueueSubscription(self, topic, group, self._queue_size)
        if group is None:
            self._plain.setdefault(topic, []).append(subscription)
        else:
            self._groups.setdefault((topic, group), []).append(subscription)
        return subscription

    def _unsubscribe(self, subscription: _QueueSubscription) -> None:
        if subscription.group is None:
            members = self._plain.get(subscription.topic, [])
        else:
            members = self._groups.get((subscription.topic, subscription.group), [])
        with contextlib.suppress(ValueError):
            members.remove(subscription)
