"""Must-show 1: the demo page in Debian's headless Chromium, with a fake microphone speaking a sentence,
makes a WebRTC call to the gateway exactly as a browser app makes one to OpenAI.

Measured on both ends:
* the gateway's pipeline: the 16 kHz frames the engine publishes on the bus's input topic for the first
  utterance, compared frame by frame (RMS above a floor) with the WAV the fake microphone plays;
* the browser: every data-channel event (each validated with the conformance gate), the input
  transcription, `response.done`, and the inbound-rtp audio energy of the spoken reply.

Chromium comes from Debian (`scripts/install-system-packages.sh`); Playwright only drives it. A missing
browser fails the test: it never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import wave
from collections.abc import Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Page, async_playwright

from media_gateway.app_keys import BUS, CALLS
from media_gateway.pipeline.bus import Subscription
from media_gateway.pipeline.messages import (
    FRAME_BYTES,
    INPUT_TOPIC,
    PIPELINE_SAMPLE_RATE,
    PipelineAudio,
    PipelineEvent,
    decode,
)
from tests.browser.conftest import DemoGatewayFactory
from tests.speech.audio import padded, spoken, spoken_clock, word_errors, words
from tests.support.conformance import GATE

CHROMIUM = Path("/usr/bin/chromium")
SENTENCE = "what time is it"
LEAD_MS = 1500  # quiet noise before the sentence: the call is up well before the speech starts
TAIL_MS = 9000  # and after it: the turn completes before Chromium loops the file
FLOOR_DBFS = -45.0  # a 20 ms frame above this is speech (the padding noise is at -61 dBFS)
MIN_AUDIO_FRACTION = 0.90
MAX_WER = 0.25


def chromium_args(wav: Path) -> list[str]:
    """Flags for a root, headless, offline Chromium with a fake microphone. Playwright adds --headless,
    --no-sandbox, --mute-audio, a temporary profile and its own --disable-features list (only the last
    such switch counts, so none is added here)."""
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-sync",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--autoplay-policy=no-user-gesture-required",
        # A host whose only interface is lo: both sides must offer loopback candidates.
        "--allow-loopback-in-peer-connection",
    ]


def write_wav(path: Path, pcm: bytes) -> None:
    """16 kHz mono s16 (a format Chromium's fake capture plays; s24 and µ-law give silence)."""
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(PIPELINE_SAMPLE_RATE)
        handle.writeframes(pcm)


def frame_dbfs(frame: bytes) -> float:
    samples = np.frombuffer(frame, dtype=np.int16).astype(np.float64)
    rms = math.sqrt(float(np.mean(samples**2))) if samples.size else 0.0
    return 20 * math.log10(rms / 32768) if rms > 0 else -math.inf


def frames_of(pcm: bytes, offset: int = 0) -> list[bytes]:
    """The 20 ms frames of `pcm` starting at byte `offset`."""
    return [pcm[i : i + FRAME_BYTES] for i in range(offset, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


def align(received: bytes, reference: bytes) -> tuple[int, float]:
    """(lag in samples, peak normalised cross-correlation) of `reference` inside `received`:
    received[lag + n] ≈ reference[n]. A correlation of 1.0 means the same waveform."""
    x = np.frombuffer(received, dtype=np.int16).astype(np.float64)
    y = np.frombuffer(reference, dtype=np.int16).astype(np.float64)
    n = 1 << (len(x) + len(y)).bit_length()
    product = np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(y, n)), n)
    lag = int(np.argmax(np.abs(product)))
    peak = float(np.abs(product[lag]))
    if lag > n // 2:
        lag -= n
    return lag, peak / (float(np.linalg.norm(x) * np.linalg.norm(y)) or 1.0)


def speech_frames_received(received: bytes, speech: bytes) -> tuple[int, int, int, float]:
    """How much of the spoken sentence reached the pipeline, frame by frame.

    The reference frames are the sentence's 20 ms frames above the floor. After aligning the received
    utterance on the sentence (cross-correlation), a reference frame counts as received when the frame
    at the same place in the received audio is above the floor too. Returns (received, reference, lag in
    ms, correlation). Extra loud frames (the browser's gain control lifting a quiet stretch) do not
    count, so the fraction cannot exceed 1.
    """
    lag, similarity = align(received, speech)
    reference = [frame_dbfs(frame) > FLOOR_DBFS for frame in frames_of(speech)]
    matched = 0
    for index, is_loud in enumerate(reference):
        start = lag * 2 + index * FRAME_BYTES
        if is_loud and start >= 0 and start + FRAME_BYTES <= len(received):
            matched += frame_dbfs(received[start : start + FRAME_BYTES]) > FLOOR_DBFS
    return matched, sum(reference), lag * 1000 // PIPELINE_SAMPLE_RATE, similarity


@dataclass
class PipelineTap:
    """What the engine publishes to the pipeline: audio frames and events, per session, in order."""

    subscription: Subscription
    audio: dict[str, list[bytes]] = field(default_factory=dict)
    first_commit_frames: dict[str, int] = field(default_factory=dict)
    sample_rates: set[int] = field(default_factory=set)
    frame_sizes: set[int] = field(default_factory=set)

    async def run(self) -> None:
        async for message in self.subscription:
            decoded = decode(message)
            if isinstance(decoded, PipelineAudio):
                self.audio.setdefault(decoded.session_id, []).append(decoded.pcm)
                self.sample_rates.add(decoded.sample_rate)
                self.frame_sizes.add(len(decoded.pcm))
            elif isinstance(decoded, PipelineEvent) and decoded.type == "input.commit":
                frames = len(self.audio.get(decoded.session_id, []))
                self.first_commit_frames.setdefault(decoded.session_id, frames)

    def first_utterance(self) -> bytes:
        (session_id,) = self.audio  # one call, one session
        count = self.first_commit_frames.get(session_id)
        assert count is not None, "the engine never committed an utterance"
        return b"".join(self.audio[session_id][:count])


async def poll(page: Page, expression: str, timeout_s: float) -> bool:
    """Evaluate `expression` every 100 ms until it is truthy. (`page.wait_for_function` evaluates a string
    with `new Function`, which the page's Content-Security-Policy forbids, as it should.)"""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if await page.evaluate(expression):
            return True
        await asyncio.sleep(0.1)
    return False


async def released_within(calls: Sized, seconds: float) -> bool:
    for _ in range(int(seconds * 10)):
        if not len(calls):
            return True
        await asyncio.sleep(0.1)
    return False


async def wait_for_event(page: Page, event_type: str, timeout_s: float) -> None:
    seen = await poll(
        page, f"demo.events.some((e) => e.type === {event_type!r}) || demo.status === 'error'", timeout_s
    )
    state = await page.evaluate(
        "({status: demo.status, error: demo.error, types: demo.events.map(e => e.type)})"
    )
    assert seen, f"no {event_type} on the data channel within {timeout_s} s: {state}"
    assert state["status"] != "error", f"the page failed: {state}"


async def wait_for_reply_audio(page: Page, timeout_s: float) -> dict[str, Any]:
    """Poll the inbound-rtp stats until the reply has played: energy arrived, then either
    `output_audio_buffer.stopped` or a second without new energy (the track carries silence between
    replies)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    stats: dict[str, Any] | None = None
    history: list[float] = []
    while asyncio.get_running_loop().time() < deadline:
        stats = await page.evaluate("demo.inboundAudioStats()")
        stopped = await page.evaluate("demo.events.some((e) => e.type === 'output_audio_buffer.stopped')")
        energy = float(stats["totalAudioEnergy"]) if stats else 0.0
        history.append(energy)
        quiet = len(history) > 5 and energy - history[-6] < 1e-4
        if energy > 0 and (stopped or quiet):
            return dict(stats or {})
        await asyncio.sleep(0.2)
    raise AssertionError(f"no reply audio reached the browser: {stats}")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_demo_page_talks_to_the_gateway_over_webrtc(
    demo_gateway_factory: DemoGatewayFactory, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-system-packages.sh")
    speech = spoken(SENTENCE)
    source = padded(speech, before_ms=LEAD_MS, after_ms=TAIL_MS)
    wav = tmp_path / "microphone.wav"
    write_wav(wav, source)

    gateway = await demo_gateway_factory(webrtc_include_loopback=True)
    tap = PipelineTap(await gateway.app[BUS].subscribe(INPUT_TOPIC))
    tap_task = asyncio.create_task(tap.run())
    console: list[str] = []
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=chromium_args(wav)
            )
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
                page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
                await page.goto(f"{gateway.base_url}/")
                await page.click("#connect")
                await poll(page, "demo.connected || demo.status === 'error'", timeout_s=15)
                status, error = await page.evaluate("[demo.status, demo.error]")
                assert status == "connected", f"the call did not connect: {error}; console: {console}"

                await wait_for_event(page, "response.done", timeout_s=60)
                reply = await wait_for_reply_audio(page, timeout_s=30)
                state: dict[str, Any] = await page.evaluate(
                    "({raw: demo.raw, transcript: demo.transcript, callId: demo.callId, sent: demo.sent,"
                    " micPeakDb: demo.micPeakDb, replyPeakDb: demo.replyPeakDb, dropped: demo.droppedEvents})"
                )
                screenshot = tmp_path / "demo-after-turn.png"
                await page.screenshot(path=str(screenshot), full_page=True)
                await page.click("#connect")  # hang up
                assert await page.evaluate("demo.status") == "closed"
                released = await released_within(gateway.app[CALLS], seconds=10)
                assert released, "the gateway still holds the call after the page hung up"
                assert not [line for line in console if "Content Security Policy" in line], console
            finally:
                await browser.close()
    finally:
        await tap.subscription.close()
        tap_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tap_task

    # The data channel: every event conforms, the turn completed, the sentence was understood.
    assert state["dropped"] == 0
    events = [GATE.check(raw) for raw in state["raw"]]
    types = [event["type"] for event in events]
    assert types[0] == "session.created"
    assert state["callId"]
    assert state["callId"].startswith("rtc_")
    assert state["sent"][0]["type"] == "session.update"
    (done,) = [event for event in events if event["type"] == "response.done"][:1]
    assert done["response"]["status"] == "completed", done
    transcripts = [
        event["transcript"]
        for event in events
        if event["type"] == "conversation.item.input_audio_transcription.completed"
    ]
    assert transcripts, f"no input transcription; events: {types}"
    wer = word_errors(SENTENCE, transcripts[0]) / len(words(SENTENCE))
    assert wer <= MAX_WER, f"heard {transcripts[0]!r} for {SENTENCE!r} (WER {wer:.2f})"
    assert "response.output_audio.delta" not in types  # WebRTC: the audio is on the track
    answer = done["response"]["output"][0]["content"][0]["transcript"]
    assert spoken_clock(answer) is not None, answer  # OVOS's date-time skill told the time
    # What a person sees: both sides of the turn in the transcript, and the meters moved.
    assert f"You: {transcripts[0]}" in state["transcript"]
    assert f"\nAssistant: {answer}" in state["transcript"]
    assert state["micPeakDb"] > -30
    assert state["replyPeakDb"] > -40

    # The gateway's pipeline got the spoken audio as 16 kHz, 20 ms frames.
    assert tap.sample_rates == {PIPELINE_SAMPLE_RATE}
    assert tap.frame_sizes == {FRAME_BYTES}
    received = tap.first_utterance()
    (tmp_path / "pipeline-first-utterance.pcm").write_bytes(received)
    matched, spoken_frames, lag_ms, similarity = speech_frames_received(received, speech)
    fraction = matched / spoken_frames
    assert fraction >= MIN_AUDIO_FRACTION, (
        f"the pipeline got {matched} of the {spoken_frames} spoken 20 ms frames above {FLOOR_DBFS} dBFS "
        f"(correlation {similarity:.2f}, lag {lag_ms} ms)"
    )

    # The browser heard the reply.
    assert reply["packetsReceived"] > 0
    assert reply["totalAudioEnergy"] > 0

    print(
        f"\nbrowser demo: call {state['callId']}; {len(events)} data-channel events validated: {types}; "
        f"pipeline: first utterance {len(received) // FRAME_BYTES} frames of 16 kHz, {matched} of the "
        f"{spoken_frames} spoken frames above {FLOOR_DBFS:.0f} dBFS ({fraction:.1%}), aligned at "
        f"{lag_ms} ms, correlation {similarity:.2f}; transcript {transcripts[0]!r} (WER {wer:.2f}); "
        f"mic peak {state['micPeakDb']:.1f} dBFS, reply peak {state['replyPeakDb']:.1f} dBFS; "
        f"inbound-rtp {reply}; screenshot {screenshot}"
    )
