"""Spoken and typed turns over `/v1/realtime`, asserted on the validated event stream."""

from __future__ import annotations

import base64
from typing import Any

from tests.conftest import Gateway
from tests.speech.audio import padded, spoken, spoken_clock, word_errors, words
from tests.support.realtime import RealtimeClient, connect, pcm24k, pcmu8k

TRANSCRIBE = {"transcription": {"model": "gpt-4o-mini-transcribe"}}


def response_sequence(client: RealtimeClient, response_id: str) -> list[str]:
    """The types of the events that belong to one response, in order, with repeats collapsed."""
    types: list[str] = []
    for event in client.events:
        rid = event.get("response_id") or (event.get("response") or {}).get("id")
        if (
            event["type"] in ("conversation.item.added", "conversation.item.done")
            and event["item"].get("role") == "assistant"
        ):
            rid = response_id
        if rid == response_id and (not types or types[-1] != event["type"]):
            types.append(event["type"])
    return types


AUDIO_RESPONSE_ORDER = [
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
    "response.output_audio_transcript.delta",
    "response.output_audio.delta",
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "conversation.item.done",
    "response.output_item.done",
    "response.done",
]


def assert_audio_response(client: RealtimeClient, done: dict[str, Any]) -> None:
    response = done["response"]
    assert response["status"] == "completed"
    sequence = response_sequence(client, response["id"])
    assert sequence[:4] == AUDIO_RESPONSE_ORDER[:4]
    assert sequence[-7:] == AUDIO_RESPONSE_ORDER[-7:]
    assert set(sequence) == set(AUDIO_RESPONSE_ORDER)
    audio = b"".join(
        base64.b64decode(e["delta"])
        for e in client.of_type("response.output_audio.delta")
        if e["response_id"] == response["id"]
    )
    assert len(audio) > 4800  # more than 100 ms of speech came back
    (item,) = response["output"]
    assert item["role"] == "assistant"
    assert item["content"][0]["type"] == "output_audio"
    assert item["content"][0]["transcript"]


async def spoken_turn(client: RealtimeClient, sentence: str, audio: bytes, chunk: int) -> float:
    await client.append_audio(audio, chunk)
    started = await client.wait_for("input_audio_buffer.speech_started")
    stopped = await client.wait_for("input_audio_buffer.speech_stopped")
    assert started["item_id"] == stopped["item_id"]
    assert stopped["audio_end_ms"] > started["audio_start_ms"]
    committed = await client.wait_for("input_audio_buffer.committed")
    assert committed["item_id"] == started["item_id"]
    transcript = await client.wait_for("conversation.item.input_audio_transcription.completed")
    assert transcript["item_id"] == started["item_id"]
    done = await client.wait_for("response.done", timeout=60)
    assert_audio_response(client, done)
    errors = word_errors(sentence, transcript["transcript"]) / len(words(sentence))
    print(f"\nWER {errors:.2f}: {sentence!r} -> {transcript['transcript']!r}")
    return errors


async def test_spoken_turn_pcm24k_with_server_vad(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    sentence = "what time is it"
    async with connect(gateway.base_url, key) as client:
        assert (await client.recv())["type"] == "session.created"
        await client.send(
            {"type": "session.update", "session": {"type": "realtime", "audio": {"input": TRANSCRIBE}}}
        )
        updated = await client.wait_for("session.updated")
        assert updated["session"]["audio"]["input"]["transcription"]["model"] == "gpt-4o-mini-transcribe"
        wer = await spoken_turn(client, sentence, pcm24k(padded(spoken(sentence))), chunk=960)
        assert wer <= 0.25
        reply = client.of_type("response.done")[-1]["response"]["output"][0]["content"][0]["transcript"]
        assert spoken_clock(reply) is not None, reply  # OVOS told the time


async def test_spoken_turn_g711_mulaw(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    sentence = "please turn on the kitchen lights"
    async with connect(gateway.base_url, key) as client:
        await client.recv()
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {
                        "input": {"format": {"type": "audio/pcmu"}, **TRANSCRIBE},
                        "output": {"format": {"type": "audio/pcmu"}},
                    },
                },
            }
        )
        await client.wait_for("session.updated")
        wer = await spoken_turn(client, sentence, pcmu8k(padded(spoken(sentence))), chunk=160)
        assert wer <= 0.34


async def test_manual_commit_and_text_response(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        await client.recv()
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "output_modalities": ["text"],
                    "audio": {"input": {"turn_detection": None, **TRANSCRIBE}},
                },
            }
        )
        await client.wait_for("session.updated")
        await client.append_audio(pcm24k(padded(spoken("what time is it"))), 4800)
        await client.send({"type": "input_audio_buffer.commit", "event_id": "commit_1"})
        committed = await client.wait_for("input_audio_buffer.committed")
        await client.send({"type": "response.create", "event_id": "rc_1"})
        done = await client.wait_for("response.done", timeout=60)
        assert not client.of_type("input_audio_buffer.speech_started")
        assert not client.of_type("response.output_audio.delta")
        text = done["response"]["output"][0]["content"][0]["text"]
        assert spoken_clock(text) is not None, text  # OVOS told the time
        transcripts = client.of_type("conversation.item.input_audio_transcription.completed")
        assert transcripts[0]["item_id"] == committed["item_id"]


async def test_typed_turn_and_item_operations(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    async with connect(gateway.base_url, key) as client:
        await client.recv()
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hello"}],
                },
            }
        )
        added = await client.wait_for("conversation.item.added")
        item_id = added["item"]["id"]
        await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = await client.wait_for("conversation.item.retrieved")
        assert retrieved["item"]["content"][0]["text"] == "hello"
        await client.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        done = await client.wait_for("response.done", timeout=60)
        assert done["response"]["status"] == "completed"
        await client.send({"type": "conversation.item.delete", "item_id": item_id})
        deleted = await client.wait_for("conversation.item.deleted")
        assert deleted["item_id"] == item_id
        await client.send({"type": "conversation.item.retrieve", "item_id": item_id, "event_id": "gone"})
        error = await client.wait_for("error")
        assert error["error"]["event_id"] == "gone"
        assert error["error"]["code"] == "item_not_found"


async def test_manual_commit_with_server_vad_on_commits_the_whole_buffer(gateway: Gateway) -> None:
    """Speech the detector never hears as speech (threshold 1.0: quiet, distant, or a push-to-talk
    client that leaves VAD on) is still in the buffer, and a manual commit commits all 25 s of it."""
    key = await gateway.create_api_key()
    sentence = "please turn on the kitchen lights"
    audio = padded(spoken(sentence), before_ms=1000, after_ms=1000)
    audio += bytes(25 * 32_000 - len(audio))  # 25 s in all: well past the 300 ms prefix padding
    async with connect(gateway.base_url, key) as client:
        await client.recv()
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {
                        "input": {
                            "turn_detection": {
                                "type": "server_vad",
                                "threshold": 1.0,
                                "create_response": False,
                            },
                            **TRANSCRIBE,
                        }
                    },
                },
            }
        )
        await client.wait_for("session.updated")
        await client.append_audio(pcm24k(audio), 4800)
        await client.send({"type": "input_audio_buffer.commit", "event_id": "commit_25s"})
        committed = await client.wait_for("input_audio_buffer.committed")
        completed = await client.wait_for("conversation.item.input_audio_transcription.completed", 60)
    assert not client.of_type("input_audio_buffer.speech_started")
    assert completed["item_id"] == committed["item_id"]
    assert completed["usage"]["seconds"] >= 24.9
    assert word_errors(sentence, completed["transcript"]) / len(words(sentence)) <= 0.34
