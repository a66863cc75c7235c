"""The Kafka fixtures start a real broker: records go through it, topics are never auto-created, a stopped
or killed broker comes back on the same port with its data, and a killed one refuses connections."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import UnknownTopicOrPartitionError

from tests.fixtures.kafka import KafkaBroker, KafkaBrokerFactory, create_topics


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


async def produce(bootstrap: str, topic: str, *values: bytes) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        return [(await producer.send_and_wait(topic, value)).offset for value in values]
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str) -> list[bytes]:
    """Every record of partition 0, from the beginning, without a consumer group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=5, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        values: list[bytes] = []
        while len(values) < end:
            batch = await asyncio.wait_for(consumer.getmany(partition, timeout_ms=1000), 10)
            values.extend(record.value for record in batch.get(partition, []) if record.value is not None)
        return values
    finally:
        await consumer.stop()


async def test_a_record_goes_through_the_session_broker(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    assert kafka_bootstrap.startswith("127.0.0.1:") or os.environ.get("KAFKA_BOOTSTRAP")
    topic = f"{kafka_topic_prefix}roundtrip"
    await create_topics(kafka_bootstrap, topic)

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"hello", key=b"session-1", headers=[("kind", b"test")])
    finally:
        await producer.stop()

    # A group member with a 2 s session: the broker's default minimum (6 s) would refuse it.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{kafka_topic_prefix}group",
        auto_offset_reset="earliest",
        session_timeout_ms=2000,
        heartbeat_interval_ms=200,
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 15)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert (record.topic, record.partition, record.offset) == (topic, sent.partition, sent.offset)
    assert (record.key, record.value, list(record.headers)) == (b"session-1", b"hello", [("kind", b"test")])


async def test_topics_are_not_auto_created(kafka_bootstrap: str, kafka_topic_prefix: str) -> None:
    topic = f"{kafka_topic_prefix}never-created"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, request_timeout_ms=1000)
    await producer.start()
    try:
        with pytest.raises(UnknownTopicOrPartitionError):
            await producer.send_and_wait(topic, b"lost")
    finally:
        await producer.stop()

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert topic not in await admin.list_topics()
    finally:
        await admin.close()


async def test_a_stopped_broker_restarts_on_its_port_with_its_data(
    kafka_broker_factory: KafkaBrokerFactory,
) -> None:
    broker = kafka_broker_factory()
    bootstrap, port = broker.bootstrap, broker.port
    await create_topics(bootstrap, "durable")
    assert await produce(bootstrap, "durable", b"before-stop") == [0]

    await broker.astop()  # SIGTERM, without blocking the loop
    assert not broker.running
    assert refuses_connections(port)

    await broker.arestart()
    assert (broker.bootstrap, broker.port) == (bootstrap, port)
    assert await produce(bootstrap, "durable", b"after-restart") == [1]
    assert await read_all(bootstrap, "durable") == [b"before-stop", b"after-restart"]


async def test_a_killed_broker_refuses_connections_and_recovers_its_data(
    kafka_broker_factory: KafkaBrokerFactory,
) -> None:
    broker = kafka_broker_factory()
    await create_topics(broker.bootstrap, "crash")
    await produce(broker.bootstrap, "crash", b"acked")
    pid = broker.pid
    assert pid is not None

    broker.kill()  # SIGKILL: no controlled shutdown
    assert not broker.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone and reaped, not a zombie
    assert refuses_connections(broker.port)
    assert refuses_connections(broker.controller_port)

    broker.start()  # waits out the dead broker's registration (3 s session)
    assert await read_all(broker.bootstrap, "crash") == [b"acked"]


def test_an_external_cluster_cannot_be_stopped() -> None:
    external = KafkaBroker(None, external_bootstrap="127.0.0.1:9")
    try:
        for action in (external.stop, external.kill, external.restart):
            with pytest.raises(RuntimeError, match="KAFKA_BOOTSTRAP is set"):
                action()
    finally:
        external.close()
