"""The bus between the realtime engine and the speech pipeline: the contract both buses keep.

The engine publishes session events and 16 kHz PCM frames; workers publish transcripts, text and
synthesized audio back. Messages are keyed by session id so one session's messages stay in order (on
Kafka: one partition per key). Two implementations share this interface, `InProcessBus` (the embedded
default) and `KafkaBus`, and the engine cannot tell them apart:

* **Subscriptions.** A plain subscription receives every message published to its topic after
  `subscribe` returned. Subscriptions that name a `group` share the topic: each key goes to exactly one
  member of the group (on Kafka: a consumer group; keys move when members come and go).
* **Delivery.** Events (the `event` kind) are never dropped: when the bus cannot take more, `publish`
  waits (backpressure), however long. Audio (the `audio` kind) waits at most `AUDIO_WAIT_SECONDS`,
  then is dropped and counted by reason. On Kafka `publish` returns once the message is in the
  process's bounded send buffer: it never waits for a broker round trip.
* **Envelope.** The bus stamps every message with the schema version, the publishing process and a
  per-(topic, key) sequence number; subscribers check them (`SequenceChecker`) and count gaps and
  unknown versions.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Protocol

# How long an audio frame may wait for room before it is dropped: two and a half frames. Longer would
# hold the session's input behind a stalled bus for audio that is stale by then anyway.
AUDIO_WAIT_SECONDS: Final = 0.05

SCHEMA_VERSION: Final = "1"
# One header, `<schema version>:<sequence>:<producer id>`: a header costs per message on Kafka.
ENVELOPE_HEADER: Final = "envelope"
KIND_HEADER: Final = "kind"

# Sequence state is kept for this many (topic, key) pairs, least recently used evicted first: a
# session's key is forgotten only long after it was last used.
_TRACKED_KEYS: Final = 200_000


@dataclass(frozen=True)
class BusMessage:
    topic: str
    key: str
    payload: bytes
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def kind(self) -> str:
        return self.headers.get(KIND_HEADER, "")


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[BusMessage]: ...
    async def close(self) -> None: ...


class Bus(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def ready(self) -> bool: ...
    async def create_topics(self, partitions: Mapping[str, int]) -> None:
        """Create these topics (name → partition count) if they do not exist yet."""
        ...

    async def publish(
        self, topic: str, key: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> None: ...
    async def subscribe(self, topic: str, *, group: str | None = None) -> Subscription:
        """Returns once the subscription is positioned: what is published afterwards reaches it."""
        ...


class BusObserver(Protocol):
    """What a bus reports (the Prometheus side is `observability.metrics.BusMetrics`)."""

    def published(self, kind: str) -> None: ...
    def dropped(self, kind: str, reason: str) -> None: ...
    def sequence_gap(self, missing: int) -> None: ...
    def unknown_version(self) -> None: ...


class NullObserver:
    def published(self, kind: str) -> None:
        pass

    def dropped(self, kind: str, reason: str) -> None:
        pass

    def sequence_gap(self, missing: int) -> None:
        pass

    def unknown_version(self) -> None:
        pass


class Sequencer:
    """Stamps the envelope headers of one publishing process."""

    def __init__(self, producer_id: str) -> None:
        self.producer_id = producer_id
        self._next: OrderedDict[tuple[str, str], int] = OrderedDict()

    def stamp(self, topic: str, key: str, headers: Mapping[str, str] | None) -> dict[str, str]:
        slot = (topic, key)
        number = self._next.pop(slot, 0)
        self._next[slot] = number + 1
        if len(self._next) > _TRACKED_KEYS:
            self._next.popitem(last=False)
        stamped = dict(headers or {})
        stamped[ENVELOPE_HEADER] = f"{SCHEMA_VERSION}:{number}:{self.producer_id}"
        return stamped


class SequenceChecker:
    """Checks one subscription's envelopes: per (producer, key) the numbers must count up by one.

    A gap counts the missing messages; a number at or below the last one seen is a redelivery (Kafka
    after a consumer-group rebalance) and is reported so the caller can skip it. Messages of an unknown
    schema version are refused."""

    def __init__(self, observer: BusObserver) -> None:
        self._observer = observer
        self._last: OrderedDict[tuple[str, str], int] = OrderedDict()
        self.gaps = 0
        self.redelivered = 0

    def accept(self, message: BusMessage) -> bool:
        """True if the message should be handled; False for an unknown version or a redelivery."""
        version, _, rest = message.headers.get(ENVELOPE_HEADER, "").partition(":")
        sequence, _, producer = rest.partition(":")
        if version != SCHEMA_VERSION or not sequence.isdigit():
            self._observer.unknown_version()
            return False
        number = int(sequence)
        slot = (producer, message.key)
        last = self._last.pop(slot, None)
        if last is not None and number <= last:
            self._last[slot] = last
            self.redelivered += 1
            return False
        self._last[slot] = number
        if len(self._last) > _TRACKED_KEYS:
            self._last.popitem(last=False)
        if last is not None and number > last + 1:
            self.gaps += number - last - 1
            self._observer.sequence_gap(number - last - 1)
        return True
