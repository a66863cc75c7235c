"""Builds the bus the settings name: the one place that knows every bus implementation."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

from media_gateway.observability.metrics import BusMetrics
from media_gateway.pipeline.bus import Bus
from media_gateway.pipeline.inprocess_bus import InProcessBus
from media_gateway.pipeline.kafka import KafkaBus
from media_gateway.pipeline.kafka_config import KafkaConfig
from media_gateway.settings import Settings


def kafka_config(settings: Settings, *, client_id: str) -> KafkaConfig:
    password = settings.kafka_sasl_password
    return KafkaConfig(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        topic_prefix=settings.kafka_topic_prefix,
        input_partitions=settings.kafka_input_partitions,
        reply_partitions=settings.kafka_reply_partitions,
        replication_factor=settings.kafka_replication_factor,
        retention_seconds=settings.kafka_retention_seconds,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        buffer_messages=settings.kafka_buffer_messages,
        linger_ms=settings.kafka_linger_ms,
        start_timeout_seconds=settings.kafka_start_timeout_seconds,
        security_protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_username=settings.kafka_sasl_username,
        sasl_password=password.get_secret_value() if password is not None else None,
        ssl_cafile=settings.kafka_ssl_cafile,
        ssl_certfile=settings.kafka_ssl_certfile,
        ssl_keyfile=settings.kafka_ssl_keyfile,
    )


def create_bus(settings: Settings, metrics: BusMetrics, *, client_id: str) -> Bus:
    """The bus of `settings.bus`, reporting to `metrics`; `client_id` names this process to the broker
    and in the envelope of what it publishes."""
    if settings.bus == "kafka":
        return KafkaBus(kafka_config(settings, client_id=client_id), observer=metrics)
    return InProcessBus(producer_id=client_id, observer=metrics)


@contextlib.asynccontextmanager
async def running_bus(
    settings: Settings, metrics: BusMetrics, *, client_id: str, topics: Mapping[str, int]
) -> AsyncIterator[Bus]:
    """The bus of `settings`, started, with `topics` (name → partitions) created; stopped on exit."""
    bus = create_bus(settings, metrics, client_id=client_id)
    await bus.start()
    try:
        await bus.create_topics(topics)
        yield bus
    finally:
        await bus.stop()
