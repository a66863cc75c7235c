"""Phone calls through Twilio Media Streams, placed by `streamdouble` (a Twilio Media Streams caller that
runs offline: it streams WAVs as 20 ms μ-law `media`, echoes the gateway's marks when their audio would have
played, honours `clear`, presses keys, records the reply). The gateway answers through the test session's
real OVOS; a sideband WebSocket (`?call_id=tw_<CallSid>`) watches the session as an application would.

streamdouble's fidelity, as its documentation states it: the message shapes and the mark/clear timing of
Twilio's bidirectional streams (a mark comes back when the audio sent before it has played; `clear` drops
unplayed audio and the marks waiting behind it); no real network or phone."""

from __future__ import annotations

import asyncio
import secrets
import time
import wave
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from streamdouble.audio import wav_to_ulaw_frames
from streamdouble.protocol import StreamIdentity
from streamdouble.scenario import Dtmf, Say, Scenario, Wait, WaitFor
from streamdouble.session import Session, SessionConfig, SessionResult

from media_gateway.codecs import InputAudioDecoder, OutputAudioEncoder
from media_gateway.codecs.resample import PcmResampler
from media_gateway.speech.tts import FliteSynthesizer
from tests.conftest import Gateway
from tests.http.test_client_secrets import mint
from tests.speech.audio import padded, spoken, spoken_clock, word_errors
from tests.support.realtime import RealtimeClient, connect

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
QUESTION = "I need to know the time"


def wav_8k(path: Path, text: str) -> Path:
    """`text` spoken by espeak-ng as the 8 kHz mono WAV a phone caller's audio becomes."""
    resampler = PcmResampler(16_000, 8_000)
    pcm = resampler.push(padded(spoken(text), before_ms=300, after_ms=900)) + resampler.flush()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(pcm)
    return path


def stream_url(gateway: Gateway) -> str:
    return gateway.base_url.replace("http://", "ws://") + "/v1/telephony/twilio"


async def place_call(
    gateway: Gateway, key: str, token: str, steps: list[Any]
) -> tuple[SessionResult, str, list[dict[str, Any]]]:
    """A streamdouble call with the client secret as its `token` parameter, watched from a sideband: what
    the caller got, the call's id, and the session's events."""
    identity = StreamIdentity(call_sid="CA" + secrets.token_hex(16))
    call_id = f"tw_{identity.call_sid}"
    events: list[dict[str, Any]] = []
    watcher = asyncio.create_task(sideband(gateway, key, call_id, events))
    config = SessionConfig(custom_parameters={"token": token}, response_timeout_s=30.0, quiet_period_s=1.5)
    session = Session(stream_url(gateway), scenario=Scenario("call", steps), config=config, identity=identity)
    result = await session.run()
    await asyncio.wait_for(watcher, 30)
    return result, call_id, events


def say(path: Path) -> Say:
    return Say(path, wav_to_ulaw_frames(path))


async def sideband(gateway: Gateway, key: str, call_id: str, events: list[dict[str, Any]]) -> None:
    """Attach to the call's session as soon as it exists; collect its events until it ends."""
    for _ in range(200):
        try:
            async with connect(gateway.base_url, key, query=f"?call_id={call_id}") as client:
                await collect(client, events)
                return
        except aiohttp.WSServerHandshakeError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"the sideband never attached to {call_id}")


async def collect(client: RealtimeClient, events: list[dict[str, Any]]) -> None:
    """Every event, stamped on arrival (`_at`: perf_counter seconds, streamdouble's clock too)."""
    while True:
        try:
            event = await client.recv(timeout=60)
        except ConnectionError:
            return
        events.append({**event, "_at": time.perf_counter()})


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == event_type]


def mulaw_to_16k(mulaw: bytes) -> bytes:
    return b"".join(InputAudioDecoder({"type": "audio/pcmu"}).decode(mulaw))


def as_mulaw(pcm16k: bytes) -> bytes:
    encoder = OutputAudioEncoder({"type": "audio/pcmu"})
    return encoder.encode(pcm16k, 16_000) + encoder.flush()


def samples(pcm: bytes) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float64)


async def test_a_spoken_turn_marks_and_dtmf(gateway: Gateway, tmp_path: Path) -> None:
    key = await gateway.create_api_key()
    token = (await (await mint(gateway, key)).json())["value"]
    # tiny.en hears espeak's "what time is it" at 8 kHz μ-law as "What time it is?" (README, the STT table),
    # which no skill understands: a phone caller's question that it hears right.
    question = wav_8k(tmp_path / "question.wav", QUESTION)
    steps = [say(question), WaitFor("audio", 30), WaitFor("quiet", 30), Dtmf("1234#"), Wait(1.0)]
    result, call_id, events = await place_call(gateway, key, token, steps)

    # The call: the caller heard a reply, and every mark the gateway sent came back.
    assert result.audio_received
    assert result.violations == []
    assert result.marks_received
    assert result.marks_echoed == result.marks_received
    # The session, seen from the sideband: the question understood, OVOS told the time, the keys pressed.
    (heard,) = of_type(events, "conversation.item.input_audio_transcription.completed")
    assert word_errors(QUESTION, heard["transcript"]) == 0, heard["transcript"]
    done = of_type(events, "response.done")[0]["response"]
    assert done["status"] == "completed"
    reply = done["output"][0]["content"][0]["transcript"]
    assert spoken_clock(reply) is not None, reply
    assert [e["event"] for e in of_type(events, "input_audio_buffer.dtmf_event_received")] == list("1234#")
    # What the caller heard is that reply: the μ-law it received is flite's voice saying it, as the gateway
    # encodes it (whisper tiny.en cannot be the judge here: at 8 kHz it hears "twelve" as "weld").
    heard_audio = samples(mulaw_to_16k(result.audio_received))
    expected = samples(mulaw_to_16k(as_mulaw(FliteSynthesizer("slt").synthesize(reply))))
    assert len(heard_audio) >= len(expected) * 0.95
    similarity = float(np.corrcoef(heard_audio[: len(expected)], expected[: len(heard_audio)])[0, 1])
    level = float(np.sqrt(np.mean(heard_audio**2)))
    assert similarity > 0.95
    assert level > 300
    # `stop` ended the call; its row says so.
    record = await gateway.repositories.calls.get(call_id)
    assert record is not None
    assert record.status == "ended"
    assert record.meta["stream_sid"] == result.identity.stream_sid
    print(
        f"\ntwilio: {len(result.marks_echoed)} marks echoed; reply {reply!r}: {len(heard_audio) / 16:.0f} ms "
        f"heard, RMS {level:.0f}, correlation with the reply spoken {similarity:.3f}"
    )


async def test_barge_in_clears_and_truncates_at_the_last_echoed_mark(
    gateway: Gateway, tmp_path: Path
) -> None:
    key = await gateway.create_api_key()
    token = (await (await mint(gateway, key)).json())["value"]
    story = wav_8k(tmp_path / "story.wav", "tell me a story")
    stop = wav_8k(tmp_path / "stop.wav", "stop please")
    steps = [say(story), WaitFor("audio", 30), Wait(3.0), say(stop), WaitFor("clear", 15), Wait(1.0)]
    result, _, events = await place_call(gateway, key, token, steps)

    assert result.clears_received >= 1
    # Where playback was at the clear: the audio sent before the last mark echoed before it.
    sent_bytes, position = 0, {}
    last_echoed_before_clear = None
    for event in result.events:
        if event.kind == "media_received":
            sent_bytes += event.detail["bytes"]
        elif event.kind == "mark_received":
            position[event.detail["name"]] = sent_bytes / 8  # μ-law at 8 kHz: 8 bytes per ms
        elif event.kind == "mark_echoed":
            last_echoed_before_clear = event.detail["name"]
        elif event.kind == "clear_received":
            break
    assert last_echoed_before_clear is not None
    played_ms = position[last_echoed_before_clear]
    (truncated,) = of_type(events, "conversation.item.truncated")
    print(f"\nbarge-in: truncated at {truncated['audio_end_ms']} ms, last echoed mark at {played_ms:.0f} ms")
    assert abs(truncated["audio_end_ms"] - played_ms) <= 40
    assert 2000 <= played_ms <= 8000  # about the three seconds the caller listened, not the whole story
    assert of_type(events, "input_audio_buffer.speech_started")
    assert of_type(events, "output_audio_buffer.cleared")


async def test_a_wait_true_skill_is_released_when_the_caller_has_heard_the_reply(
    gateway: Gateway, tmp_path: Path
) -> None:
    """ "hello world" speaks with wait=True: OVOS ends the turn once it hears `audio_output_end`, which
    follows the marks Twilio echoes as the caller hears the reply."""
    key = await gateway.create_api_key()
    token = (await (await mint(gateway, key)).json())["value"]
    hello = wav_8k(tmp_path / "hello.wav", "hello world")
    result, _, events = await place_call(gateway, key, token, [say(hello), WaitFor("audio", 30), Wait(6.0)])
    done = of_type(events, "response.done")[0]
    assert done["response"]["status"] == "completed"
    echoed = [e.at for e in result.events if e.kind == "mark_echoed"]
    heard_out = max(echoed)  # the reply's last mark: the caller has heard all of it
    after = done["_at"] - heard_out
    print(f"\ntwilio, wait=True: response.done {after * 1000:+.0f} ms after the caller heard the reply out")
    assert -0.2 < after < 1.0
