"""TurnDetector on real speech (espeak-ng), quiet noise before and after."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

from media_gateway.speech.vad import (
    CONTEXT_SAMPLES,
    EAGERNESS_SILENCE_MS,
    WINDOW_SAMPLES,
    SileroState,
    SpeechStarted,
    SpeechStopped,
    TurnDetector,
    TurnEvent,
    VadModel,
    load_vad_model,
    silero_model_path,
)
from tests.speech.audio import SENTENCES, energy_bounds, frames, noise, padded, spoken

TOLERANCE_MS = 150


@pytest.fixture(scope="module")
def model() -> VadModel:
    return load_vad_model()


def run(detector: TurnDetector, pcm: bytes) -> list[tuple[int, TurnEvent]]:
    """Feed `pcm` frame by frame; return (position when emitted, event) pairs."""
    events: list[tuple[int, TurnEvent]] = []
    for frame in frames(pcm):
        events.extend((detector.position_ms, event) for event in detector.process(frame))
    return events


@pytest.mark.parametrize("sentence", SENTENCES)
def test_speech_bounds_match_energy(model: VadModel, sentence: str) -> None:
    pcm = padded(spoken(sentence))
    start_ms, end_ms = energy_bounds(pcm)
    detector = TurnDetector(model=model, prefix_padding_ms=300, silence_duration_ms=500)
    events = run(detector, pcm)
    assert [type(event) for _, event in events] == [SpeechStarted, SpeechStopped]
    (_, started), (stopped_at, stopped) = events
    assert isinstance(started, SpeechStarted)
    assert isinstance(stopped, SpeechStopped)
    print(
        f"{sentence!r}: energy {start_ms}-{end_ms} ms, "
        f"vad {started.audio_start_ms + 300}-{stopped.audio_end_ms}"
    )
    assert abs(started.audio_start_ms + 300 - start_ms) <= TOLERANCE_MS
    assert abs(stopped.audio_end_ms - end_ms) <= TOLERANCE_MS
    # speech_stopped comes once the silence has lasted silence_duration_ms (window resolution: 32 ms).
    assert 500 <= stopped_at - stopped.audio_end_ms <= 500 + 64
    assert not detector.speaking


def test_silence_never_runs_the_model(model: VadModel) -> None:
    detector = TurnDetector(model=model)
    assert run(detector, noise(5000, level=30.0) + bytes(16_000 * 2)) == []
    # WebRTC's noise model adapts during the first frames; after that nothing passes the gate.
    assert detector.scored_windows <= 6000 // 32 // 20
    assert detector.position_ms == 6000


def test_prefix_padding_is_clamped_to_zero(model: VadModel) -> None:
    detector = TurnDetector(model=model, prefix_padding_ms=300)
    events = run(detector, padded(spoken("hello there"), before_ms=100))
    assert isinstance(events[0][1], SpeechStarted)
    assert events[0][1].audio_start_ms == 0


def test_two_utterances_and_reset(model: VadModel) -> None:
    pcm = padded(spoken("what time is it") + noise(1200, seed=3) + spoken("hello there"), after_ms=3000)
    detector = TurnDetector(model=model, silence_duration_ms=500)
    kinds = [type(event) for _, event in run(detector, pcm)]
    assert kinds == [SpeechStarted, SpeechStopped, SpeechStarted, SpeechStopped]
    # A silence_duration longer than the pause (1.2 s plus espeak's own trailing silence) merges them.
    merged = TurnDetector(model=model, silence_duration_ms=2500)
    assert [type(event) for _, event in run(merged, pcm)] == [SpeechStarted, SpeechStopped]
    detector.reset()
    assert detector.position_ms == 0
    first = run(detector, padded(spoken("what time is it")))
    again = TurnDetector(model=model)
    assert [event for _, event in first] == [
        event for _, event in run(again, padded(spoken("what time is it")))
    ]


def test_high_threshold_ignores_speech(model: VadModel) -> None:
    detector = TurnDetector(model=model, threshold=1.0)
    assert all(isinstance(event, SpeechStarted) is False for _, event in run(detector, padded(spoken("hi"))))


def test_frame_validation_and_batches(model: VadModel) -> None:
    detector = TurnDetector(model=model)
    with pytest.raises(ValueError, match="640"):
        detector.process(b"\0" * 100)
    with pytest.raises(ValueError, match="threshold"):
        TurnDetector(model=model, threshold=1.5)
    # Several frames at once behave like the same frames one by one.
    pcm = padded(spoken("what time is it"))
    whole = TurnDetector(model=model).process(pcm)
    assert whole == [event for _, event in run(TurnDetector(model=model), pcm)]


def test_semantic_eagerness_maps_to_silence(model: VadModel) -> None:
    assert EAGERNESS_SILENCE_MS == {"high": 300, "medium": 700, "auto": 700, "low": 1500}
    assert TurnDetector.semantic("low", model=model).silence_duration_ms == 1500
    with pytest.raises(ValueError, match="eagerness"):
        TurnDetector.semantic("eager", model=model)


def test_cpu_per_frame(model: VadModel) -> None:
    """Median CPU per 20 ms frame: silence is gated (WebRTC only), speech runs Silero every 32 ms."""

    def cost(pcm: bytes) -> tuple[float, float]:
        detector = TurnDetector(model=model)
        samples = []
        for frame in frames(pcm):
            start = time.thread_time_ns()
            detector.process(frame)
            samples.append(time.thread_time_ns() - start)
        return statistics.median(samples) / 1000, sum(samples) / len(samples) / 1000

    silence_median, silence_mean = cost(noise(10_000, seed=4))
    speech = b"".join(spoken(sentence) for sentence in SENTENCES)
    speech_median, speech_mean = cost(speech[: len(speech) - len(speech) % 640])
    print(
        f"VAD CPU per 20 ms frame: silence median {silence_median:.1f} µs (mean {silence_mean:.1f}), "
        f"speech median {speech_median:.1f} µs (mean {speech_mean:.1f})"
    )
    assert silence_mean < 50
    assert speech_mean < 1000


def test_model_is_faster_whispers_bundled_silero() -> None:
    """The model comes with faster-whisper (a runtime dependency), in the shape `VadModel` feeds it: a window
    after its context, and an LSTM state of its own shape. A faster-whisper release that bundles another
    Silero model fails here, not in production."""
    import onnxruntime

    path = silero_model_path()
    assert path.parent.name == "assets"
    assert path.parent.parent.name == "faster_whisper"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {item.name: item.shape for item in session.get_inputs()}
    assert inputs["input"][1] == CONTEXT_SAMPLES + WINDOW_SAMPLES
    state = SileroState()
    assert inputs["h"] == list(state.h.shape)
    assert inputs["c"] == list(state.c.shape)
    assert [item.name for item in session.get_outputs()][1:] == ["hn", "cn"]


def test_context_follows_the_audio(model: VadModel) -> None:
    state = SileroState()
    window = (np.arange(WINDOW_SAMPLES, dtype=np.int16) * 8).tobytes()
    probability = model.speech_probability(window, state)
    assert 0.0 <= probability <= 1.0
    expected = np.arange(WINDOW_SAMPLES - CONTEXT_SAMPLES, WINDOW_SAMPLES, dtype=np.float32) * 8 / 32768
    np.testing.assert_allclose(state.context, expected)
    assert state.h.any()
