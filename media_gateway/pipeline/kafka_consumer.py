"""The consuming side of the Kafka bus, and the start and stop of any aiokafka client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from media_gateway.observability.logging import get_logger
from media_gateway.pipeline.bus import BusMessage, BusObserver, SequenceChecker

log = get_logger(__name__)

STOP_SECONDS: Final = 5.0


class Assignments(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.assigned = asyncio.Event()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.assigned.set()


class KafkaSubscription:
    def __init__(
        self,
        topic: str,
        consumer: AIOKafkaConsumer,
        observer: BusObserver,
        on_close: Callable[[KafkaSubscription], None],
    ) -> None:
        self.topic = topic
        self._consumer = consumer
        self._on_close = on_close
        self._checker = SequenceChecker(observer)
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
        self._on_close(self)
        await stop_client(self._consumer)


async def stop_client(client: Any) -> None:
    """Stop an aiokafka client, giving up after `STOP_SECONDS`: with the cluster gone, a consumer's stop
    retries its last offset commit and leaving the group for ever, and a process asked to stop must."""
    try:
        async with asyncio.timeout(STOP_SECONDS):
            await client.stop()
    except TimeoutError:
        log.warning("kafka.stop_abandoned", client=type(client).__name__)


async def retry_start(make: Any, timeout_seconds: float) -> Any:
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
