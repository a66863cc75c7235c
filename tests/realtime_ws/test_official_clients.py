"""Unmodified official clients complete a spoken turn against the gateway: the `openai` Python SDK's
`realtime.connect()` and the Agents SDK's `RealtimeRunner`, each pointed at it by URL only."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from agents.realtime import RealtimeAgent, RealtimeRunner

from tests.conftest import Gateway
from tests.speech.audio import padded, spoken, word_errors, words
from tests.support.conformance import GATE
from tests.support.realtime import pcm24k, sdk_spoken_turn

SENTENCE = "what time is it"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_openai_sdk_realtime_connect_completes_a_spoken_turn(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    events = await sdk_spoken_turn(gateway.base_url, key, SENTENCE)
    done = events[-1]

    types = [event["type"] for event in events]
    for expected in (
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "conversation.item.input_audio_transcription.completed",
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
    ):
        assert expected in types
    assert types.index("input_audio_buffer.speech_stopped") < types.index("response.created")
    assert done["response"]["status"] == "completed"
    transcript = next(e for e in events if e["type"].endswith("transcription.completed"))["transcript"]
    wer = word_errors(SENTENCE, transcript) / len(words(SENTENCE))
    print(f"\nopenai SDK: WER {wer:.2f} {SENTENCE!r} -> {transcript!r}")
    assert wer <= 0.25


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_agents_sdk_realtime_runner_completes_a_spoken_turn(gateway: Gateway) -> None:
    key = await gateway.create_api_key()
    url = gateway.base_url.replace("http://", "ws://") + "/v1/realtime?model=gpt-realtime"
    agent = RealtimeAgent(name="Assistant", instructions="Answer briefly.")
    runner = RealtimeRunner(agent)
    session = await runner.run(
        model_config={
            "url": url,
            "api_key": key,
            "initial_model_settings": {
                "input_audio_transcription": {"model": "gpt-4o-mini-transcribe"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
            },
        }
    )
    seen: list[str] = []
    raw_types: list[str] = []
    errors: list[Any] = []
    transcript = ""
    audio_bytes = 0
    async with session:
        audio = pcm24k(padded(spoken(SENTENCE)))

        async def listen() -> None:
            nonlocal transcript, audio_bytes
            async for event in session:
                seen.append(event.type)
                if event.type == "error":
                    errors.append(event.error)
                elif event.type == "audio":
                    audio_bytes += len(event.audio.data)
                elif event.type == "raw_model_event":
                    data = event.data
                    raw_types.append(data.type)
                    if data.type == "raw_server_event":
                        GATE.check(json.dumps(data.data))
                        if data.data.get("type", "").endswith("input_audio_transcription.completed"):
                            transcript = data.data["transcript"]
                elif event.type == "agent_end":
                    return

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.5)  # let the runner send its session.update first
        for start in range(0, len(audio), 4800):
            await session.send_audio(audio[start : start + 4800])
        await asyncio.wait_for(listener, 60)
    assert errors == []
    assert "agent_start" in seen
    assert "agent_end" in seen
    assert audio_bytes > 4800
    wer = word_errors(SENTENCE, transcript) / len(words(SENTENCE))
    print(f"\nagents SDK: WER {wer:.2f} {SENTENCE!r} -> {transcript!r}")
    assert wer <= 0.25
