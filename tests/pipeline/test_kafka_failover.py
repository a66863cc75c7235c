"""What a call over Kafka survives: a worker killed mid-turn, and the broker stopped for 10 s.

Each test has its own broker (the outage test stops it) or its own topic prefix, a gateway and
workers as separate processes, and a client on the WebSocket."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.fixtures.kafka import KafkaBroker, KafkaBrokerFactory
from tests.speech.audio import padded, spoken, word_errors, words
from tests.support.deployment import (
    MANUAL_TURNS,
    answered,
    deploy,
    kafka_deployment,
    kafka_settings,
    metric,
    ready_status,
    say,
)
from tests.support.processes import GatewayProcess, worker_process
from tests.support.realtime import connect, pcm24k

SENTENCE = "what time is it"


async def owner_of_sessions(workers: list[GatewayProcess]) -> int:
    """The index of the worker that holds the (one) live session."""
    async with asyncio.timeout(10):
        while True:
            held = [await metric(w.base_url, "gateway_worker_sessions") for w in workers]
            if sum(held) == 1:
                return held.index(1)
            await asyncio.sleep(0.1)


async def test_a_worker_killed_mid_turn(
    kafka_broker: KafkaBroker, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    deployment = kafka_deployment(tmp_path, "kill", kafka_broker.bootstrap, kafka_topic_prefix, workers=2)
    async with deployment as deployed:
        workers = deployed.workers
        async with connect(deployed.gateway.base_url, deployed.key) as client:
            await client.recv()
            await client.send({"type": "session.update", "session": MANUAL_TURNS})
            await client.wait_for("session.updated")
            owner = await owner_of_sessions(workers)
            # A long question, so the worker is still on it when it dies.
            await say(client, "please tell me a long story about the sea and the ships and the sailors")
            await client.wait_for("response.created")
            await workers[owner].kill()
            killed = time.monotonic()
            first = await answered(client, timeout=30)
            ended_after = time.monotonic() - killed
            errors = client.of_type("error")
            started = time.monotonic()
            await say(client, SENTENCE)
            second = await answered(client, timeout=60)
            second_seconds = time.monotonic() - started
            transcripts = client.of_type("conversation.item.input_audio_transcription.completed")
        survivor = workers[1 - owner]
        survivor_events = await metric(
            survivor.base_url, "gateway_bus_messages_published_total", kind="event"
        )
    print(
        f"\nkill -9 of the session's worker: the response ended {first['status']} after {ended_after:.2f} s "
        f"({[e['error'].get('code') for e in errors]}); the next turn {second['status']} in "
        f"{second_seconds:.2f} s: {transcripts[-1]['transcript']!r}; "
        f"the survivor published {survivor_events:.0f} events"
    )
    assert first["status"] in ("failed", "completed")
    if first["status"] == "failed":
        assert [e["error"]["code"] for e in errors] == [first["status_details"]["error"]["code"]]
    assert ended_after <= 10
    assert second["status"] == "completed"
    assert word_errors(SENTENCE, transcripts[-1]["transcript"]) / len(words(SENTENCE)) <= 0.25
    assert survivor_events > 0


async def test_the_broker_stopped_for_ten_seconds(
    kafka_broker_factory: KafkaBrokerFactory, tmp_path: Path
) -> None:
    broker = kafka_broker_factory()
    env, key = await deploy(tmp_path, "outage", **kafka_settings(broker.bootstrap, "outage."))
    worker = worker_process(env, tmp_path)
    gateway = GatewayProcess(env, tmp_path, wait_path="/ready")
    try:
        await worker.start(120)
        await gateway.start()
        async with connect(gateway.base_url, key) as client:
            await client.recv()
            await client.send({"type": "session.update", "session": MANUAL_TURNS})
            await client.wait_for("session.updated")
            await say(client, SENTENCE)
            assert (await answered(client))["status"] == "completed"
            events_before = await metric(
                gateway.base_url, "gateway_bus_messages_published_total", kind="event"
            )

            await broker.astop()
            stopped = time.monotonic()
            # Ten seconds of live audio (manual turns: every frame goes to the bus), and control events.
            noise = pcm24k(padded(spoken("this audio is lost"), before_ms=0, after_ms=0))
            statuses: list[int] = []
            sent_frames = clears = 0
            while time.monotonic() - stopped < 10:
                await client.append_audio(noise[:4800], 4800)  # 100 ms
                sent_frames += 5
                if sent_frames % 100 == 0:
                    await client.send({"type": "input_audio_buffer.clear"})
                    clears += 1
                    statuses.append(await ready_status(gateway.base_url))
                await asyncio.sleep(0.1)
            outage_ready = sorted(set(statuses))
            await broker.arestart()
            async with asyncio.timeout(30):
                while await ready_status(gateway.base_url) != 200:  # noqa: ASYNC110 - polls HTTP
                    await asyncio.sleep(0.2)
            back_after = time.monotonic() - stopped
            dropped = await metric(
                gateway.base_url,
                "gateway_bus_messages_dropped_total",
                kind="audio",
                reason="broker_unavailable",
            )
            await client.send({"type": "input_audio_buffer.clear"})
            await say(client, SENTENCE)
            after = await answered(client, timeout=60)
            transcripts = client.of_type("conversation.item.input_audio_transcription.completed")
            errors = client.of_type("error")
        async with asyncio.timeout(10):
            while True:  # every event the session published reached the broker
                events_after = await metric(
                    gateway.base_url, "gateway_bus_messages_published_total", kind="event"
                )
                # the clears, then clear, commit, response.create and the session.close of the hang-up
                if events_after >= events_before + clears + 4:
                    break
                await asyncio.sleep(0.2)
        worker_gaps = await metric(worker.base_url, "gateway_bus_sequence_gaps_total")
        gateway_alive = gateway.process is not None and gateway.process.returncode is None
        # With the cluster gone for good, both still stop on SIGTERM, and cleanly.
        await broker.akill()
        stopping = time.monotonic()
        exits = [await gateway.stop(), await worker.stop()]
        stop_seconds = time.monotonic() - stopping
    finally:
        await gateway.stop()
        await worker.stop()
    print(
        f"\nbroker stopped 10 s: /ready during the outage {outage_ready}, 200 again {back_after:.1f} s "
        f"after the stop; audio frames sent {sent_frames}, dropped {dropped:.0f} (broker_unavailable); "
        f"events published "
        f"{events_before:.0f} -> {events_after:.0f} ({clears} clears during the outage); "
        f"worker sequence gaps {worker_gaps:.0f}; next turn "
        f"{after['status']}: {transcripts[-1]['transcript']!r}; errors {len(errors)}; "
        f"with the broker killed, "
        f"gateway and worker exit {exits} on SIGTERM in {stop_seconds:.1f} s"
    )
    assert gateway_alive
    assert exits == [0, 0], f"exit codes {exits} after {stop_seconds:.1f} s"
    assert outage_ready == [503]
    assert 0 < dropped <= sent_frames
    assert worker_gaps == 0
    assert after["status"] == "completed"
    assert word_errors(SENTENCE, transcripts[-1]["transcript"]) / len(words(SENTENCE)) <= 0.25
