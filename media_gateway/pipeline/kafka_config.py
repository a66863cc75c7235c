"""How a process reaches Kafka: bootstrap servers, topic naming and layout, client security."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from aiokafka.helpers import create_ssl_context


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str
    client_id: str
    topic_prefix: str = "media-gateway."
    input_partitions: int = 12
    reply_partitions: int = 1
    replication_factor: int | None = None  # None: min(3, brokers in the cluster)
    retention_seconds: int = 3600
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 1000
    buffer_messages: int = 5000
    linger_ms: int = 1  # how long the producer waits to fill a batch
    start_timeout_seconds: float = 60.0
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def topic(self, logical: str) -> str:
        return self.topic_prefix + logical

    def client_options(self) -> dict[str, Any]:
        """Options every aiokafka client of this process takes (producer, consumers, admin)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = self._ssl_context()
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options

    def _ssl_context(self) -> ssl.SSLContext:
        context: ssl.SSLContext = create_ssl_context(
            cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
        )
        return context
