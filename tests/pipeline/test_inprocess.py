"""SpeechPipeline over a real InProcessBus with real models and a real OVOS: espeak-ng speech in, whisper
transcripts, ovos-core's skills answering, flite audio out."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from media_gateway.pipeline.messages import (
    INPUT_TOPIC,
    PipelineAudio,
    SessionSettings,
    audio_headers,
    event_payload,
)
from tests.fixtures.ovos import OvosServer, skill_dialog
from tests.pipeline.harness import (
    REPLY,
    FailingRecognizer,
    GatedRecognizer,
    SlowSynthesizer,
    audio,
    events,
    final,
    is_done,
    is_event,
    running,
    text_of,
)
from tests.speech.audio import frames, padded, spoken, spoken_clock, word_errors, words

MAX_CHUNK_BYTES = 16_000 * 2 // 5  # 200 ms at 16 kHz


def assert_tells_time(reply: str, zone: str) -> None:
    """The reply names the current time in `zone` (to the minute, a minute of slack either side)."""
    told = spoken_clock(reply)
    assert told is not None, reply
    now = datetime.now(ZoneInfo(zone))
    moments = [now + timedelta(minutes=d) for d in (-1, 0, 1)]
    assert told in {(t.hour % 12 or 12, t.minute) for t in moments}, (reply, now.isoformat())


async def test_spoken_question_gets_transcript_text_and_audio(ovos: OvosServer) -> None:
    async with running(ovos.url) as harness:
        await harness.send("s1", "session.open", **SessionSettings(timezone="Europe/Paris").as_fields())
        await harness.speak("s1", padded(spoken("what time is it"), before_ms=300, after_ms=600))
        await harness.send("s1", "input.commit", item_id="item_1")
        await harness.send("s1", "response.create", response_id="resp_1", input_item_id="item_1")
        started = time.perf_counter()
        out = await harness.until(is_done("resp_1"))
        print(f"commit → response.done: {time.perf_counter() - started:.2f} s")

    (completed,) = events(out, "transcription.completed")
    assert completed.data["item_id"] == "item_1"
    assert word_errors("what time is it", completed.data["transcript"]) == 0
    assert completed.data["audio_seconds"] == pytest.approx(
        0.3 + len(spoken("what time is it")) / 32_000 + 0.6, abs=0.03
    )
    assert_tells_time(text_of(out), "Europe/Paris")  # OVOS's date-time skill, in the session's zone
    deltas = events(out, "response.text.delta")
    chunks = audio(out)
    assert chunks
    assert all(len(c.pcm) <= MAX_CHUNK_BYTES for c in chunks)
    assert [c.headers["seq"] for c in chunks] == [str(i) for i in range(len(chunks))]
    assert {c.headers["response_id"] for c in chunks} == {"resp_1"}
    assert {c.sample_rate for c in chunks} == {16_000}
    assert sum(len(c.pcm) for c in chunks) > 16_000  # over half a second of speech
    (mark,) = events(out, "response.mark")
    # Order: transcript, then text, then its audio, its end mark, then done.
    assert out.index(completed) < out.index(deltas[0]) < out.index(chunks[0])
    assert out.index(chunks[-1]) < out.index(mark) < len(out) - 1
    assert final(out) == {"response_id": "resp_1", "status": "completed", "message": ""}
    # OVOS's session for it (location included) went back to the gateway to carry.
    (state,) = events(out, "session.state")
    carried = state.data["state"]["session"]
    assert carried["session_id"] == "s1"
    assert carried["location"]["timezone"]["code"] == "Europe/Paris"


async def test_text_only_input_text_multi_sentence(ovos: OvosServer) -> None:
    async with running(ovos.url) as harness:
        await harness.open("s1", output_modalities=("text",))
        out = await harness.ask("s1", "r", "repeat after me One. Two! Three?")
    deltas = [d.data["delta"] for d in events(out, "response.text.delta")]
    assert len(deltas) >= 1
    assert words(" ".join(deltas)) == ["one", "two", "three"]
    assert audio(out) == []
    assert events(out, "response.mark") == []  # nothing to play
    assert final(out)["status"] == "completed"


async def test_response_modalities_override_session(ovos: OvosServer) -> None:
    async with running(ovos.url) as harness:
        await harness.open("s1")
        out = await harness.ask("s1", "r", "repeat after me hello", output_modalities=["text"])
    assert audio(out) == []
    assert text_of(out).lower().strip(".") == "hello"


async def test_cancel_mid_response(ovos: OvosServer) -> None:
    async with running(ovos.url, synthesizer=SlowSynthesizer(0.3)) as harness:
        await harness.open("s1")
        # OVOS's normalizer strips the punctuation: over 120 characters are cut into several syntheses.
        text = "repeat after me " + " ".join(f"sentence number {n}" for n in range(1, 16))
        await harness.send("s1", "response.create", response_id="r", input_text=text)
        await harness.until(lambda m: isinstance(m, PipelineAudio))
        started = time.perf_counter()
        await harness.send("s1", "response.cancel", response_id="r")
        out = await harness.until(is_done("r"))
        elapsed = time.perf_counter() - started
        assert final(out)["status"] == "cancelled"
        assert elapsed < 0.1
        assert [m for m in await harness.quiet(0.8) if not is_event("session.state")(m)] == []
        # The session still works.
        out = await harness.ask("s1", "r2", "repeat after me hello")
        assert final(out)["status"] == "completed"
    assert len(events(harness.received, "response.text.delta")) < 10


async def test_two_sessions_concurrently(ovos: OvosServer, ovos_venv: Path) -> None:
    first, second = (
        padded(spoken("what time is it"), 300, 500),
        padded(spoken("please turn on the kitchen lights"), 300, 500),
    )
    async with running(ovos.url) as harness:
        await harness.open("a", timezone="Asia/Tokyo")
        await harness.open("b", output_modalities=("text",))
        for frame_a, frame_b in zip(frames(first), frames(second), strict=False):
            await harness.bus.publish(INPUT_TOPIC, "a", frame_a, {**audio_headers(), **REPLY})
            await harness.bus.publish(INPUT_TOPIC, "b", frame_b, {**audio_headers(), **REPLY})
        for frame in frames(second)[len(frames(first)) :]:
            await harness.bus.publish(INPUT_TOPIC, "b", frame, {**audio_headers(), **REPLY})
        for sid in ("a", "b"):
            await harness.send(sid, "input.commit", item_id=f"item_{sid}")
            await harness.send(sid, "response.create", response_id=f"resp_{sid}", input_item_id=f"item_{sid}")
        await harness.until(is_done("resp_a"))
        if not events(harness.received, "response.done", "b"):
            await harness.until(is_done("resp_b"))
    received = harness.received
    transcript_a = events(received, "transcription.completed", "a")[0].data["transcript"]
    assert word_errors("what time is it", transcript_a) == 0
    transcript_b = events(received, "transcription.completed", "b")[0].data["transcript"]
    assert "turn on the kitchen lights" in transcript_b.lower()
    assert_tells_time(text_of(received, "resp_a"), "Asia/Tokyo")
    # No skill turns on lights here: the fallback skill answers, in words, never silence.
    assert text_of(received, "resp_b") in skill_dialog(ovos_venv, "ovos_skill_fallback_unknown", "unknown")
    assert audio(received, "a")
    assert not audio(received, "b")


async def test_slow_stt_in_one_session_does_not_block_another(ovos: OvosServer) -> None:
    recognizer = GatedRecognizer(blocked_text="time")
    async with running(ovos.url, recognizer=recognizer) as harness:
        await harness.open("slow")
        await harness.open("fast", output_modalities=("text",))
        await harness.speak("slow", padded(spoken("what time is it"), 300, 500))
        await harness.send("slow", "input.commit", item_id="i1")
        await harness.send("slow", "response.create", response_id="slow_r", input_item_id="i1")
        await harness.speak("fast", padded(spoken("hello there"), 300, 500))
        await harness.send("fast", "input.commit", item_id="i2")
        await harness.send("fast", "response.create", response_id="fast_r", input_item_id="i2")
        fast = await harness.until(is_done("fast_r"))
        assert events(fast, "response.done", "slow") == []  # the slow session is still waiting on its STT
        recognizer.release.set()
        await harness.until(is_done("slow_r"))


async def test_failures_and_clear(ovos: OvosServer) -> None:
    async with running(ovos.url, recognizer=FailingRecognizer()) as harness:
        await harness.open("s1")
        await harness.speak("s1", padded(spoken("hello"), 100, 100))
        await harness.send("s1", "input.commit", item_id="i1")
        await harness.send("s1", "response.create", response_id="r1", input_item_id="i1")
        out = await harness.until(is_done("r1"))
        assert events(out, "transcription.failed")[0].data == {"item_id": "i1", "message": "decoder exploded"}
        assert final(out)["status"] == "failed"
        assert "decoder exploded" in final(out)["message"]
        await harness.send("s1", "response.create", response_id="r2", input_item_id="never_committed")
        out = await harness.until(is_done("r2"))
        assert final(out)["status"] == "failed"

    async with running(ovos.url) as harness:
        await harness.open("s1", output_modalities=("text",), transcribe=False)
        await harness.speak("s1", padded(spoken("what time is it"), 100, 100))
        await harness.send("s1", "input.clear")
        await harness.send("s1", "input.commit", item_id="empty")
        await harness.send("s1", "response.create", response_id="r", input_item_id="empty")
        out = await harness.until(is_done("r"))
        assert events(out, "transcription.completed") == []  # transcribe off: no transcription events
        assert text_of(out) == "Sorry, I didn't catch that."


async def test_unknown_and_closed_sessions_are_ignored(ovos: OvosServer) -> None:
    """A message that says nowhere to reply, and a late message of a closed session, get no answer."""
    async with running(ovos.url) as harness:
        payload, headers = event_payload("response.create", response_id="r", input_text="hello")
        await harness.bus.publish(INPUT_TOPIC, "ghost", payload, headers)
        await harness.open("s1")
        await harness.send("s1", "session.close")
        await harness.send("s1", "response.create", response_id="r", input_text="hello")
        await harness.bus.publish(INPUT_TOPIC, "s1", b"not json", {"kind": "event", **REPLY})
        assert await harness.quiet(0.3) == []


async def test_a_session_this_worker_never_saw_opened_is_answered(ovos: OvosServer) -> None:
    """After a rebalance the new owner of a session's partition sees its next turn without the
    session.open before it: the turn events carry the settings, every message the reply topic."""
    async with running(ovos.url) as harness:
        settings = SessionSettings(output_modalities=("text",)).as_fields()
        out = await harness.ask("moved", "r", "repeat after me hello", session=settings)
        assert final(out)["status"] == "completed"
        assert text_of(out)
        assert not audio(out)  # the carried settings were applied: text only
