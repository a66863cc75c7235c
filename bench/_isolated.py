"""The per-append stages of the engine timed alone in a hot loop in this process (`bench.ws_sessions`,
table 2's "isolated" column)."""

from __future__ import annotations

import asyncio
import base64
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench._audio import FORMAT, Audio, append_json
from media_gateway.codecs import InputAudioDecoder
from media_gateway.pipeline.inprocess_bus import InProcessBus
from media_gateway.pipeline.messages import INPUT_TOPIC, SessionSettings, audio_headers
from media_gateway.realtime.client_events import parse_client_event
from media_gateway.realtime.input_audio import InputAudio, TurnDetection
from media_gateway.realtime.pipeline_channel import PipelineChannel
from media_gateway.speech.vad import TurnDetector, load_vad_model


def median_cpu_us(make: Callable[[], Callable[[], int]], runs: int) -> float:
    """Median over `runs` of CPU µs per event; `make()` builds fresh state and returns a run that reports
    how many events it processed."""
    samples = []
    for _ in range(runs):
        run = make()
        start = time.process_time_ns()
        events = run()
        samples.append((time.process_time_ns() - start) / 1000 / events)
    return statistics.median(samples)


@dataclass
class Stages:
    parse_us: float  # parse_client_event + base64 decode of the append
    decode_us: float
    vad_us: float
    bus_us: float  # per append event (publish cost x published fraction)
    publish_us: float  # per publish
    published_fraction: float
    scored_fraction: float  # Silero windows actually scored
    vad_speech_fraction: float  # frames between speech_started and speech_stopped
    input_audio_us: float  # InputAudio.append_encoded end to end (decode + VAD + bus + glue), cross-check

    @property
    def engine_audio_us(self) -> float:
        return self.decode_us + self.vad_us + self.bus_us


def measure_stages(audio: Audio, runs: int, repeat: int) -> Stages:
    chunks = audio.chunks
    messages = [append_json(c) for c in chunks]
    events = len(chunks) * repeat
    model = load_vad_model()
    turn = TurnDetection.from_config({"type": "server_vad"})
    assert turn is not None
    frames: list[bytes] = []
    decoder = InputAudioDecoder(FORMAT)
    for _ in range(repeat):
        for chunk in chunks:
            frames.extend(decoder.decode(chunk))

    def parse() -> Callable[[], int]:
        def run() -> int:
            for message in messages * repeat:
                event = parse_client_event(message)
                base64.b64decode(event.data["audio"], validate=True)
            return events

        return run

    def decode() -> Callable[[], int]:
        dec = InputAudioDecoder(FORMAT)

        def run() -> int:
            for _ in range(repeat):
                for chunk in chunks:
                    dec.decode(chunk)
            return events

        return run

    detectors: list[TurnDetector] = []

    def vad() -> Callable[[], int]:
        detector = TurnDetector(
            threshold=turn.threshold,
            prefix_padding_ms=turn.prefix_padding_ms,
            silence_duration_ms=turn.silence_duration_ms,
            model=model,
        )
        detectors.append(detector)

        def run() -> int:
            for frame in frames:
                detector.process(frame)
            return events

        return run

    async def publish_loop(bus: InProcessBus, frame: bytes, n: int) -> None:
        for i in range(n):
            await bus.publish(INPUT_TOPIC, "sess_bench", frame, audio_headers(seq=str(i)))

    def publish() -> Callable[[], int]:
        bus = InProcessBus()
        asyncio.run(bus.start())
        coro_n = 5000

        def run() -> int:
            asyncio.run(publish_loop(bus, frames[0], coro_n))
            return coro_n

        return run

    class CountingBus(InProcessBus):
        published = 0

        async def publish(self, topic: str, key: str, payload: bytes, headers: Any = None) -> None:
            CountingBus.published += 1
            await super().publish(topic, key, payload, headers)

    speech_frames = 0

    async def input_audio_run(count_speech: bool) -> None:
        nonlocal speech_frames
        bus = CountingBus()
        await bus.start()
        channel = PipelineChannel(bus, "sess_bench", reply_to="rt.out.bench", settings=SessionSettings)
        ia = InputAudio(channel, input_format=FORMAT, turn_detection=turn, vad_model=model)
        for _ in range(repeat):
            for chunk in chunks:
                await ia.append_encoded(chunk, None)
                if count_speech and ia.in_speech:
                    speech_frames += 1

    def input_audio() -> Callable[[], int]:
        def run() -> int:
            asyncio.run(input_audio_run(False))
            return events

        return run

    asyncio.run(input_audio_run(True))  # also counts publishes and speech frames
    published_fraction = CountingBus.published / events
    parse_us = median_cpu_us(parse, runs)
    decode_us = median_cpu_us(decode, runs)
    vad_us = median_cpu_us(vad, runs)
    publish_us = median_cpu_us(publish, runs)
    input_audio_us = median_cpu_us(input_audio, runs)
    windows = len(frames) * 640 // 1024
    return Stages(
        parse_us=parse_us,
        decode_us=decode_us,
        vad_us=vad_us,
        bus_us=publish_us * published_fraction,
        publish_us=publish_us,
        published_fraction=published_fraction,
        scored_fraction=detectors[0].scored_windows / windows,
        vad_speech_fraction=speech_frames / events,
        input_audio_us=input_audio_us,
    )
