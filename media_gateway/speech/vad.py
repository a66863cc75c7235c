"""Turn detection with OpenAI Realtime `server_vad` / `semantic_vad` semantics, cheap enough for every
session.

Two stages, both fed 16 kHz mono s16le 20 ms frames (640 bytes):

1. **Gate**: WebRTC VAD (`webrtcvad-wheels`, a GMM in C, mode 3, ~2 µs per frame) looks at every frame.
2. **Score**: Silero VAD v6 (the ONNX model faster-whisper ships in its package assets, so a plain
   `pip install` brings it; run by onnxruntime) scores 512-sample (32 ms) windows, but only windows that
   overlap at least one frame the gate called speech. Every other window scores 0.0 without running the
   model, so silence costs almost nothing and `threshold` keeps its meaning: the Silero speech probability
   (0..1). The model sees each window with the 64 samples before it (Silero's context), as Silero's own
   streaming wrapper feeds it: 576 samples per call.

Turn logic (server_vad): speech starts at the first window whose probability is ≥ `threshold`;
`SpeechStarted.audio_start_ms` is that window's start minus `prefix_padding_ms` (clamped to 0). While
speaking, a window below `threshold - 0.15` (hysteresis, as Silero's own segmenter does) starts a silence; a
window at or above it ends the silence. Once a silence has lasted `silence_duration_ms`,
`SpeechStopped.audio_end_ms` is where that silence began. Positions are milliseconds of audio this detector
has processed since it was created or `reset()`, at 32 ms (window) resolution.

semantic_vad has no semantic model here; its `eagerness` maps to a silence duration (`EAGERNESS_SILENCE_MS`):
`high` → 300 ms (answer quickly, may cut the user off), `medium` and `auto` → 700 ms, `low` → 1500 ms (let the
user take their time).

Threading: load the `VadModel` once per process (`load_vad_model()`) and share it: its ONNX session is
stateless and `InferenceSession.run` is thread-safe. All per-stream state (Silero's LSTM state and context,
the WebRTC gate, which adapts to the noise floor, buffers, positions) lives in `TurnDetector`: one per
session, used from one thread (or task) at a time.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import onnxruntime
import webrtcvad
from numpy.typing import NDArray

SAMPLE_RATE: Final = 16_000
FRAME_MS: Final = 20
FRAME_BYTES: Final = SAMPLE_RATE * FRAME_MS // 1000 * 2  # 640
WINDOW_SAMPLES: Final = 512  # Silero's window at 16 kHz (32 ms)
CONTEXT_SAMPLES: Final = 64  # the samples before each window that Silero sees with it (at 16 kHz)
SILERO_MODEL_FILE: Final = "silero_vad_v6.onnx"
_STATE_SHAPE: Final = (1, 1, 128)  # Silero v6's LSTM state (h and c), batch of one stream
_WINDOW_BYTES: Final = WINDOW_SAMPLES * 2
_SAMPLES_PER_MS: Final = SAMPLE_RATE // 1000
NEGATIVE_THRESHOLD_OFFSET: Final = 0.15
DEFAULT_GATE_MODE: Final = 3

EAGERNESS_SILENCE_MS: Final[dict[str, int]] = {"high": 300, "medium": 700, "auto": 700, "low": 1500}


@dataclass(frozen=True)
class SpeechStarted:
    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    audio_end_ms: int


TurnEvent = SpeechStarted | SpeechStopped


def silero_model_path() -> Path:
    """Silero VAD v6 as faster-whisper (a runtime dependency) bundles it: `faster_whisper/assets/`. Found
    without importing faster_whisper, whose import loads CTranslate2 and PyAV (~170 ms)."""
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("faster-whisper is not installed (it ships the Silero VAD model)")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / SILERO_MODEL_FILE
    if not path.is_file():
        raise RuntimeError(
            f"{SILERO_MODEL_FILE} not found at {path}: this faster-whisper release bundles another Silero "
            "model (see the faster-whisper pin in pyproject.toml)"
        )
    return path


class SileroState:
    """Silero's per-stream state: the LSTM state and the last `CONTEXT_SAMPLES` samples it has seen."""

    __slots__ = ("c", "context", "h")

    def __init__(self, context: NDArray[np.float32] | None = None) -> None:
        self.h: NDArray[np.float32] = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self.c: NDArray[np.float32] = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self.context: NDArray[np.float32] = (
            np.zeros(CONTEXT_SAMPLES, dtype=np.float32) if context is None else context
        )


def _samples(pcm: bytes) -> NDArray[np.float32]:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
    samples *= 1.0 / 32768.0
    return samples


class VadModel:
    """The shared, stateless part of turn detection: the Silero ONNX session. Thread-safe."""

    def __init__(self, onnx_path: Path | None = None, *, gate_mode: int = DEFAULT_GATE_MODE) -> None:
        if not 0 <= gate_mode <= 3:
            raise ValueError("gate_mode must be 0..3")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(onnx_path or silero_model_path()), options, providers=["CPUExecutionProvider"]
        )
        self.gate_mode = gate_mode

    def new_gate(self) -> webrtcvad.Vad:
        return webrtcvad.Vad(self.gate_mode)

    def speech_probability(self, window: bytes, state: SileroState) -> float:
        """Score one 512-sample s16le window (after `state.context`) and advance `state`."""
        samples = _samples(window)
        model_input = np.concatenate((state.context, samples)).reshape(1, -1)
        output, state.h, state.c = self._session.run(None, {"input": model_input, "h": state.h, "c": state.c})
        state.context = samples[-CONTEXT_SAMPLES:]
        return float(output.reshape(-1)[0])


@functools.cache
def load_vad_model() -> VadModel:
    """The process-wide VadModel (loaded on first use, ~30 ms, 1.2 MB)."""
    return VadModel()


def semantic_silence_ms(eagerness: str) -> int:
    try:
        return EAGERNESS_SILENCE_MS[eagerness]
    except KeyError:
        raise ValueError(f"unknown eagerness {eagerness!r}") from None


class TurnDetector:
    """Per-session turn detector (see the module docstring). Not thread-safe: one stream, one caller."""

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        prefix_padding_ms: int = 300,
        silence_duration_ms: int = 500,
        model: VadModel,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be within 0..1")
        if prefix_padding_ms < 0 or silence_duration_ms < 0:
            raise ValueError("durations must be non-negative")
        self.threshold = threshold
        self.prefix_padding_ms = prefix_padding_ms
        self.silence_duration_ms = silence_duration_ms
        self._negative_threshold = max(0.0, threshold - NEGATIVE_THRESHOLD_OFFSET)
        self._model = model
        self.scored_windows = 0  # windows the Silero model actually ran on (the rest were gated out)
        self.reset()

    @classmethod
    def semantic(
        cls, eagerness: str = "auto", *, model: VadModel, threshold: float = 0.5, prefix_padding_ms: int = 300
    ) -> TurnDetector:
        """A detector for `semantic_vad`: the eagerness picks the silence duration."""
        return cls(
            threshold=threshold,
            prefix_padding_ms=prefix_padding_ms,
            silence_duration_ms=semantic_silence_ms(eagerness),
            model=model,
        )

    def reset(self) -> None:
        """Forget everything: positions restart at 0."""
        self._gate = self._model.new_gate()
        self._silero = SileroState()
        self._silero_stale = False
        self._previous_window = b""  # the last window, scored or not: the context of the next one
        self._pending = bytearray()
        self._pending_gated = False
        self._window_start = 0  # sample index of the first pending sample
        self._received = 0  # samples received
        self._speaking = False
        self._silence_start_ms: int | None = None

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio received since creation or reset."""
        return self._received // _SAMPLES_PER_MS

    def process(self, frame: bytes) -> list[TurnEvent]:
        """Feed 20 ms frames (640 bytes, or a multiple); return the turn events they complete."""
        if not frame or len(frame) % FRAME_BYTES:
            raise ValueError(f"expected 16 kHz s16le frames of {FRAME_BYTES} bytes, got {len(frame)} bytes")
        events: list[TurnEvent] = []
        view = memoryview(frame)
        for offset in range(0, len(frame), FRAME_BYTES):
            self._process_frame(view[offset : offset + FRAME_BYTES], events)
        return events

    def _process_frame(self, frame: memoryview, events: list[TurnEvent]) -> None:
        gated = self._gate.is_speech(frame.tobytes(), SAMPLE_RATE)
        self._pending += frame
        self._pending_gated = self._pending_gated or gated
        self._received += FRAME_BYTES // 2
        if len(self._pending) < _WINDOW_BYTES:
            return
        window = bytes(self._pending[:_WINDOW_BYTES])
        del self._pending[:_WINDOW_BYTES]
        start_ms = self._window_start // _SAMPLES_PER_MS
        self._window_start += WINDOW_SAMPLES
        probability = self._score(window) if self._pending_gated else self._skip()
        self._previous_window = window
        # What is left over came from this frame only (a frame is shorter than a window).
        self._pending_gated = gated and bool(self._pending)
        self._decide(probability, start_ms, events)

    def _score(self, window: bytes) -> float:
        if self._silero_stale:
            # The windows in between were never scored: start the recurrent state afresh, as at stream start.
            # The context is still the audio just before this window, as when every window is scored.
            tail = self._previous_window[-2 * CONTEXT_SAMPLES :]
            self._silero = SileroState(_samples(tail) if len(tail) == 2 * CONTEXT_SAMPLES else None)
            self._silero_stale = False
        self.scored_windows += 1
        return self._model.speech_probability(window, self._silero)

    def _skip(self) -> float:
        self._silero_stale = True
        return 0.0

    def _decide(self, probability: float, start_ms: int, events: list[TurnEvent]) -> None:
        if not self._speaking:
            if probability >= self.threshold and probability > 0.0:
                self._speaking = True
                self._silence_start_ms = None
                events.append(SpeechStarted(max(0, start_ms - self.prefix_padding_ms)))
            return
        if probability >= self._negative_threshold and probability > 0.0:
            self._silence_start_ms = None
        elif self._silence_start_ms is None:
            self._silence_start_ms = start_ms
        end_ms = self._window_start // _SAMPLES_PER_MS
        if self._silence_start_ms is not None and end_ms - self._silence_start_ms >= self.silence_duration_ms:
            events.append(SpeechStopped(self._silence_start_ms))
            self._speaking = False
            self._silence_start_ms = None
