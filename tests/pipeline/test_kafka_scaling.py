"""Two gateway processes and two worker processes on one broker and one Postgres database: sessions
spread over both gateways, turns spread over both workers, and every reply reaches its own gateway."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.fixtures.kafka import KafkaBroker
from tests.speech.audio import word_errors, words
from tests.support.deployment import MANUAL_TURNS, answered, deploy, kafka_settings, metric, say
from tests.support.processes import GatewayProcess, create_key, worker_process
from tests.support.realtime import connect

SESSIONS = 20
SENTENCE = "what time is it"


async def one_session(gateway: GatewayProcess, key: str) -> dict[str, Any]:
    async with connect(gateway.base_url, key) as client:
        session_id = (await client.recv())["session"]["id"]
        await client.send({"type": "session.update", "session": MANUAL_TURNS})
        await client.wait_for("session.updated")
        started = time.monotonic()
        await say(client, SENTENCE)
        response = await answered(client, timeout=120)
        transcript = client.of_type("conversation.item.input_audio_transcription.completed")
        return {
            "session_id": session_id,
            "status": response["status"],
            "seconds": time.monotonic() - started,
            "transcript": transcript[0]["transcript"] if transcript else "",
            "reply": response["output"][0]["content"][0].get("transcript", "") if response["output"] else "",
        }


async def test_twenty_sessions_over_two_gateways_and_two_workers(
    kafka_broker: KafkaBroker, kafka_topic_prefix: str, postgres_url: str, tmp_path: Path
) -> None:
    env, key = await deploy(
        tmp_path, "scaling", postgres_url, **kafka_settings(kafka_broker.bootstrap, kafka_topic_prefix)
    )
    workers = [worker_process(env, tmp_path) for _ in range(2)]
    gateways = [GatewayProcess(env, tmp_path, wait_path="/ready") for _ in range(2)]
    try:
        await asyncio.gather(*(process.start(120) for process in workers))
        await asyncio.gather(*(process.start() for process in gateways))
        # Two keys (two applications): the shipped policy allows 10 concurrent sessions per key.
        other_key, _ = await create_key(env, tmp_path, "scaling-2")
        keys = [key, other_key]
        results = await asyncio.gather(
            *(one_session(gateways[n % 2], keys[n // 10]) for n in range(SESSIONS))
        )
        processes = [*gateways, *workers]
        gaps = [await metric(p.base_url, "gateway_bus_sequence_gaps_total") for p in processes]
        versions = [await metric(p.base_url, "gateway_bus_unknown_version_total") for p in processes]
        undeliverable = [await metric(g.base_url, "gateway_bus_replies_undeliverable") for g in gateways]
        events = [
            await metric(g.base_url, "gateway_bus_messages_published_total", kind="event") for g in gateways
        ]
        audio = [
            await metric(g.base_url, "gateway_bus_messages_published_total", kind="audio") for g in gateways
        ]
        answered_by = [
            await metric(w.base_url, "gateway_bus_messages_published_total", kind="event") for w in workers
        ]
    finally:
        for process in [*gateways, *workers]:
            await process.stop()
    seconds = sorted(r["seconds"] for r in results)
    print(
        f"\n{SESSIONS} sessions over 2 gateways and 2 workers: statuses "
        f"{sorted({r['status'] for r in results})}, turn seconds median {seconds[len(seconds) // 2]:.2f} "
        f"max {seconds[-1]:.2f}; gateway events/audio published {events}/{audio}; "
        f"events published by the workers {answered_by}; undeliverable {undeliverable}; "
        f"sequence gaps {gaps}; unknown versions {versions}"
    )
    assert [r["status"] for r in results] == ["completed"] * SESSIONS
    assert all(word_errors(SENTENCE, r["transcript"]) / len(words(SENTENCE)) <= 0.25 for r in results)
    assert all(r["reply"] for r in results)
    assert undeliverable == [0, 0]  # each gateway got its own sessions' replies only
    assert gaps == [0, 0, 0, 0]  # per-session order held
    assert versions == [0, 0, 0, 0]
    assert all(count > 0 for count in answered_by)  # both workers answered turns
