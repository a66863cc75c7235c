"""SpeechPipeline over a real InProcessBus with real models: espeak-ng speech in, whisper
transcripts, the minimal responder, flite audio out."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from media_gateway.pipeline.bus import Subscription
from media_gateway.pipeline.inprocess_bus import InProcessBus
from media_gateway.pipeline.messages import (
    INPUT_TOPIC,
    REPLY_TO_HEADER,
    PipelineAudio,
    PipelineEvent,
    SessionSettings,
    audio_headers,
    decode,
    event_payload,
)
from media_gateway.pipeline.speech import SpeechPipeline
from media_gateway.speech.responder import Responder
from media_gateway.speech.stt import SpeechRecognizer, Transcript, load_recognizer
from media_gateway.speech.tts import FliteSynthesizer, SpeechSynthesizer
from tests.speech.audio import frames, padded, spoken, word_errors

NOW = datetime(2026, 3, 3, 15, 5, tzinfo=UTC)
MAX_CHUNK_BYTES = 16_000 * 2 // 5  # 200 ms at 16 kHz

Output = PipelineEvent | PipelineAudio
REPLY_TOPIC = "rt.out.test"
REPLY = {REPLY_TO_HEADER: REPLY_TOPIC}


class Harness:
    def __init__(self, bus: InProcessBus, output: Subscription) -> None:
        self.bus = bus
        self.received: list[Output] = []
        # A pump task, so a timed-out wait never cancels (and so ends) the subscription's iterator.
        self._queue: asyncio.Queue[Output] = asyncio.Queue()
        self._pump = asyncio.create_task(self._forward(output))

    async def _forward(self, output: Subscription) -> None:
        async for message in output:
            self._queue.put_nowait(decode(message))

    async def close(self) -> None:
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump

    async def send(self, session_id: str, event_type: str, **fields: Any) -> None:
        payload, headers = event_payload(event_type, **fields)
        await self.bus.publish(INPUT_TOPIC, session_id, payload, {**headers, **REPLY})

    async def open(self, session_id: str, **settings: Any) -> None:
        await self.send(session_id, "session.open", **SessionSettings(**settings).as_fields())

    async def speak(self, session_id: str, pcm: bytes) -> None:
        for seq, frame in enumerate(frames(pcm)):  # as fast as the bus takes them, production queue size
            await self.bus.publish(INPUT_TOPIC, session_id, frame, {**audio_headers(seq=str(seq)), **REPLY})

    async def until(self, done: Callable[[Output], bool], limit: float = 30.0) -> list[Output]:
        """Collect output until (and including) the first message `done` accepts."""
        collected: list[Output] = []
        async with asyncio.timeout(limit):
            while True:
                message = await self._queue.get()
                collected.append(message)
                self.received.append(message)
                if done(message):
                    return collected

    async def quiet(self, seconds: float = 0.3) -> list[Output]:
        collected: list[Output] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    collected.append(await self._queue.get())
        return collected


def is_done(response_id: str) -> Callable[[Output], bool]:
    def check(message: Output) -> bool:
        return (
            isinstance(message, PipelineEvent)
            and message.type == "response.done"
            and message.data["response_id"] == response_id
        )

    return check


def events(messages: list[Output], event_type: str, session_id: str | None = None) -> list[PipelineEvent]:
    return [
        m
        for m in messages
        if isinstance(m, PipelineEvent) and m.type == event_type and session_id in (None, m.session_id)
    ]


def final(messages: list[Output]) -> Mapping[str, Any]:
    """The data of the last message, which must be an event (response.done)."""
    last = messages[-1]
    assert isinstance(last, PipelineEvent)
    return last.data


def audio(messages: list[Output], session_id: str | None = None) -> list[PipelineAudio]:
    return [m for m in messages if isinstance(m, PipelineAudio) and session_id in (None, m.session_id)]


@contextlib.asynccontextmanager
async def running(
    recognizer: SpeechRecognizer | None = None, synthesizer: SpeechSynthesizer | None = None
) -> AsyncIterator[Harness]:
    bus = InProcessBus()
    await bus.start()
    output = await bus.subscribe(REPLY_TOPIC)
    pipeline = SpeechPipeline(
        bus,
        recognizer=recognizer or load_recognizer(),
        synthesizer=synthesizer or FliteSynthesizer(),
        responder=Responder(clock=lambda: NOW),
    )
    await pipeline.start()
    harness = Harness(bus, output)
    try:
        yield harness
    finally:
        await harness.close()
        await pipeline.stop()
        assert pipeline.sessions == 0
        await output.close()
        await bus.stop()


class SlowSynthesizer:
    """Flite, slowed down, to cancel mid-response deterministically."""

    def __init__(self, delay: float) -> None:
        self._flite = FliteSynthesizer()
        self._delay = delay
        self.sample_rate = self._flite.sample_rate

    def synthesize(self, text: str) -> bytes:
        time.sleep(self._delay)
        return self._flite.synthesize(text)


class GatedRecognizer:
    """Whisper, but a chosen session's utterance waits on an event (a slow STT)."""

    def __init__(self, blocked_text: str) -> None:
        self.release = threading.Event()
        self._blocked = blocked_text
        self._whisper = load_recognizer()

    def transcribe(self, pcm16k: bytes, language: str) -> Transcript:
        transcript = self._whisper.transcribe(pcm16k, language)
        if self._blocked in transcript.text.lower():
            self.release.wait(10)
        return transcript


class FailingRecognizer:
    def transcribe(self, pcm16k: bytes, language: str) -> Transcript:
        raise RuntimeError("decoder exploded")


async def test_spoken_question_gets_transcript_text_and_audio() -> None:
    async with running() as harness:
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
    deltas = events(out, "response.text.delta")
    assert "".join(d.data["delta"] for d in deltas) == "It's four oh five p.m."  # Paris time
    chunks = audio(out)
    assert chunks
    assert all(len(c.pcm) <= MAX_CHUNK_BYTES for c in chunks)
    assert [c.headers["seq"] for c in chunks] == [str(i) for i in range(len(chunks))]
    assert {c.headers["response_id"] for c in chunks} == {"resp_1"}
    assert {c.sample_rate for c in chunks} == {16_000}
    assert sum(len(c.pcm) for c in chunks) > 16_000  # over half a second of speech
    # Order: transcript, then text, then its audio, then done.
    assert out.index(completed) < out.index(deltas[0]) < out.index(chunks[0])
    assert final(out) == {"response_id": "resp_1", "status": "completed", "message": ""}


async def test_text_only_input_text_multi_sentence() -> None:
    async with running() as harness:
        await harness.open("s1", output_modalities=("text",))
        await harness.send("s1", "response.create", response_id="r", input_text="Say One. Two! Three?")
        out = await harness.until(is_done("r"))
    assert [d.data["delta"] for d in events(out, "response.text.delta")] == ["One.", " Two!", " Three?"]
    assert audio(out) == []
    assert events(out, "response.done")[0].data["status"] == "completed"


async def test_response_modalities_override_session() -> None:
    async with running() as harness:
        await harness.open("s1")
        await harness.send(
            "s1", "response.create", response_id="r", input_text="hello", output_modalities=["text"]
        )
        out = await harness.until(is_done("r"))
    assert audio(out) == []
    assert events(out, "response.text.delta")[0].data["delta"] == "Hello!"


async def test_cancel_mid_response() -> None:
    async with running(synthesizer=SlowSynthesizer(0.3)) as harness:
        await harness.open("s1")
        text = "Say " + " ".join(f"Sentence number {n}." for n in range(1, 11))
        await harness.send("s1", "response.create", response_id="r", input_text=text)
        await harness.until(lambda m: isinstance(m, PipelineAudio))
        started = time.perf_counter()
        await harness.send("s1", "response.cancel", response_id="r")
        out = await harness.until(is_done("r"))
        elapsed = time.perf_counter() - started
        assert final(out)["status"] == "cancelled"
        assert elapsed < 0.1
        assert await harness.quiet(0.8) == []  # nothing after the cancellation
        # The session still works.
        await harness.send("s1", "response.create", response_id="r2", input_text="hello")
        assert events(await harness.until(is_done("r2")), "response.done")[0].data["status"] == "completed"
    assert len(events(harness.received, "response.text.delta")) < 10


async def test_two_sessions_concurrently() -> None:
    first, second = (
        padded(spoken("what time is it"), 300, 500),
        padded(spoken("please turn on the kitchen lights"), 300, 500),
    )
    async with running() as harness:
        await harness.open("a")
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
    assert (
        word_errors("what time is it", events(received, "transcription.completed", "a")[0].data["transcript"])
        == 0
    )
    assert (
        "turn on the kitchen lights"
        in events(received, "transcription.completed", "b")[0].data["transcript"].lower()
    )
    assert (
        "".join(d.data["delta"] for d in events(received, "response.text.delta", "a"))
        == "It's three oh five p.m."
    )
    assert (
        "turn on the kitchen lights"
        in "".join(d.data["delta"] for d in events(received, "response.text.delta", "b")).lower()
    )
    assert audio(received, "a")
    assert not audio(received, "b")


async def test_slow_stt_in_one_session_does_not_block_another() -> None:
    recognizer = GatedRecognizer(blocked_text="time")
    async with running(recognizer=recognizer) as harness:
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


async def test_failures_and_clear() -> None:
    async with running(recognizer=FailingRecognizer()) as harness:
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

    async with running() as harness:
        await harness.open("s1", output_modalities=("text",), transcribe=False)
        await harness.speak("s1", padded(spoken("what time is it"), 100, 100))
        await harness.send("s1", "input.clear")
        await harness.send("s1", "input.commit", item_id="empty")
        await harness.send("s1", "response.create", response_id="r", input_item_id="empty")
        out = await harness.until(is_done("r"))
        assert events(out, "transcription.completed") == []  # transcribe off: no transcription events
        assert events(out, "response.text.delta")[0].data["delta"] == "Sorry, I didn't catch that."


async def test_unknown_and_closed_sessions_are_ignored() -> None:
    """A message that says nowhere to reply, and a late message of a closed session, get no answer."""
    async with running() as harness:
        payload, headers = event_payload("response.create", response_id="r", input_text="hello")
        await harness.bus.publish(INPUT_TOPIC, "ghost", payload, headers)
        await harness.open("s1")
        await harness.send("s1", "session.close")
        await harness.send("s1", "response.create", response_id="r", input_text="hello")
        await harness.bus.publish(INPUT_TOPIC, "s1", b"not json", {"kind": "event", **REPLY})
        assert await harness.quiet(0.3) == []


async def test_a_session_this_worker_never_saw_opened_is_answered() -> None:
    """After a rebalance the new owner of a session's partition sees its next turn without the
    session.open before it: the turn events carry the settings, every message the reply topic."""
    async with running() as harness:
        settings = SessionSettings(output_modalities=("text",)).as_fields()
        await harness.send("moved", "response.create", response_id="r", input_text="hello", session=settings)
        out = await harness.until(is_done("r"))
        assert final(out)["status"] == "completed"
        assert events(out, "response.text.delta", "moved")
        assert not audio(out)  # the carried settings were applied: text only
