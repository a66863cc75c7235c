"""A SpeechPipeline on a real InProcessBus, answering through the test session's real OVOS: what the
pipeline tests drive, as a gateway would (bus messages in, bus messages out)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from media_gateway.ovos.admission import TurnAdmission
from media_gateway.ovos.assistant import OvosAssistant
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
from media_gateway.speech.stt import SpeechRecognizer, Transcript, load_recognizer
from media_gateway.speech.tts import FliteSynthesizer, SpeechSynthesizer
from tests.speech.audio import frames

Output = PipelineEvent | PipelineAudio
REPLY_TOPIC = "rt.out.test"
REPLY = {REPLY_TO_HEADER: REPLY_TOPIC}


class Harness:
    def __init__(self, bus: InProcessBus, output: Subscription, pipeline: SpeechPipeline) -> None:
        self.bus = bus
        self.pipeline = pipeline
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

    async def ask(self, session_id: str, response_id: str, text: str, **fields: Any) -> list[Output]:
        """A typed turn: `response.create` with `input_text`, until its `response.done`."""
        await self.send(session_id, "response.create", response_id=response_id, input_text=text, **fields)
        return await self.until(is_done(response_id))

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
        self.received.extend(collected)
        return collected


def is_done(response_id: str) -> Callable[[Output], bool]:
    return is_event("response.done", response_id)


def is_event(event_type: str, response_id: str | None = None) -> Callable[[Output], bool]:
    def check(message: Output) -> bool:
        return (
            isinstance(message, PipelineEvent)
            and message.type == event_type
            and response_id in (None, message.data.get("response_id"))
        )

    return check


def events(messages: list[Output], event_type: str, session_id: str | None = None) -> list[PipelineEvent]:
    return [
        m
        for m in messages
        if isinstance(m, PipelineEvent) and m.type == event_type and session_id in (None, m.session_id)
    ]


def text_of(messages: list[Output], response_id: str | None = None) -> str:
    return "".join(
        str(d.data["delta"])
        for d in events(messages, "response.text.delta")
        if response_id in (None, d.data.get("response_id"))
    )


def final(messages: list[Output]) -> Mapping[str, Any]:
    """The data of the last message, which must be an event (response.done)."""
    last = messages[-1]
    assert isinstance(last, PipelineEvent)
    return last.data


def audio(messages: list[Output], session_id: str | None = None) -> list[PipelineAudio]:
    return [m for m in messages if isinstance(m, PipelineAudio) and session_id in (None, m.session_id)]


@contextlib.asynccontextmanager
async def running(
    ovos_url: str,
    recognizer: SpeechRecognizer | None = None,
    synthesizer: SpeechSynthesizer | None = None,
    *,
    max_turns: int = 5,
    admission_wait: float = 10.0,
    turn_timeout: float = 20.0,
) -> AsyncIterator[Harness]:
    bus = InProcessBus()
    await bus.start()
    output = await bus.subscribe(REPLY_TOPIC)
    assistant = OvosAssistant(
        ovos_url, admission=TurnAdmission(max_turns, admission_wait), turn_timeout_seconds=turn_timeout
    )
    await assistant.start()
    await assistant.wait_connected(10)
    voice = synthesizer or FliteSynthesizer()
    pipeline = SpeechPipeline(
        bus, recognizer=recognizer or load_recognizer(), voices=lambda _name: voice, assistant=assistant
    )
    await pipeline.start()
    harness = Harness(bus, output, pipeline)
    try:
        yield harness
    finally:
        await harness.close()
        await pipeline.stop()
        await assistant.stop()
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
