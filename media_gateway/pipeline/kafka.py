"""The Kafka bus: `pipeline.bus` semantics on Apache Kafka, with aiokafka.

**Producing.** One idempotent `acks=all` producer per process (linger `linger_ms`, 1 ms by default;
batches shared by every session). `publish` only appends to this bus's bounded buffer, so a session never
waits for a broker round trip and a slow or unreachable broker never blocks the event loop. One sender
task moves the buffer, in order, into a lane per partition; each lane sends everything waiting in it as
one batch (`send_batch`) while its previous batch is in flight, so the producer pays per batch, not per
message (aiokafka's per-message `send` cost about 40 µs of CPU per frame at 100 sessions). When the
buffer is full, events wait for room (they are never dropped); audio waits `AUDIO_WAIT_SECONDS`, then is
dropped and counted (`buffer_full`). While the broker is unreachable audio is dropped at once
(`broker_unavailable`): it would be stale by the time it arrived, and the buffer stays free for the
events. The envelope (sequence numbers) is stamped as the sender takes a message from the buffer, so a
dropped frame leaves no gap: a gap is a loss in transit.

**Consuming.** Consumers poll with `fetch_max_wait_ms=5` (Kafka's default of 500 ms would add up to
half a second to every reply). A plain subscription reads every partition of its topic from the end,
positioned before `subscribe` returns. A group subscription joins the consumer group
`<prefix><group>`, commits its offsets every second, and returns once the group assigned it its share;
a new member takes partitions over from the last committed offset.

**Health.** A metadata request every `PROBE_SECONDS` decides `ready()` and updates the lag gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from media_gateway.observability.logging import get_logger
from media_gateway.pipeline.bus import (
    AUDIO_WAIT_SECONDS,
    KIND_HEADER,
    BusObserver,
    NullObserver,
    Sequencer,
    Subscription,
)
from media_gateway.pipeline.kafka_config import KafkaConfig
from media_gateway.pipeline.kafka_consumer import Assignments, KafkaSubscription, retry_start, stop_client

log = get_logger(__name__)

PROBE_SECONDS: Final = 1.0
_TOPIC_EXISTS: Final = 36  # Kafka's TOPIC_ALREADY_EXISTS error code
_DRAIN_SECONDS: Final = 5.0
_REMEMBERED_PARTITIONS: Final = 100_000


class KafkaObserver(BusObserver, Protocol):
    def produced(self, seconds: float) -> None: ...
    def lag(self, topic: str, messages: int) -> None: ...
    def connected(self, up: bool) -> None: ...


class _NullKafkaObserver(NullObserver):
    def produced(self, seconds: float) -> None:
        pass

    def lag(self, topic: str, messages: int) -> None:
        pass

    def connected(self, up: bool) -> None:
        pass


@dataclass
class _Outgoing:
    topic: str
    key: str
    payload: bytes
    headers: Mapping[str, str]
    kind: str
    queued_at: float = field(default_factory=time.perf_counter)
    stamped: dict[str, str] | None = None  # the envelope, once the sender stamped it


@dataclass
class _Lane:
    items: deque[_Outgoing] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class KafkaBus:
    def __init__(self, config: KafkaConfig, *, observer: KafkaObserver | None = None) -> None:
        self.config = config
        self.observer: KafkaObserver = observer or _NullKafkaObserver()
        self._sequencer = Sequencer(config.client_id)
        self._producer: AIOKafkaProducer | None = None
        self._buffer: deque[_Outgoing] = deque()  # waiting for the sender, in publish order
        self._lanes: dict[tuple[str, int], _Lane] = {}  # per partition: waiting for a batch
        self._queued = 0  # in the buffer or a lane: what the bound counts
        self._has_work = asyncio.Event()
        self._has_room = asyncio.Event()
        self._subscriptions: set[KafkaSubscription] = set()
        # Partition counts are read once per topic: a topic's partitions are only ever added by an
        # operator, and a gateway restarted after that picks the new count up.
        self._partition_counts: dict[str, int] = {}
        self._partitions: dict[tuple[str, str], int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = False
        self._running = False

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._producer = await retry_start(
            lambda: AIOKafkaProducer(
                acks="all",
                enable_idempotence=True,
                linger_ms=self.config.linger_ms,
                max_batch_size=256 * 1024,
                **self.config.client_options(),
            ),
            self.config.start_timeout_seconds,
        )
        self._running = self._connected = True
        self.observer.connected(True)
        self._has_room.set()
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="kafka-sender"),
            asyncio.create_task(self._probe_loop(), name="kafka-probe"),
        ]
        log.info("kafka.started", bootstrap_servers=self.config.bootstrap_servers)

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        for subscription in list(self._subscriptions):
            await subscription.close()
        with contextlib.suppress(TimeoutError):  # give the buffer a moment to reach the broker
            async with asyncio.timeout(_DRAIN_SECONDS):
                while self._queued and self._connected:
                    self._has_room.clear()
                    await self._has_room.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_DRAIN_SECONDS):
                    await self._producer.flush()
            await stop_client(self._producer)
            self._producer = None
        self.observer.connected(False)
        log.info("kafka.stopped", unsent=self._queued)

    def ready(self) -> bool:
        return self._running and self._connected

    async def create_topics(self, partitions: Mapping[str, int]) -> None:
        admin = AIOKafkaAdminClient(**self.config.client_options())
        await admin.start()
        try:
            replication = self.config.replication_factor
            if replication is None:
                cluster = await admin.describe_cluster()
                replication = min(3, len(cluster["brokers"]))
            retention_ms = str(self.config.retention_seconds * 1000)
            topics = [
                NewTopic(
                    self.config.topic(name),
                    num_partitions=count,
                    replication_factor=replication,
                    topic_configs={"retention.ms": retention_ms, "segment.ms": retention_ms},
                )
                for name, count in partitions.items()
            ]
            response = await admin.create_topics(topics)
            for name, code, *rest in response.topic_errors:
                if code not in (0, _TOPIC_EXISTS):
                    raise KafkaError(f"cannot create topic {name}: error {code} {rest[-1] if rest else ''}")
        finally:
            await admin.close()

    # --- producing ----------------------------------------------------------------------------------

    async def publish(
        self, topic: str, key: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        if not self._running:
            raise RuntimeError("bus is not running")
        headers = headers or {}
        kind = headers.get(KIND_HEADER, "")
        if kind == "audio" and not self._connected:
            self.observer.dropped(kind, "broker_unavailable")
            return
        if self._queued >= self.config.buffer_messages and not await self._wait_for_room(kind):
            self.observer.dropped(kind, "buffer_full")
            return
        self._buffer.append(_Outgoing(topic, key, payload, headers, kind))
        self._queued += 1
        self._has_work.set()

    async def _wait_for_room(self, kind: str) -> bool:
        async def room() -> None:
            while self._queued >= self.config.buffer_messages:
                self._has_room.clear()
                await self._has_room.wait()

        if kind != "audio":
            await room()  # events wait as long as it takes
            return True
        try:
            async with asyncio.timeout(AUDIO_WAIT_SECONDS):
                await room()
        except TimeoutError:
            return False
        return True

    async def _send_loop(self) -> None:
        """Stamp the buffer's messages in order and hand each to its partition's lane."""
        handed = 0
        while True:
            if not self._buffer:
                self._has_work.clear()
                await self._has_work.wait()
                continue
            item = self._buffer[0]
            if item.stamped is None:
                item.stamped = self._sequencer.stamp(item.topic, item.key, item.headers)
            topic = self.config.topic(item.topic)
            partition = self._partitions.get((topic, item.key))  # known: no coroutine per message
            if partition is None:
                try:
                    partition = await self._partition(topic, item.key)
                except KafkaError as exc:  # no metadata for the topic yet (the cluster is unreachable)
                    log.warning("kafka.partition_unknown", topic=item.topic, error=str(exc))
                    await asyncio.sleep(0.1)
                    continue
            self._buffer.popleft()
            lane = self._lanes.get((topic, partition))
            if lane is None:
                lane = self._lanes[(topic, partition)] = _Lane()
                self._tasks.append(
                    asyncio.create_task(self._drain(topic, partition, lane), name="kafka-lane")
                )
            lane.items.append(item)
            lane.wake.set()
            handed += 1
            if handed % 500 == 0:
                await asyncio.sleep(0)  # a long backlog is moved in slices

    async def _drain(self, topic: str, partition: int, lane: _Lane) -> None:
        """One partition's sender: everything waiting goes as one batch, while the previous batch of the
        partition is in flight (aiokafka keeps one per partition), so batches grow with the load."""
        producer = self._producer
        assert producer is not None
        while True:
            if not lane.items:
                lane.wake.clear()
                await lane.wake.wait()
                continue
            batch = producer.create_batch()
            taken: list[_Outgoing] = []
            for item in lane.items:
                assert item.stamped is not None
                headers = [(name, value.encode()) for name, value in item.stamped.items()]
                if (
                    batch.append(key=item.key.encode(), value=item.payload, timestamp=None, headers=headers)
                    is None
                ):
                    break
                taken.append(item)
            if not taken:  # larger than a whole batch: it can never be sent
                item = lane.items.popleft()
                log.error("kafka.message_too_large", topic=item.topic, bytes=len(item.payload))
                self.observer.dropped(item.kind, "too_large")
                self._release(1)
                continue
            batch.close()
            try:
                delivery = await producer.send_batch(batch, topic, partition=partition)
            except KafkaError as exc:
                log.warning("kafka.send_failed", topic=topic, error=str(exc))
                await asyncio.sleep(0.1)  # then the same messages again, in a new batch
                continue
            for _ in taken:
                lane.items.popleft()
            self._release(len(taken))
            delivery.add_done_callback(lambda future, taken=taken: self._delivered(taken, future))

    def _release(self, count: int) -> None:
        self._queued -= count
        self._has_room.set()

    async def _partition(self, topic: str, key: str) -> int:
        """The partition of `key`, as Kafka's default partitioner picks it (murmur2 of the key bytes),
        remembered in `_partitions`: aiokafka computes it in Python for every message otherwise."""
        count = self._partition_counts.get(topic)
        if count is None:
            assert self._producer is not None
            count = len(await self._producer.partitions_for(topic))
            self._partition_counts[topic] = count
        partition: int = (murmur2(key.encode()) & 0x7FFFFFFF) % count
        self._partitions[(topic, key)] = partition
        if len(self._partitions) > _REMEMBERED_PARTITIONS:
            self._partitions.pop(next(iter(self._partitions)))
        return partition

    def _delivered(self, batch: list[_Outgoing], future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            error = "cancelled" if future.cancelled() else str(future.exception())
            events = [item for item in batch if item.kind != "audio"]
            for item in batch:
                if item.kind == "audio":
                    self.observer.dropped(item.kind, "delivery_failed")
            if events:  # never lose an event: they go again, ahead of what is still waiting
                log.warning("kafka.events_resent", count=len(events), error=error)
                for item in reversed(events):
                    item.stamped = None  # a new number: the old one may count as seen
                    self._buffer.appendleft(item)
                self._queued += len(events)
                self._has_work.set()
            return
        now = time.perf_counter()
        for item in batch:
            self.observer.published(item.kind)
            self.observer.produced(now - item.queued_at)

    async def _probe_loop(self) -> None:
        producer = self._producer
        assert producer is not None
        while True:
            try:
                async with asyncio.timeout(2 * PROBE_SECONDS):
                    await producer.client.fetch_all_metadata()
                up = True
            except (KafkaError, OSError, TimeoutError):
                up = False
            if up != self._connected:
                log.warning("kafka.connection", connected=up)
                self._connected = up
                self.observer.connected(up)
            for subscription in list(self._subscriptions):
                self.observer.lag(subscription.topic, subscription.lag())
            await asyncio.sleep(PROBE_SECONDS)

    # --- consuming ----------------------------------------------------------------------------------

    async def subscribe(self, topic: str, *, group: str | None = None) -> Subscription:
        listener = Assignments()
        consumer = await retry_start(
            lambda: AIOKafkaConsumer(
                group_id=self.config.topic_prefix + group if group else None,
                enable_auto_commit=group is not None,
                auto_commit_interval_ms=1000,
                auto_offset_reset="latest",
                fetch_max_wait_ms=5,
                session_timeout_ms=self.config.session_timeout_ms,
                heartbeat_interval_ms=self.config.heartbeat_interval_ms,
                **self.config.client_options(),
            ),
            self.config.start_timeout_seconds,
        )
        consumer.subscribe([self.config.topic(topic)], listener=listener)
        try:
            async with asyncio.timeout(self.config.start_timeout_seconds):
                if group is not None:
                    await listener.assigned.wait()
                else:  # no group: every partition, assigned once the topic's metadata is in
                    while not consumer.assignment():  # noqa: ASYNC110 - aiokafka signals nothing
                        await asyncio.sleep(0.01)
                for partition in consumer.assignment():
                    await consumer.position(partition)  # resolves "latest" now, not at the first fetch
        except BaseException:
            await consumer.stop()
            raise
        subscription = KafkaSubscription(topic, consumer, self.observer, self._forget)
        self._subscriptions.add(subscription)
        return subscription

    def _forget(self, subscription: KafkaSubscription) -> None:
        self._subscriptions.discard(subscription)
