"""The Kafka bus: `pipeline.bus` semantics on Apache Kafka, with aiokafka.

**Producing.** One idempotent `acks=all` producer per process (linger `linger_ms`, 1 ms by default;
batches shared by every session). `publish` only appends to this bus's bounded buffer; one sender task
hands the buffer to the producer in order, so a session never waits for a broker round trip, and a slow
or unreachable broker never blocks the event loop. When the buffer is full, events wait for room (they
are never dropped); audio waits `AUDIO_WAIT_SECONDS`, then is dropped and counted (`buffer_full`). While
the broker is unreachable audio is dropped at once (`broker_unavailable`): it would be stale by the time
it arrived, and the buffer stays free for the events. The envelope (sequence numbers) is stamped as the
sender hands a message to the producer, so a dropped frame leaves no gap: a gap is a loss in transit.

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
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from media_gateway.observability.logging import get_logger
from media_gateway.pipeline.bus import (
    AUDIO_WAIT_SECONDS,
    KIND_HEADER,
    BusMessage,
    BusObserver,
    NullObserver,
    SequenceChecker,
    Sequencer,
    Subscription,
)
from media_gateway.pipeline.kafka_config import KafkaConfig

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


class KafkaBus:
    def __init__(self, config: KafkaConfig, *, observer: KafkaObserver | None = None) -> None:
        self.config = config
        self.observer: KafkaObserver = observer or _NullKafkaObserver()
        self._sequencer = Sequencer(config.client_id)
        self._producer: AIOKafkaProducer | None = None
        self._buffer: deque[_Outgoing] = deque()
        self._has_work = asyncio.Event()
        self._has_room = asyncio.Event()
        self._subscriptions: set[_KafkaSubscription] = set()
        # Partition counts are read once per topic: a topic's partitions are only ever added by an
        # operator, and a gateway restarted after that picks the new count up.
        self._partition_counts: dict[str, int] = {}
        self._partitions: dict[tuple[str, str], int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = False
        self._running = False

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._producer = await _retry_start(
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
                while self._buffer and self._connected:
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
            await _stop_client(self._producer)
            self._producer = None
        self.observer.connected(False)
        log.info("kafka.stopped", unsent=len(self._buffer))

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
        if len(self._buffer) >= self.config.buffer_messages and not await self._wait_for_room(kind):
            self.observer.dropped(kind, "buffer_full")
            return
        self._buffer.append(_Outgoing(topic, key, payload, headers, kind))
        self._has_work.set()

    async def _wait_for_room(self, kind: str) -> bool:
        async def room() -> None:
            while len(self._buffer) >= self.config.buffer_messages:
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
        producer = self._producer
        assert producer is not None
        while True:
            if not self._buffer:
                self._has_work.clear()
                await self._has_work.wait()
                continue
            item = self._buffer[0]
            if item.stamped is None:
                item.stamped = self._sequencer.stamp(item.topic, item.key, item.headers)
            headers = item.stamped
            topic = self.config.topic(item.topic)
            try:
                delivery = await producer.send(
                    topic,
                    item.payload,
                    key=item.key.encode(),
                    partition=await self._partition(topic, item.key),
                    headers=[(name, value.encode()) for name, value in headers.items()],
                )
            except KafkaError as exc:
                log.warning("kafka.send_failed", topic=item.topic, error=str(exc))
                await asyncio.sleep(0.1)  # then the same message again
                continue
            self._buffer.popleft()
            self._has_room.set()
            delivery.add_done_callback(lambda future, item=item: self._delivered(item, future))

    async def _partition(self, topic: str, key: str) -> int:
        """The partition of `key`, as Kafka's default partitioner picks it (murmur2 of the key bytes),
        remembered: aiokafka computes it in Python for every message otherwise."""
        slot = (topic, key)
        partition = self._partitions.get(slot)
        if partition is None:
            count = self._partition_counts.get(topic)
            if count is None:
                assert self._producer is not None
                count = len(await self._producer.partitions_for(topic))
                self._partition_counts[topic] = count
            partition = (murmur2(key.encode()) & 0x7FFFFFFF) % count
            self._partitions[slot] = partition
            if len(self._partitions) > _REMEMBERED_PARTITIONS:
                self._partitions.pop(next(iter(self._partitions)))
        return partition

    def _delivered(self, item: _Outgoing, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            error = "cancelled" if future.cancelled() else str(future.exception())
            if item.kind == "audio":
                self.observer.dropped(item.kind, "delivery_failed")
            else:  # never lose an event: it goes again, ahead of what is still waiting
                log.warning("kafka.event_resent", topic=item.topic, error=error)
                item.stamped = None  # a new number: the old one may count as seen
                self._buffer.appendleft(item)
                self._has_work.set()
            return
        self.observer.published(item.kind)
        self.observer.produced(time.perf_counter() - item.queued_at)

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
        listener = _Assignments()
        consumer = await _retry_start(
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
        subscription = _KafkaSubscription(self, topic, consumer)
        self._subscriptions.add(subscription)
        return subscription

    def _forget(self, subscription: _KafkaSubscription) -> None:
        self._subscriptions.discard(subscription)


class _Assignments(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.assigned = asyncio.Event()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.assigned.set()


class _KafkaSubscription:
    def __init__(self, bus: KafkaBus, topic: str, consumer: AIOKafkaConsumer) -> None:
        self._bus = bus
        self.topic = topic
        self._consumer = consumer
        self._checker = SequenceChecker(bus.observer)
        self._next_offsets: dict[TopicPartition, int] = {}
        self._closed = False

    def __aiter__(self) -> AsyncIterator[BusMessage]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[BusMessage]:
        while not self._closed:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=500)
            except KafkaError as exc:
                log.warning("kafka.fetch_failed", topic=self.topic, error=str(exc))
                await asyncio.sleep(0.2)
                continue
            for records in batches.values():
                for record in records:
                    self._next_offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
                    headers = {name: value.decode() for name, value in record.headers or ()}
                    key = record.key.decode() if record.key else ""
                    message = BusMessage(self.topic, key, record.value or b"", headers)
                    if self._checker.accept(message):
                        yield message

    def lag(self) -> int:
        total = 0
        for partition in self._consumer.assignment():
            end = self._consumer.highwater(partition)
            if end is not None:
                total += max(0, end - self._next_offsets.get(partition, end))
        return total

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bus._forget(self)
        await _stop_client(self._consumer)


async def _stop_client(client: Any) -> None:
    """Stop an aiokafka client, giving up after `_DRAIN_SECONDS`: with the cluster gone, a consumer's stop
    retries its last offset commit and leaving the group for ever, and a process asked to stop must."""
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            await client.stop()
    except TimeoutError:
        log.warning("kafka.stop_abandoned", client=type(client).__name__)


async def _retry_start(make: Any, timeout_seconds: float) -> Any:
    """Start an aiokafka client, retrying while the cluster is unreachable (a gateway that starts
    before its broker waits for it, up to `timeout_seconds`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    delay = 0.25
    while True:
        client = make()
        try:
            await client.start()
            return client
        except (KafkaError, OSError) as exc:
            with contextlib.suppress(Exception):
                await client.stop()
            if loop.time() + delay > deadline:
                raise
            log.warning("kafka.start_retry", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
