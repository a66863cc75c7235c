"""OVOS behind the gateway over Kafka, as deployed: `media-gateway serve` (no pipeline of its own), workers
from the worker distribution (OVOS speech plugins, no aiortc) answering through the test session's real
ovos-core, and the official `openai` SDK or a raw WebSocket as the client. Every event is validated against
the SDK's GA models."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.fixtures.kafka import KafkaBroker
from tests.pipeline.test_kafka_failover import owner_of_sessions
from tests.speech.audio import spoken_clock, word_errors, words
from tests.support.deployment import MANUAL_TURNS, answered, kafka_deployment, say
from tests.support.realtime import connect, sdk_spoken_turn

TRANSCRIBE = {"transcription": {"model": "gpt-4o-mini-transcribe"}}
REBALANCE_SECONDS = 8.0


def clock_in(zone: str, moments: list[datetime]) -> set[tuple[int, int]]:
    """What a spoken clock can say for these moments in `zone` (a minute either side)."""
    spread = [m + timedelta(minutes=d) for m in moments for d in (-1, 0, 1)]
    return {
        (t.astimezone(ZoneInfo(zone)).hour % 12 or 12, t.astimezone(ZoneInfo(zone)).minute) for t in spread
    }


async def ask_the_time(base_url: str, key: str, zone: str) -> tuple[str, str, list[datetime]]:
    """A spoken "what time is it" with the official SDK in a session whose time zone is `zone`
    (`tracing.metadata.timezone`): its transcript, the reply's transcript, and when it was asked."""
    before = datetime.now(ZoneInfo("UTC"))
    tracing = {"tracing": {"workflow_name": "time-zones", "metadata": {"timezone": zone}}}
    events = await sdk_spoken_turn(base_url, key, "what time is it", tracing)
    after = datetime.now(ZoneInfo("UTC"))
    (heard,) = [e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"]
    done = events[-1]
    assert done["response"]["status"] == "completed"
    reply = done["response"]["output"][0]["content"][0]["transcript"]
    return str(heard["transcript"]), str(reply), [before, after]


async def test_two_sessions_in_two_time_zones_over_kafka(
    kafka_broker: KafkaBroker, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    async with kafka_deployment(tmp_path, "zones", kafka_broker.bootstrap, kafka_topic_prefix) as deployed:
        base, key = deployed.gateway.base_url, deployed.key
        tokyo, new_york = await asyncio.gather(
            ask_the_time(base, key, "Asia/Tokyo"), ask_the_time(base, key, "America/New_York")
        )
        worker_log = deployed.workers[0].log()
    print(f"\nTokyo: {tokyo[:2]}, New York: {new_york[:2]}")
    for zone, (heard, reply, moments) in (("Asia/Tokyo", tokyo), ("America/New_York", new_york)):
        assert word_errors("what time is it", heard) == 0
        assert spoken_clock(reply) in clock_in(zone, moments), (zone, reply)
    assert '"engines": "opm"' in worker_log  # the worker spoke through OVOS plugins (its start-up log)


async def test_a_dialog_continues_on_another_worker_after_a_kill(
    kafka_broker: KafkaBroker, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    """ "ask me my name" → "What is your name?"; the worker holding the session is killed (-9); "bob" →
    "Nice to meet you, bob." from the other worker: the OVOS session travelled with the gateway's turn."""
    deployment = kafka_deployment(tmp_path, "dialog", kafka_broker.bootstrap, kafka_topic_prefix, workers=2)
    async with deployment as deployed, connect(deployed.gateway.base_url, deployed.key) as client:
        workers = deployed.workers
        await client.recv()
        await client.send({"type": "session.update", "session": MANUAL_TURNS})
        await client.wait_for("session.updated")
        owner = await owner_of_sessions(workers)
        await say(client, "ask me my name")
        question = await answered(client)
        await asyncio.sleep(1.0)  # the caller hears the question out
        await workers[owner].kill()
        killed = time.monotonic()
        # The group moves the dead worker's partitions after its session timeout (6 s by default); the
        # skill waits 15 s for its answer.
        await asyncio.sleep(REBALANCE_SECONDS)
        await say(client, "bob")
        answer = await answered(client, timeout=60)
        answered_after = time.monotonic() - killed
        transcripts = client.of_type("conversation.item.input_audio_transcription.completed")
    print(f"\nworker killed; the answer {answer['status']} {answered_after:.2f} s later")
    assert question["status"] == "completed"
    assert question["output"][0]["content"][0]["transcript"] == "What is your name?"
    assert word_errors("bob", transcripts[-1]["transcript"]) / len(words("bob")) == 0
    assert answer["status"] == "completed", answer.get("status_details")
    assert words(answer["output"][0]["content"][0]["transcript"]) == words("Nice to meet you, bob.")
