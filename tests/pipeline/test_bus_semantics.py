"""The bus contract under load, on both buses with their production settings: events are never lost,
every audio frame is delivered or counted as dropped, and a session's messages arrive in order.

The Kafka half runs against the real broker of the test fixtures (a private topic prefix per test).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry

from media_gateway.observability.metrics import BusMetrics
from media_gateway.pipeline.bus import Bus, Subscription
from media_gateway.pipeline.inprocess_bus import InProcessBus
from media_gateway.pipeline.kafka import KafkaBus
from media_gateway.pipeline.kafka_config import KafkaConfig
from media_gateway.pipeline.messages import FRAME_BYTES, INPUT_TOPIC, audio_headers, event_payload
from media_gateway.settings import load_settings

FRAME = b"\x01\x00" * (FRAME_BYTES // 2)


@dataclass
class Tally:
    frames: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    events: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    order_errors: int = 0
    last_frame: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, kind: str, payload: bytes, headers: dict[str, str]) -> None:
        if kind == "audio":
            number = int(headers["seq"])
            if number <= self.last_frame.get(key, -1):
                self.order_errors += 1
            self.last_frame[key] = number
            self.frames[key] += 1
        else:
            index = json.loads(payload)["index"]
            if self.events[key] and index != self.events[key][-1] + 1:
                self.order_errors += 1
            self.events[key].append(index)


@dataclass
class Harness:
    bus: Bus
    metrics: BusMetrics
    registry: CollectorRegistry

    def dropped(self) -> float:
        total = 0.0
        for metric in self.registry.collect():
            if metric.name == "gateway_bus_messages_dropped":
                total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
        return total

    def drop_reasons(self) -> dict[str, float]:
        reasons: dict[str, float] = {}
        for metric in self.registry.collect():
            if metric.name == "gateway_bus_messages_dropped":
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        reasons[sample.labels["reason"]] = sample.value
        return reasons

    def gaps(self) -> float:
        return self.registry.get_sample_value("gateway_bus_sequence_gaps_total") or 0.0


@pytest.fixture(params=["inprocess", "kafka"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    settings = load_settings(_env_file=None)  # production defaults: queue and buffer sizes
    registry = CollectorRegistry()
    metrics = BusMetrics(registry)
    bus: Bus
    if request.param == "kafka":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        prefix = request.getfixturevalue("kafka_topic_prefix")
        config = KafkaConfig(
            bootstrap_servers=bootstrap,
            client_id="bus-test",
            topic_prefix=prefix,
            buffer_messages=settings.kafka_buffer_messages,
        )
        bus = KafkaBus(config, observer=metrics)
    else:
        bus = InProcessBus(observer=metrics)
    await bus.start()
    await bus.create_topics({INPUT_TOPIC: settings.kafka_input_partitions})
    try:
        yield Harness(bus, metrics, registry)
    finally:
        await bus.stop()


async def consume(subscription: Subscription, tally: Tally) -> None:
    async for message in subscription:
        tally.add(message.key, message.kind, message.payload, dict(message.headers))


async def event(bus: Bus, key: str, index: int) -> None:
    payload, headers = event_payload("input.commit", index=index, item_id=f"item_{index}")
    await bus.publish(INPUT_TOPIC, key, payload, headers)


async def settle(tally: Tally, expected_events: int, expected_frames: int, harness: Harness) -> None:
    """Wait until everything published arrived (or was counted as dropped), at most 30 s."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            while (  # noqa: ASYNC110 - polls two counters and a metric
                sum(len(v) for v in tally.events.values()) < expected_events
                or sum(tally.frames.values()) + harness.dropped() < expected_frames
            ):
                await asyncio.sleep(0.05)


async def test_a_long_append_arrives_whole(harness: Harness) -> None:
    """60 s of audio appended as fast as the client can send it (3000 frames), then a commit."""
    bus, tally = harness.bus, Tally()
    subscription = await bus.subscribe(INPUT_TOPIC, group="workers")
    reader = asyncio.create_task(consume(subscription, tally))
    frames = 3000
    started = time.perf_counter()
    await event(bus, "sess_long", 0)
    for number in range(frames):
        await bus.publish(INPUT_TOPIC, "sess_long", FRAME, audio_headers(seq=str(number)))
    await event(bus, "sess_long", 1)
    published = time.perf_counter() - started
    await settle(tally, 2, frames, harness)
    reader.cancel()
    await subscription.close()
    delivered, dropped = tally.frames["sess_long"], harness.dropped()
    print(
        f"\n60 s append: {frames} frames published in {published * 1000:.0f} ms, "
        f"{delivered} delivered, {dropped:.0f} dropped, events {tally.events['sess_long']}"
    )
    assert tally.events["sess_long"] == [0, 1]
    assert delivered + dropped == frames
    assert delivered == frames  # a consumer that keeps up loses nothing
    assert tally.order_errors == 0
    assert harness.gaps() == 0


async def test_two_hundred_live_sessions_for_thirty_seconds(harness: Harness) -> None:
    """200 sessions x 50 frames/s for 30 s, with a control event per session every second."""
    bus, tally = harness.bus, Tally()
    subscription = await bus.subscribe(INPUT_TOPIC, group="workers")
    reader = asyncio.create_task(consume(subscription, tally))
    sessions = [f"sess_{n:03d}" for n in range(200)]
    seconds, fps = 30, 50
    loop = asyncio.get_running_loop()
    start = loop.time()
    events_sent = 0
    for tick in range(seconds * fps):
        if tick % fps == 0:
            for key in sessions:
                await event(bus, key, tick // fps)
                events_sent += 1
        for key in sessions:
            await bus.publish(INPUT_TOPIC, key, FRAME, audio_headers(seq=str(tick)))
        delay = start + (tick + 1) / fps - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    elapsed = loop.time() - start
    frames_sent = len(sessions) * seconds * fps
    await settle(tally, events_sent, frames_sent, harness)
    reader.cancel()
    await subscription.close()
    delivered, dropped = sum(tally.frames.values()), harness.dropped()
    received_events = sum(len(v) for v in tally.events.values())
    print(
        f"\n200 sessions x 50 fps x 30 s: sent {frames_sent} frames in {elapsed:.1f} s, "
        f"delivered {delivered}, dropped {dropped:.0f}; "
        f"events sent {events_sent}, received {received_events}, "
        f"order errors {tally.order_errors}, sequence gaps {harness.gaps():.0f}, "
        f"drops by reason {harness.drop_reasons()}"
    )
    assert received_events == events_sent
    assert all(tally.events[key] == list(range(seconds)) for key in sessions)
    assert delivered + dropped == frames_sent
    assert tally.order_errors == 0
    assert harness.gaps() == 0
