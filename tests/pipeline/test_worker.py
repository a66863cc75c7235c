"""Gateways and `media-gateway worker` processes over a real Kafka broker, driven as users drive them:
the official `openai` SDK on the WebSocket, an aiortc peer on WebRTC. Every process is a separate OS
process started with the operator's commands."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fixtures.kafka import KafkaBroker
from tests.speech.audio import padded, spoken, word_errors, words
from tests.support.processes import GatewayProcess, create_key, gateway_env, run_command, worker_process
from tests.support.realtime import sdk_spoken_turn
from tests.webrtc.client import CallClient

SENTENCE = "what time is it"
TRANSCRIBE = {"transcription": {"model": "gpt-4o-mini-transcribe"}}


@dataclass
class Deployment:
    gateway: GatewayProcess
    key: str
    workers: list[GatewayProcess]
    env: dict[str, str]
    cwd: Path


async def deploy(tmp: Path, name: str, **settings: str) -> tuple[dict[str, str], str]:
    env = gateway_env(f"sqlite+aiosqlite:///{tmp / (name + '.db')}", **settings)
    code, _, err = await run_command(["migrate"], env, tmp)
    assert code == 0, err
    key, _ = await create_key(env, tmp, name)
    return env, key


@pytest.fixture(scope="module")
async def embedded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    """The embedded default: one `media-gateway serve`, in-process bus and pipeline."""
    tmp = tmp_path_factory.mktemp("embedded")
    env, key = await deploy(tmp, "embedded", webrtc_include_loopback="true")
    gateway = GatewayProcess(env, tmp, wait_path="/ready")
    await gateway.start()
    try:
        yield Deployment(gateway, key, [], env, tmp)
    finally:
        await gateway.stop()


@pytest.fixture(scope="module")
async def over_kafka(
    tmp_path_factory: pytest.TempPathFactory, kafka_broker: KafkaBroker
) -> AsyncIterator[Deployment]:
    """One gateway and one worker on the Kafka bus, in separate processes."""
    tmp = tmp_path_factory.mktemp("kafka")
    prefix = f"e2e{tmp.name[-6:].replace('-', '')}."
    env, key = await deploy(
        tmp,
        "kafka",
        bus="kafka",
        speech_pipeline="none",
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        kafka_topic_prefix=prefix,
        webrtc_include_loopback="true",
    )
    worker = worker_process(env, tmp)
    gateway = GatewayProcess(env, tmp, wait_path="/ready")
    try:  # a process that failed to start is stopped too: none outlives the test
        await worker.start()
        await gateway.start()
        yield Deployment(gateway, key, [worker], env, tmp)
    finally:
        await gateway.stop()
        await worker.stop()


async def sdk_turn(deployment: Deployment) -> list[dict[str, Any]]:
    """A spoken turn with the official SDK, pointed at the gateway by URL only; every event it got."""
    return await sdk_spoken_turn(deployment.gateway.base_url, deployment.key, SENTENCE)


async def webrtc_turn(deployment: Deployment) -> list[dict[str, Any]]:
    """A spoken turn from an aiortc peer: speech on the track, events on `oai-events`."""
    client = CallClient()
    try:
        await client.connect(deployment.gateway.base_url, deployment.key)
        await client.wait_for("session.created")
        client.send(
            {"type": "session.update", "session": {"type": "realtime", "audio": {"input": TRANSCRIBE}}}
        )
        await client.wait_for("session.updated")
        client.track.say(padded(spoken(SENTENCE)))
        await client.wait_for("response.done", timeout=60)
        await client.wait_for("output_audio_buffer.stopped", timeout=30)
        return list(client.events)
    finally:
        await client.close()


def control_sequence(events: list[dict[str, Any]]) -> list[str]:
    """The event types in order, less those whose place depends on timing rather than on the bus: deltas
    (how many a reply takes, how they interleave) and, on WebRTC, when the track starts and stops playing
    relative to the pipeline finishing (their own order is checked apart)."""
    return [
        event["type"]
        for event in events
        if not event["type"].endswith(".delta") and not event["type"].startswith("output_audio_buffer.")
    ]


def playout_sequence(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events if event["type"].startswith("output_audio_buffer.")]


def transcript_of(events: list[dict[str, Any]]) -> str:
    (completed,) = [e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"]
    return str(completed["transcript"])


def reply_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    done = [e for e in events if e["type"] == "response.done"][-1]
    return dict(done["response"])


@pytest.mark.parametrize("turn", [sdk_turn, webrtc_turn], ids=["websocket-openai-sdk", "webrtc-aiortc"])
async def test_a_spoken_turn_over_kafka_matches_the_embedded_default(
    turn: Any, embedded: Deployment, over_kafka: Deployment
) -> None:
    local = await turn(embedded)
    remote = await turn(over_kafka)
    print(
        f"\nembedded: {transcript_of(local)!r}, {len(local)} events; "
        f"over Kafka: {transcript_of(remote)!r}, {len(remote)} events"
    )
    assert control_sequence(remote) == control_sequence(local)
    assert playout_sequence(remote) == playout_sequence(local)
    assert {e["type"] for e in remote} == {e["type"] for e in local}
    assert transcript_of(remote) == transcript_of(local)
    assert word_errors(SENTENCE, transcript_of(remote)) / len(words(SENTENCE)) <= 0.25
    assert reply_of(remote)["status"] == reply_of(local)["status"] == "completed"
    assert reply_of(remote)["output"][0]["content"][0]["transcript"]


async def test_ready_names_kafka_and_the_worker_reports_its_sessions(over_kafka: Deployment) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{over_kafka.gateway.base_url}/ready") as response:
            body = await response.json()
        assert response.status == 200
        assert body["checks"]["bus"] == "ok"
        async with http.get(f"{over_kafka.workers[0].base_url}/ready") as response:
            worker = await response.json()
        assert worker["checks"] == {"kafka": "ok", "ovos": "ok", "pipeline": "ok"}
        async with http.get(f"{over_kafka.workers[0].base_url}/metrics") as response:
            text = await response.text()
    assert "gateway_worker_sessions " in text
    assert "gateway_kafka_connected 1.0" in text
