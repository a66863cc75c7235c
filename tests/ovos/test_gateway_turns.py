"""OVOS skills through the embedded gateway, as clients use it: spoken turns on the realtime WebSocket and
on WebRTC (an aiortc peer), server VAD, the test session's real ovos-core behind the in-process pipeline."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import pytest

from media_gateway.codecs import PCM24
from media_gateway.ovos.message import OvosMessage
from tests.conftest import Gateway
from tests.fixtures.ovos import OvosServer, skill_dialog
from tests.realtime_ws.test_turns import TRANSCRIBE
from tests.speech.audio import padded, spoken, words
from tests.support.realtime import RealtimeClient, connect, pcm24k
from tests.webrtc.client import CallClient
from tests.webrtc.test_calls import text_turn

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SERVER_VAD = {"type": "realtime", "audio": {"input": TRANSCRIBE}}


def reply_text(done: dict[str, Any]) -> str:
    return str(done["response"]["output"][0]["content"][0]["transcript"])


async def spoken_turn(client: RealtimeClient, sentence: str) -> dict[str, Any]:
    """Speak `sentence` (server VAD ends the turn); the response.done of the reply."""
    await client.append_audio(pcm24k(padded(spoken(sentence))), 4800)
    return await client.wait_for("response.done", timeout=60)


async def test_a_two_turn_dialog_over_the_websocket(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        await client.recv()
        await client.send({"type": "session.update", "session": SERVER_VAD})
        await client.wait_for("session.updated")
        question = await spoken_turn(client, "ask me my name")
        answer = await spoken_turn(client, "bob")
    assert reply_text(question) == "What is your name?"
    assert words(reply_text(answer)) == words("Nice to meet you, bob.")
    assert question["response"]["status"] == answer["response"]["status"] == "completed"


async def test_a_two_turn_dialog_over_webrtc(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    client = CallClient()
    try:
        await client.connect(gateway.base_url, key)
        await client.wait_for("session.created")
        client.send({"type": "session.update", "session": SERVER_VAD})
        await client.wait_for("session.updated")
        client.track.say(padded(spoken("ask me my name")))
        question = await client.wait_for("response.done", timeout=60)
        asked = question["response"]["id"]
        # The caller hears the question out, then answers.
        await client.wait_for(
            "output_audio_buffer.stopped", timeout=30, where=lambda e: e["response_id"] == asked
        )
        heard = len(client.received)
        client.track.say(padded(spoken("bob")))
        answer = await client.wait_for(
            "response.done", timeout=60, where=lambda e: e["response"]["id"] != asked
        )
        answered = answer["response"]["id"]
        await client.wait_for(
            "output_audio_buffer.stopped", timeout=30, where=lambda e: e["response_id"] == answered
        )
        assert client.received_rms(heard) > 100  # the answer was spoken on the track
    finally:
        await client.close()
    assert reply_text(question) == "What is your name?"
    assert words(reply_text(answer)) == words("Nice to meet you, bob.")


async def test_an_unknown_utterance_gets_the_fallback_spoken(gateway: Gateway, ovos_venv: Path) -> None:
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        await client.recv()
        await client.send({"type": "session.update", "session": SERVER_VAD})
        await client.wait_for("session.updated")
        done = await spoken_turn(client, "please turn on the kitchen lights")
    assert done["response"]["status"] == "completed"
    assert reply_text(done) in skill_dialog(ovos_venv, "ovos_skill_fallback_unknown", "unknown")
    audio = [
        e for e in client.of_type("response.output_audio.delta") if e["response_id"] == done["response"]["id"]
    ]
    assert sum(len(base64.b64decode(e["delta"])) for e in audio) > 24_000 * 2  # over a second of speech


def playback_end(deltas: list[tuple[float, int]]) -> float:
    """When a client that plays each delta as it arrives, in order and at real time, finishes."""
    end = 0.0
    for arrived, duration_ms in deltas:
        end = max(end, arrived) + duration_ms / 1000
    return end


async def test_a_wait_true_skill_ends_its_turn_when_the_client_has_played_the_reply(gateway: Gateway) -> None:
    """ "hello world" speaks with wait=True: OVOS hears `audio_output_end` when the paced delivery says the
    client has played the reply, and only then ends the turn."""
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        await client.recv()
        await client.send({"type": "conversation.item.create", "item": user_text("hello world")})
        await client.wait_for("conversation.item.done")
        await client.send({"type": "response.create"})
        deltas: list[tuple[float, int]] = []
        while True:
            event = await client.recv(timeout=60)
            now = time.monotonic()
            if event["type"] == "response.output_audio.delta":
                deltas.append((now, int(PCM24.duration_ms(len(base64.b64decode(event["delta"]))))))
            if event["type"] == "response.done":
                done_at = now
                break
    assert event["response"]["status"] == "completed"
    after_playback = done_at - playback_end(deltas)
    reply_ms = sum(d for _, d in deltas)
    print(f"\nreply {reply_ms} ms; response.done {after_playback * 1000:+.0f} ms after its playback end")
    assert -0.3 < after_playback < 1.0


def user_text(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def test_a_speak_on_the_bus_reaches_its_client_as_a_server_response(
    gateway: Gateway, ovos: OvosServer
) -> None:
    """A timer or a reminder: a skill speaks for the session with no turn open."""
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        session_id = (await client.recv())["session"]["id"]
        await asyncio.sleep(0.2)
        await ovos.inject(
            OvosMessage(
                "speak",
                {"utterance": "Your tea is ready.", "expect_response": False, "lang": "en-US"},
                {"destination": f"gateway:{session_id}", "session": {"session_id": session_id}},
            )
        )
        created = await client.wait_for("response.created", timeout=20)
        done = await client.wait_for("response.done", timeout=30)
    assert done["response"]["id"] == created["response"]["id"]
    assert done["response"]["status"] == "completed"
    assert reply_text(done) == "Your tea is ready."
    assert [
        e for e in client.of_type("response.output_audio.delta") if e["response_id"] == done["response"]["id"]
    ]


async def test_a_wait_true_skill_on_webrtc_ends_its_turn_after_the_track_played_the_reply(
    gateway: Gateway,
) -> None:
    """The server plays WebRTC replies on its own track: `audio_output_end` goes to OVOS when the track has
    played the whole spoken passage (its last partial frame included, or the skill would wait its 15 s),
    and the turn ends just after: "Hello world" (about a second of speech) is over in seconds."""
    key = await gateway.create_api_key()
    client = CallClient()
    try:
        await client.connect(gateway.base_url, key)
        await client.wait_for("session.created")
        text_turn(client, "hello world")
        started = await client.wait_for("output_audio_buffer.started", timeout=30)
        started_at = time.monotonic()
        stopped = await client.wait_for("output_audio_buffer.stopped", timeout=30)
        stopped_at = time.monotonic()
        done = await client.wait_for("response.done", timeout=30)
        done_at = time.monotonic()
    finally:
        await client.close()
    assert done["response"]["status"] == "completed"
    assert started["response_id"] == stopped["response_id"] == done["response"]["id"]
    assert client.events.index(stopped) < client.events.index(done)  # released by the playout
    print(
        f"\nwebrtc, wait=True: played {(stopped_at - started_at) * 1000:.0f} ms, response.done "
        f"{(done_at - stopped_at) * 1000:.0f} ms after the track stopped"
    )
    assert stopped_at - started_at < 3.0
    assert done_at - stopped_at < 1.0
